"""``opsmgr adopt``: recreate a project lost with both installations from its agents (``restoration.adopt``).

Run on the new installation (it writes into its application database, as ``opsmgr keys create`` does, and
a running server sees the project at once): ``--group-id`` and ``--agent-key`` are the ``mmsGroupId`` and
``mmsApiKey`` of a host's ``automation-agent.config``, ``--hosts`` the deployment's hosts, the only ones
whose agents may speak for the adopted project. Then point each agent's ``mmsBaseUrl`` at this server: the
project enters Restoration Mode and takes its configuration from them; watch it with ``opsmgr
restoration-mode show``.

Also the default organization of the commands that bootstrap a new installation (:func:`default_org`).
May import ``opsmgr.cli.api``, ``opsmgr.errors``, ``opsmgr.restoration.adopt``, ``opsmgr.server`` (its boot
and settings) and ``opsmgr.store``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from opsmgr.cli.api import fail
from opsmgr.errors import InvalidInput, OpsmgrError
from opsmgr.store.appdb import AppDB

out = Console(soft_wrap=True)


def default_org(appdb: AppDB) -> str:
    """The only organization, or a new one when there is none (a new installation's first command)."""
    orgs = appdb.orgs()
    if not orgs:
        return str(appdb.create_org("Default Organization")["_id"])
    if len(orgs) == 1:
        return str(orgs[0]["_id"])
    raise InvalidInput("several organizations exist: choose one with --org-id", field="--org-id")


def adopt_command(
    group_id: str = typer.Option(..., "--group-id", help="mmsGroupId of a host's automation-agent.config."),
    agent_key: str = typer.Option(..., "--agent-key", help="mmsApiKey of the same file."),
    hosts: str = typer.Option(
        ..., "--hosts", help="The deployment's hosts, comma-separated: only their agents may speak for it."
    ),
    name: str | None = typer.Option(None, "--name", help="Project name (default: 'Adopted <id>')."),
    org_id: str | None = typer.Option(
        None, "--org-id", help="Organization (default: the only one, or a new one)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print {id, name, orgId, hosts} as JSON."),
    conf: Path | None = typer.Option(None, "--conf", help="Path of conf-mms.properties.", dir_okay=False),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Embedded setup directory (no --conf)."),
) -> None:
    """Recreate a lost project with its id and agent key; its configuration is taken from its agents."""
    from opsmgr.restoration.adopt import adopt, parse_request
    from opsmgr.server.boot import opened
    from opsmgr.server.settings import load_settings

    try:
        request = parse_request(group_id, agent_key, name, [h.strip() for h in hosts.split(",") if h.strip()])
        settings, _ = load_settings(conf_path=conf, data_dir=data_dir)
        with opened(settings) as ctx:
            org = org_id or default_org(ctx.appdb)
            ctx.appdb.org(org)
            group = adopt(ctx.stores.app, request, org, restoration_enabled=ctx.restoration.enabled)
    except OpsmgrError as exc:
        fail(exc)
    record = {
        "id": group["_id"],
        "name": group["name"],
        "orgId": group["orgId"],
        "hosts": list(request.hosts),
    }
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
        return
    out.print(f"project {record['id']} ({record['name']}) adopted in organization {record['orgId']}")
    out.print(f"hosts whose agents may speak for it: {', '.join(request.hosts)}")
    out.print("Point each agent's mmsBaseUrl at this server; the project takes its configuration from them.")

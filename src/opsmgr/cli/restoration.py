"""``opsmgr restoration-mode show | retry | exit``: a project's Restoration Mode over the public API (the
seed's ``GET``, ``POST .../retry`` and ``DELETE /groups/{id}/restorationMode``), so an operator needs no curl.

``show`` prints the state, why the mode began and since when, the agents heard and the hosts still missing,
the failure counter and the last failure (``--json``: the API's answer as it came). ``retry`` resets the
failure counter and reconciles again. ``exit`` is the seed's forced exit: it prints the seed's warning and
goes on only with ``--yes`` or a confirmation typed at the terminal. A refusal (409 when the project is not
in the mode, 403 for a key without Project Owner) prints the server's message and exits non-zero.

May import ``opsmgr.cli.api`` and ``opsmgr.restoration.mode`` (the seed's forced-exit warning).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.console import Console

from opsmgr.cli.api import CaFileOpt, GroupOpt, PrivateKeyOpt, PublicKeyOpt, UrlOpt, public_api
from opsmgr.restoration.mode import FORCE_EXIT_WARNING

restoration_app = typer.Typer(
    no_args_is_help=True, help="Restoration Mode of a project: show it, retry reconciliation, force an exit."
)

JsonOpt = typer.Option(False, "--json", help="Print the API's JSON answer.")
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

# The seed's own words (Restore Ops Manager from a Secondary Ops Manager): the operator reads them before
# the one call that makes the server stop reconciling.


def _path(group: str) -> str:
    # Quoted: a group given as "../orgs" must stay one path segment, not reach another resource.
    return f"/groups/{quote(group, safe='')}/restorationMode"


def _or_dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _trigger_line(reason: dict[str, Any] | None) -> str:
    if not reason:
        return "-"
    detail = reason.get("detail") or ""
    agent_v = reason.get("agentConfigVersion")
    restored_v = reason.get("restoredConfigVersion")
    facts = f"agent {reason.get('hostname', '?')} holds config version {agent_v}, the server {restored_v}"
    return f"{detail} ({facts})" if detail else facts


def _agents_lines(view: dict[str, Any]) -> list[str]:
    heard = view.get("agentsHeard") or []
    missing = view.get("missingHosts") or []
    lines = [f"agents heard:     {len(heard)}"]
    for a in heard:
        lines.append(
            f"  {a.get('hostname')}  config version {a.get('configVersion')}  "
            f"heard {_or_dash(a.get('heardAt'))}"
        )
    lines.append(f"agents missing:   {len(missing)}")
    lines += [f"  {m.get('hostname')}  {m.get('reason', '')}".rstrip() for m in missing]
    waiting = view.get("awaitingConvergence") or []
    if waiting:
        lines.append(f"awaiting convergence: {', '.join(waiting)}")
    return lines


def describe(view: dict[str, Any]) -> list[str]:
    """The human-readable lines of a ``GET /restorationMode`` answer."""
    failure = view.get("lastFailure") or None
    last = f"{_or_dash(failure.get('at'))}: {failure.get('reason', '')}" if failure else "-"
    lines = [
        f"project:          {view.get('groupId')}",
        f"state:            {view.get('state')}"
        + (" (in Restoration Mode)" if view.get("inRestorationMode") else ""),
        f"trigger reason:   {_trigger_line(view.get('triggerReason'))}",
        f"since:            {_or_dash(view.get('triggeredAt'))}",
        f"updated:          {_or_dash(view.get('updatedAt'))}",
        *_agents_lines(view),
        f"failure counter:  {view.get('failureCount', 0)}",
        f"last failure:     {last}",
        f"next attempt:     {_or_dash(view.get('nextAttemptAt'))}",
    ]
    if view.get("armed"):
        by = (view.get("armedBy") or {}).get("restoreJobId", "?")
        waiting = ", ".join(view.get("awaitingHosts") or []) or "-"
        lines.append(f"armed:            since {_or_dash(view.get('armedAt'))} by restore job {by}")
        lines.append(f"  awaiting the first poll of: {waiting}")
    if view.get("exitedAt"):
        lines.append(f"exited:           {view['exitedAt']} ({_or_dash(view.get('exitReason'))})")
    if view.get("enabled") is False:
        lines.append("Restoration Mode is disabled on this server (mms.restorationMode.enabled=false)")
    return lines


def _print(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print(json.dumps(view, indent=2), markup=False)
    else:
        out.print("\n".join(describe(view)), markup=False)


@restoration_app.command("show")
def show(
    group: str = GroupOpt,
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The project's Restoration Mode: state, trigger reason, since when, agents heard and missing, and
    the failure counter with the last failure."""
    with public_api(url, public_key, private_key, ca_file) as api:
        view = api.get(_path(group))
    _print(dict(view), as_json)


@restoration_app.command("retry")
def retry(
    group: str = GroupOpt,
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Resets the failure counter and runs reconciliation again without leaving Restoration Mode."""
    with public_api(url, public_key, private_key, ca_file) as api:
        view = api.post(f"{_path(group)}/retry")
    if not as_json:
        out.print("reconciliation retried", markup=False)
    _print(dict(view), as_json)


def _confirmed(group: str) -> bool:
    try:
        return typer.confirm(f"Force project {group} out of Restoration Mode?", default=False)
    except typer.Abort:  # no terminal to answer on (stdin closed): not a yes
        return False


@restoration_app.command("exit")
def force_exit(
    group: str = GroupOpt,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Forces the project out of Restoration Mode: the restored configuration is accepted as it is."""
    err.print(f"[bold yellow]Warning:[/] {FORCE_EXIT_WARNING}")
    if not yes and not _confirmed(group):
        err.print("not forced: Restoration Mode unchanged (--yes confirms without asking)", markup=False)
        raise typer.Exit(1)
    with public_api(url, public_key, private_key, ca_file) as api:
        view = api.delete(_path(group))
    if not as_json:
        out.print("forced out of Restoration Mode", markup=False)
    _print(dict(view), as_json)

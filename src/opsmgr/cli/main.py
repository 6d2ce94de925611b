"""The ``opsmgr`` command line: ``server``, ``keys``, ``users``, ``agent``, ``fleet``, ``demo``, --version.

Owns argument parsing; opsmgr errors become a message and a non-zero exit (``cli.api.fail``); every
command delegates to the package that owns the work.

May import ``opsmgr`` (its version), ``opsmgr.errors``, the ``opsmgr.cli`` modules of the command groups,
``opsmgr.agent.main`` and ``opsmgr.agent.fleet``, ``opsmgr.server.boot``, ``opsmgr.server.settings``,
``opsmgr.server.services`` (the type of what ``boot`` opens),
``opsmgr.backup.restore_download``, ``opsmgr.ui`` (what ``server`` serves beside the API) and
``opsmgr.store``; a command imports what it runs when it runs, so ``opsmgr --help`` stays quick.
Nothing imports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from opsmgr import __version__
from opsmgr.cli.api import fail
from opsmgr.cli.backup import backup_app
from opsmgr.cli.index import index_app
from opsmgr.errors import InvalidInput, OpsmgrError
from opsmgr.store.appdb import AppDB
from opsmgr.store.engine import Store

if TYPE_CHECKING:
    from opsmgr.server.services import Services

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # Locals may hold keys and passwords: never print them.
    pretty_exceptions_show_locals=False,
    help="opsmgr: an open-source control plane for self-managed MongoDB.",
)
keys_app = typer.Typer(no_args_is_help=True, help="Programmatic API keys.")
app.add_typer(keys_app, name="keys")
users_app = typer.Typer(no_args_is_help=True, help="Web UI user accounts.")
app.add_typer(users_app, name="users")
fence_app = typer.Typer(no_args_is_help=True, help="Restore fences on the backing databases.")
app.add_typer(fence_app, name="fence")
app.add_typer(index_app, name="index")
# Other modules (e.g. cli.secondary) attach their commands to this group too.
app.add_typer(backup_app, name="backup")
# Importing cli.secondary also attaches `backup restore-stores` to the backup group.
from opsmgr.cli.secondary import secondary_app  # noqa: E402

app.add_typer(secondary_app, name="secondary")
from opsmgr.cli.restoration import restoration_app  # noqa: E402

app.add_typer(restoration_app, name="restoration-mode")
from opsmgr.cli.drill import drill_app  # noqa: E402

app.add_typer(drill_app, name="drill")
from opsmgr.cli.adopt import adopt_command, default_org  # noqa: E402
from opsmgr.cli.demo_commands import demo_app  # noqa: E402

app.add_typer(demo_app, name="demo")

app.command("adopt")(adopt_command)

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"opsmgr {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """opsmgr: an open-source control plane for self-managed MongoDB."""


ConfOpt = typer.Option(None, "--conf", help="Path of conf-mms.properties.", dir_okay=False)
DataDirOpt = typer.Option(None, "--data-dir", help="Embedded setup directory (used when there is no --conf).")


@app.command()
def server(
    conf: Path | None = ConfOpt,
    data_dir: Path | None = DataDirOpt,
    port: int | None = typer.Option(None, "--port", help="Listen port (overrides mms.port)."),
    host: str | None = typer.Option(None, "--host", help="Listen address (overrides mms.listenAddress)."),
) -> None:
    """Run a control-plane instance: public API, agent API, web UI and backup daemon."""
    from opsmgr import ui
    from opsmgr.server.boot import serve
    from opsmgr.server.settings import load_settings

    try:
        settings, summary = load_settings(conf_path=conf, data_dir=data_dir, port=port)
        if host is not None:
            settings = dataclasses.replace(settings, listen_address=host)
        err.print(summary, highlight=False)
        serve(settings, extend=ui.install)
    except OpsmgrError as exc:
        fail(exc)


@contextlib.contextmanager
def _offline(conf: Path | None, data_dir: Path | None) -> Iterator[Services]:
    """The services over this configuration's stores, opened by the command itself (a server may run)."""
    from opsmgr.server.boot import opened
    from opsmgr.server.settings import load_settings

    settings, _ = load_settings(conf_path=conf, data_dir=data_dir)
    with opened(settings) as services:
        yield services


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(
        ..., "--role", help="ORG_OWNER, ORG_READ_ONLY, or a GROUP_* role with --group-id."
    ),
    desc: str = typer.Option("created with opsmgr keys create", "--desc"),
    org_id: str | None = typer.Option(
        None, "--org-id", help="Organization (default: the only one, or a new one)."
    ),
    group_id: str | None = typer.Option(None, "--group-id", help="Project, for GROUP_* roles."),
    as_json: bool = typer.Option(False, "--json", help="Print {publicKey, privateKey, ...} as JSON."),
    conf: Path | None = ConfOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Create a programmatic API key directly in the application database (bootstraps the first key)."""
    try:
        with _offline(conf, data_dir) as ctx:
            roles = _roles_for(ctx.appdb, role, org_id, group_id)
            key, private = ctx.appdb.create_api_key(desc, roles)
    except OpsmgrError as exc:
        fail(exc)
    record = {"id": key["_id"], "publicKey": key["publicKey"], "privateKey": private, "roles": roles}
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
    else:
        out.print(f"public key:  {record['publicKey']}\nprivate key: {private}  (shown once: keep it now)")
        out.print(f"roles:       {', '.join(r['roleName'] for r in roles)}")


def _roles_for(appdb: AppDB, role: str, org_id: str | None, group_id: str | None) -> list[dict[str, str]]:
    """One role of an organization (given, the only one, or a new one) or, with ``group_id``, of a project."""
    from opsmgr.store.appdb import GROUP_ROLES, ORG_ROLES, parse_roles

    if group_id is not None:
        group = appdb.group(group_id)
        return [
            {"groupId": group["_id"], "roleName": r.value} for r in parse_roles([role], GROUP_ROLES, "role")
        ]
    org_id = org_id or default_org(appdb)
    appdb.org(org_id)
    return [{"orgId": org_id, "roleName": r.value} for r in parse_roles([role], ORG_ROLES, "role")]


def _new_password() -> str:
    """The password from stdin when it is not a terminal (scripts), else asked for twice without echo."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("create")
def users_create(
    username: str = typer.Option(..., "--username"),
    role: str = typer.Option(
        ..., "--role", help="ORG_OWNER, ORG_READ_ONLY, or a GROUP_* role with --group-id."
    ),
    org_id: str | None = typer.Option(
        None, "--org-id", help="Organization (default: the only one, or a new one)."
    ),
    group_id: str | None = typer.Option(None, "--group-id", help="Project, for GROUP_* roles."),
    conf: Path | None = ConfOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Create a web UI user in the application database; the password is asked for, or read from stdin."""
    try:
        password = _new_password()
        with _offline(conf, data_dir) as ctx:
            user = ctx.users.create(username, password, _roles_for(ctx.appdb, role, org_id, group_id))
    except OpsmgrError as exc:
        fail(exc)
    out.print(f"user {user.username} created with {', '.join(name for _s, _i, name in user.roles)}")


@users_app.command("list")
def users_list(conf: Path | None = ConfOpt, data_dir: Path | None = DataDirOpt) -> None:
    """The web UI users and their roles."""
    try:
        with _offline(conf, data_dir) as ctx:
            users = ctx.users.all()
    except OpsmgrError as exc:
        fail(exc)
    for user in sorted(users, key=lambda u: u.username.lower()):
        roles = ", ".join(f"{name} on {scope[:-2]} {ident}" for scope, ident, name in user.roles)
        out.print(f"{user.username}  {roles}", highlight=False)


@users_app.command("delete")
def users_delete(
    username: str = typer.Option(..., "--username"),
    conf: Path | None = ConfOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Delete a web UI user; their sessions end at once."""
    try:
        with _offline(conf, data_dir) as ctx:
            ctx.users.delete(username)
    except OpsmgrError as exc:
        fail(exc)
    out.print(f"user {username} deleted")


@dataclasses.dataclass
class _Fenceable:
    """The backing databases a restore fences, and the downloads a killed restore may have left."""

    stores: dict[str, Store]
    download: Path  # the well-known download folder beside this configuration

    def downloads(self) -> list[Path]:
        """That folder, and any other one a standing fence names."""
        from opsmgr.store.installation import read_fence

        named = {Path(f.download) for s in self.stores.values() if (f := read_fence(s)) and f.download}
        return sorted(named | {self.download})

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def _fenceable(conf: Path | None, data_dir: Path | None) -> _Fenceable:
    from opsmgr.backup.restore_download import download_folder
    from opsmgr.server.boot import open_stores
    from opsmgr.server.settings import load_settings

    settings, _ = load_settings(conf_path=conf, data_dir=data_dir)
    stores = open_stores(settings)
    conf_dir = settings.conf_path.parent if settings.conf_path else settings.gen_key_path.parent
    return _Fenceable(
        {"app": stores.app, "snapshot": stores.snapshots, "oplog": stores.oplogs}, download_folder(conf_dir)
    )


@fence_app.command("show")
def fence_show(conf: Path | None = ConfOpt, data_dir: Path | None = DataDirOpt) -> None:
    """Show the restore fence, if any, on each backing database (works while the server refuses to start),
    and the download a killed restore left behind."""
    from opsmgr.backup.restore_download import leftover
    from opsmgr.store.installation import read_fence

    try:
        fenceable = _fenceable(conf, data_dir)
        try:
            for label, store in fenceable.stores.items():
                fence = read_fence(store)
                out.print(
                    f"{label:9} {store.safe_url}: {fence.describe() if fence else 'no fence'}",
                    highlight=False,
                )
            for folder in filter(leftover, fenceable.downloads()):
                out.print(
                    f"download  {folder}: left by an interrupted restore (store contents, agent-key hashes "
                    "included); `opsmgr fence remove` or the next restore deletes it",
                    highlight=False,
                )
        finally:
            fenceable.close()
    except OpsmgrError as exc:
        fail(exc)


@fence_app.command("remove")
def fence_remove(
    store_name: str = typer.Option(..., "--store", help="app, snapshot or oplog."),
    restore_job: str = typer.Option(..., "--restore-job", help="The restore job the fence must belong to."),
    conf: Path | None = ConfOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Remove an abandoned restore fence: only when nothing is restoring into that database any more. The
    download an interrupted restore left goes with it."""
    from opsmgr.backup.restore_download import remove_leftover
    from opsmgr.store.installation import remove_fence

    try:
        fenceable = _fenceable(conf, data_dir)
        try:
            if store_name not in fenceable.stores:
                raise InvalidInput("--store must be app, snapshot or oplog", field="--store")
            # First: a download still locked means its restore is running, and then nothing is removed.
            deleted = [folder for folder in fenceable.downloads() if remove_leftover(folder)]
            removed = remove_fence(fenceable.stores[store_name], restore_job_id=restore_job)
        finally:
            fenceable.close()
    except OpsmgrError as exc:
        fail(exc)
    out.print("fence removed" if removed else "no fence on that database")
    for folder in deleted:
        out.print(f"deleted the download an interrupted restore left in {folder}", highlight=False)


@app.command()
def agent(
    config: Path = typer.Option(
        ..., "--config", help="Path of automation-agent.config.", exists=True, dir_okay=False
    ),
) -> None:
    """Run the agent of one host: automation (goal state), backup and monitoring."""
    from opsmgr.agent.main import run_agent

    try:
        run_agent(config)
    except OpsmgrError as exc:
        fail(exc)


def _fleet_agent_key(key_file: Path | None, on_command_line: str | None) -> str:
    """The agent API key from ``--agent-key-file`` or else the environment; never from the command line."""
    from opsmgr.agent.fleet import AGENT_KEY_ENV

    safe_ways = (
        f"give it in a file with --agent-key-file PATH (mode 0600) or in the environment as {AGENT_KEY_ENV}"
    )
    if on_command_line is not None:
        raise InvalidInput(
            f"--agent-key would show the key to every user of this host (ps): {safe_ways}",
            field="--agent-key",
        )
    if key_file is None:
        key = os.environ.get(AGENT_KEY_ENV, "").strip()
        if not key:
            raise InvalidInput(
                f"the project's agent API key is missing: {safe_ways}", field="--agent-key-file"
            )
        return key
    try:
        key = key_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"cannot read --agent-key-file {key_file}: {exc}", field="--agent-key-file"
        ) from None
    if not key:
        raise InvalidInput(f"--agent-key-file {key_file} is empty", field="--agent-key-file")
    return key


@app.command()
def fleet(
    url: str = typer.Option(..., "--url", help="The server's base URL (mmsBaseUrl)."),
    group_id: str = typer.Option(..., "--group-id", help="Project id (mmsGroupId)."),
    agent_key_file: Path | None = typer.Option(
        None,
        "--agent-key-file",
        dir_okay=False,
        help="File holding the project's agent API key (mmsApiKey); or set OPSMGR_AGENT_KEY.",
    ),
    agent_key: str | None = typer.Option(
        None, "--agent-key", hidden=True, help="Refused: the key would show in ps."
    ),
    hosts: str | None = typer.Option(None, "--hosts", help="Comma-separated simulated hostnames."),
    count: int = typer.Option(0, "--count", min=0, max=100_000, help="Or: this many generated hostnames."),
    state_dir: Path = typer.Option(..., "--state-dir", help="Root of the per-host state dirs."),
    world: Path | None = typer.Option(None, "--world", help="Shared SimWorld file (default: in memory)."),
    poll_interval: float = typer.Option(10.0, "--poll-interval", min=0.05, help="Seconds between polls."),
) -> None:
    """Run many simulated hosts, each with a full agent loop, in one process (for demos, tests and load)."""
    from opsmgr.agent.fleet import run_fleet

    names = [h.strip() for h in hosts.split(",") if h.strip()] if hosts else []
    if not names and not count:
        fail(InvalidInput("give --hosts or --count", field="--hosts"))
    try:
        run_fleet(
            base_url=url,
            group_id=group_id,
            api_key=_fleet_agent_key(agent_key_file, agent_key),
            hostnames=names or None,
            count=count,
            state_root=state_dir,
            world_path=world,
            poll_interval=poll_interval,
        )
    except OpsmgrError as exc:
        fail(exc)


if __name__ == "__main__":  # pragma: no cover
    app()

"""``opsmgr index``: the supervised unique index build from the command line, over the public API.

``build-unique`` starts a build, has the operator confirm that writes to the collection are stopped (or
takes ``--yes-writes-stopped``), confirms it and shows its progress until it is DONE (exit 0) or ABORTED
(exit 1 with the reason). ``builds`` lists a project's builds; ``cancel`` cancels one. May import
``opsmgr.cli.api`` and ``opsmgr.errors``.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from opsmgr.cli.api import (
    CaFileOpt,
    GroupOpt,
    PrivateKeyOpt,
    PublicApi,
    PublicKeyOpt,
    UrlOpt,
    fail,
    public_api,
    watch,
)
from opsmgr.errors import InvalidInput, OpsmgrError

index_app = typer.Typer(no_args_is_help=True, help="Supervised unique index builds.")
out = Console(soft_wrap=True)

FINAL = ("DONE", "ABORTED")


def parse_key(specs: list[str]) -> list[list[Any]]:
    """``field:1`` / ``field:-1`` (repeatable, in order) as the API's ``[[field, 1], ...]``."""
    key: list[list[Any]] = []
    for spec in specs:
        field, sep, direction = spec.rpartition(":")
        if not sep or not field or direction not in ("1", "-1"):
            raise InvalidInput(f"--key {spec!r}: expected field:1 or field:-1", field="--key")
        key.append([field, int(direction)])
    return key


def _path(group: str, build_id: str = "") -> str:
    return f"/groups/{group}/uniqueIndexBuilds" + (f"/{build_id}" if build_id else "")


def fraction(build: dict[str, Any]) -> float:
    """Members built, plus the verification, over the whole; a finished build is complete."""
    if build.get("state") in FINAL:
        return 1.0
    progress = build.get("progress") or {}
    return float(progress.get("done", 0)) / (float(progress.get("total", 0)) + 1.0)


def describe(build: dict[str, Any]) -> str:
    progress = build.get("progress") or {}
    text = f"{build.get('state')} {progress.get('done', 0)}/{progress.get('total', 0)} members"
    activity = build.get("activity") or {}
    if build.get("state") not in FINAL and activity.get("note"):
        text += f" | {activity['note']}"
    return text


def _confirmed(ns: str) -> bool:
    try:
        return typer.confirm(
            f"Have ALL writes to {ns} been stopped, and will they stay stopped until the build ends? "
            "(a write during the build aborts it and drops the index from every member)"
        )
    except typer.Abort:  # no terminal to ask (end of input, Ctrl-C): not confirmed
        return False


@index_app.command("build-unique")
def build_unique(
    url: str = UrlOpt,
    group: str = GroupOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    rs: str = typer.Option(..., "--rs", help="Replica set (rsName)."),
    db: str = typer.Option(..., "--db", help="Database."),
    collection: str = typer.Option(..., "--collection", help="Collection."),
    key: list[str] = typer.Option(..., "--key", help="field:1 or field:-1; repeat for a compound key."),
    name: str | None = typer.Option(None, "--name", help="Index name (default: MongoDB's)."),
    lock_primary_writes: bool = typer.Option(
        False,
        "--lock-primary-writes",
        help="Hold every write to the primary (fsyncLock) while secondaries build.",
    ),
    yes_writes_stopped: bool = typer.Option(
        False,
        "--yes-writes-stopped",
        help="Confirm without asking that writes to the collection are stopped.",
    ),
    operator: str | None = typer.Option(None, "--operator", help="Who confirms (default: the OS user)."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=1, help="Give up watching after so many seconds."
    ),
) -> None:
    """Build a unique index member by member after you confirm that writes to the collection are stopped."""
    with public_api(url, public_key, private_key, ca_file) as api:
        options: dict[str, Any] = {"unique": True} | ({"name": name} if name else {})
        body = {
            "rsName": rs,
            "dbName": db,
            "collectionName": collection,
            "key": parse_key(key),
            "options": options,
            "lockPrimaryWrites": lock_primary_writes,
        }
        build_id = _start(api, group, body)
        _confirm(api, group, build_id, f"{db}.{collection}", yes_writes_stopped, operator)
        final = watch(
            lambda: dict(api.get(_path(group, build_id))),
            fraction,
            lambda b: b.get("state") in FINAL,
            description=f"unique index {db}.{collection}",
            status=describe,
            timeout_s=timeout,
        )
    _report_final(build_id, final)


def _start(api: PublicApi, group: str, body: dict[str, Any]) -> str:
    build = api.post(_path(group), body)
    build_id = str(build["id"])
    out.print(
        f"unique index build {build_id} on {body['dbName']}.{body['collectionName']} in {body['rsName']}: "
        f"members in order {', '.join(build['members'])}",
        highlight=False,
    )
    return build_id


def _confirm(
    api: PublicApi, group: str, build_id: str, ns: str, yes_writes_stopped: bool, operator: str | None
) -> None:
    """The operator confirms that writes to ``ns`` are stopped, or the build is cancelled."""
    if not (yes_writes_stopped or _confirmed(ns)):
        api.delete(_path(group, build_id))
        raise InvalidInput(f"not confirmed: build {build_id} cancelled", field="--yes-writes-stopped")
    api.post(
        _path(group, build_id) + "/confirm",
        {"writesStopped": True, "operator": operator or getpass.getuser()},
    )


def _report_final(build_id: str, final: dict[str, Any]) -> None:
    if final["state"] == "ABORTED":
        fail(OpsmgrError(f"unique index build {build_id} ABORTED: {final.get('reason')}"))
    out.print(
        f"unique index build {build_id} DONE: {len(final['members'])} members have the index; "
        "it is in the automation config's indexConfigs"
        + (" (the config change is still pending)" if final.get("configPending") else ""),
        highlight=False,
    )


@index_app.command("builds")
def list_builds(
    url: str = UrlOpt,
    group: str = GroupOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
) -> None:
    """List the project's unique index builds."""
    with public_api(url, public_key, private_key, ca_file) as api:
        builds = api.get_all(_path(group))["results"]
    table = Table("id", "namespace", "rs", "state", "progress", "reason")
    for b in builds:
        progress = b.get("progress") or {}
        table.add_row(
            b["id"],
            f"{b['dbName']}.{b['collectionName']}",
            b["rsName"],
            b["state"],
            f"{progress.get('done', 0)}/{progress.get('total', 0)}",
            b.get("reason") or "",
        )
    out.print(table)


@index_app.command("cancel")
def cancel_build(
    build_id: str = typer.Argument(..., help="The build's id."),
    url: str = UrlOpt,
    group: str = GroupOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
) -> None:
    """Cancel a build: the agents unlock the primary and drop the index wherever it was built."""
    with public_api(url, public_key, private_key, ca_file) as api:
        build = api.delete(_path(group, build_id))
    out.print(f"unique index build {build_id}: {build['state']} ({build.get('reason')})", highlight=False)

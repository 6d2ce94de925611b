"""``opsmgr demo`` and the commands that act on a running demo, found through the ``demo.json`` in its data
dir: the steps of the seed's restore of the backing databases, walked on the demo (README.md, "Walking a
restore with the demo").

``opsmgr demo`` alone runs the demo (``cli.demo``). ``status`` says what runs and where, the replica set's
goal state and MongoDB version, its Restoration Mode and its backup; ``env`` prints ``export`` lines with
the keys and ids the API commands need (keys go in the environment, never on a command line); ``point``
prints an instant once the secondary can restore all three backing databases to it; ``upgrade`` changes the
replica set's MongoDB version through the public API (a rolling restart) and waits for goal state, the kind of
change a restore to an earlier point must not undo; ``primary stop|start`` asks the demo to stop its primary
server or start it again (``cli.demo_control``).

May import ``opsmgr.errors``, ``opsmgr.timestamps``, ``opsmgr.cli.api``, ``opsmgr.cli.demo`` (run lazily)
and ``opsmgr.cli.demo_control``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from opsmgr.cli.api import PublicApi, fail
from opsmgr.cli.demo_control import primary_request, read_record, running_record, shell_exports
from opsmgr.errors import OpsmgrError
from opsmgr.timestamps import iso_utc

DEFAULT_DIR = Path("opsmgr-demo")
DataDirOpt = typer.Option(DEFAULT_DIR, "--data-dir", help="The running demo's data dir.")

demo_app = typer.Typer(
    invoke_without_command=True,
    help="The main job (run with no command); its commands act on the running demo.",
)
primary_app = typer.Typer(no_args_is_help=True, help="Stop the demo's primary server or start it again.")
demo_app.add_typer(primary_app, name="primary")
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


@demo_app.callback()
def demo(
    ctx: typer.Context,
    data_dir: Path = typer.Option(DEFAULT_DIR, "--data-dir", help="Where the demo keeps everything."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="The server's port."),
    poll_interval: float = typer.Option(
        1.0, "--poll-interval", min=0.05, help="Agent poll interval, seconds."
    ),
) -> None:
    """The main job: a server, a project, an API key and a simulated replica set at goal state, backed up,
    with a secondary server backing up the server's own databases."""
    if ctx.invoked_subcommand is not None:
        return
    from opsmgr.cli.demo import run_demo

    try:
        run_demo(data_dir, port, poll_interval=poll_interval)
    except OpsmgrError as exc:
        fail(exc)


@primary_app.command("stop")
def primary_stop(data_dir: Path = DataDirOpt) -> None:
    """Stop the primary server, as a lost host would; the agents and the secondary run on."""
    try:
        primary_request(data_dir, "stop")
    except OpsmgrError as exc:
        fail(exc)
    err.print("primary server stopped")


@primary_app.command("start")
def primary_start(data_dir: Path = DataDirOpt) -> None:
    """Start the primary server again, on the same port and data (after a restore: the restored data)."""
    try:
        primary = primary_request(data_dir, "start")
    except OpsmgrError as exc:
        fail(exc)
    err.print(f"primary server running again (pid {primary['pid']}); its log: {primary['log']}")


@demo_app.command("env")
def env(
    data_dir: Path = DataDirOpt,
    secondary: bool = typer.Option(
        False, "--secondary", help="OPSMGR_* of the secondary server, not the primary."
    ),
) -> None:
    """Print export lines, for eval "$(opsmgr demo env)": OPSMGR_URL, OPSMGR_PUBLIC_KEY,
    OPSMGR_PRIVATE_KEY, OPSMGR_GROUP and the DEMO_* ids of the walk."""
    try:
        typer.echo(shell_exports(read_record(data_dir), secondary=secondary), nl=False)
    except OpsmgrError as exc:
        fail(exc)


def _secondary_api(record: dict[str, Any]) -> PublicApi:
    sec = record["secondary"]
    return PublicApi(sec["url"], sec["publicKey"], sec["privateKey"])


def _primary_api(record: dict[str, Any]) -> PublicApi:
    return PublicApi(record["url"], record["publicKey"], record["privateKey"])


def restorable_together(backing: dict[str, Any], at_ms: int) -> bool:
    return any(
        r["startUTCMillis"] <= at_ms <= (r["endUTCMillis"] or 0)
        for r in backing.get("restorableTogether", [])
    )


@demo_app.command("point")
def point(
    data_dir: Path = DataDirOpt,
    timeout: float = typer.Option(120.0, "--timeout", min=1, help="Seconds to wait for the windows."),
) -> None:
    """Print the current instant (ISO 8601) once the secondary can restore the primary's three backing
    databases together to it: a restore point to choose."""
    at_ms = int(time.time() * 1000)
    try:
        record = running_record(data_dir)
        sec = record["secondary"]
        path = f"/groups/{sec['groupId']}/backingDatabases/{sec['clusterId']}"
        deadline = time.monotonic() + timeout
        with _secondary_api(record) as api:
            while not restorable_together(api.get(path), at_ms):
                if time.monotonic() > deadline:
                    raise OpsmgrError(
                        f"the secondary cannot restore all three stores to {iso_utc(at_ms)} yet"
                    )
                time.sleep(0.3)
    except OpsmgrError as exc:
        fail(exc)
    typer.echo(iso_utc(at_ms))


def next_patch(version: str) -> str:
    """``7.0.15`` after ``7.0.14``: the demo's default upgrade."""
    major, minor, patch = version.split(".")[:3]
    return f"{major}.{minor}.{int(patch.split('-')[0]) + 1}"


def wait_goal(api: PublicApi, group_id: str, version: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = api.get(f"/groups/{group_id}/automationStatus")
        reached = [p for p in status["processes"] if p["lastGoalVersionAchieved"] >= version]
        if status["processes"] and len(reached) == len(status["processes"]):
            return
        if time.monotonic() > deadline:
            raise OpsmgrError(
                f"{len(reached)} of {len(status['processes'])} processes at goal after {timeout:.0f}s"
            )
        time.sleep(0.3)


@demo_app.command("upgrade")
def upgrade(
    data_dir: Path = DataDirOpt,
    version: str | None = typer.Option(None, "--version", help="MongoDB version (default: the next patch)."),
    timeout: float = typer.Option(300.0, "--timeout", min=1, help="Seconds to wait for goal state."),
) -> None:
    """Change the replica set's MongoDB version through the public API (a rolling restart) and wait until
    every member runs it."""
    try:
        record = running_record(data_dir)
        group = record["groupId"]
        with _primary_api(record) as api:
            config = api.get(f"/groups/{group}/automationConfig")
            target = version or next_patch(config["processes"][0]["version"])
            for process in config["processes"]:
                process["version"] = target
            api.call("PUT", f"/groups/{group}/automationConfig", config)
            goal = int(api.get(f"/groups/{group}/automationStatus")["goalVersion"])
            err.print(f"rolling the replica set to MongoDB {target} (config version {goal})...")
            wait_goal(api, group, goal, timeout)
    except OpsmgrError as exc:
        fail(exc)
    err.print(f"every member runs MongoDB {target} (config version {goal})")


def describe(record: dict[str, Any]) -> dict[str, Any]:
    """What ``status`` shows: the processes, and (when the primary answers) the deployment's state."""
    view: dict[str, Any] = {
        "primary": {k: record["primary"][k] for k in ("state", "dataDir", "log")} | {"url": record["url"]},
        "secondary": {"url": record["secondary"]["url"]},
        "groupId": record["groupId"],
        "clusterId": record["clusterId"],
    }
    if record["primary"]["state"] != "running":
        return view
    group = record["groupId"]
    with _primary_api(record) as api:
        status = api.get(f"/groups/{group}/automationStatus")
        config = api.get(f"/groups/{group}/automationConfig")
        view["restorationMode"] = api.get(f"/groups/{group}/restorationMode")["state"]
        snapshots = api.get(f"/groups/{group}/clusters/{record['clusterId']}/snapshots")
    goal = status["goalVersion"]
    view["goalVersion"] = goal
    view["atGoal"] = sum(1 for p in status["processes"] if p["lastGoalVersionAchieved"] == goal)
    view["processes"] = len(status["processes"])
    view["mongodbVersions"] = sorted({p["version"] for p in config["processes"]})
    view["snapshots"] = snapshots["totalCount"]
    return view


def settled(view: dict[str, Any]) -> bool:
    """The primary runs, the project is out of Restoration Mode and every process is at goal."""
    processes = view.get("processes", 0)
    return view.get("restorationMode") == "INACTIVE" and processes > 0 and view["atGoal"] == processes


def settled_view(data_dir: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not settled(view := describe(running_record(data_dir))):
        if time.monotonic() > deadline:
            raise OpsmgrError(f"the demo did not settle within {timeout:.0f}s: {json.dumps(view)}")
        time.sleep(0.5)
    return view


@demo_app.command("status")
def status(
    data_dir: Path = DataDirOpt,
    as_json: bool = typer.Option(False, "--json", help="Print it as JSON."),
    wait: bool = typer.Option(
        False, "--wait", help="First wait until out of Restoration Mode with every process at goal."
    ),
    timeout: float = typer.Option(180.0, "--timeout", min=1, help="Seconds --wait waits at most."),
) -> None:
    """The demo's servers, and the replica set's goal state, MongoDB version, Restoration Mode and
    snapshots (as the primary serves them, while it runs)."""
    try:
        view = settled_view(data_dir, timeout) if wait else describe(running_record(data_dir))
    except OpsmgrError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    primary = view["primary"]
    out.print(f"primary     {primary['url']}  {primary['state']}  (data {primary['dataDir']})")
    out.print(f"secondary   {view['secondary']['url']}")
    out.print(f"project     {view['groupId']}, replica set cluster {view['clusterId']}")
    if "goalVersion" in view:
        versions = ", ".join(view["mongodbVersions"])
        out.print(
            f"goal        {view['atGoal']}/{view['processes']} processes at config version "
            f"{view['goalVersion']}, MongoDB {versions}"
        )
        out.print(f"restoration mode {view['restorationMode']}; {view['snapshots']} snapshots")

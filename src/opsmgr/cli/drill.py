"""``opsmgr drill run`` and ``opsmgr drill history``: the seed's required practice, a test restore of the
primary's backing databases into a sandbox, run on demand against the secondary that backs them up.

``run`` restores the three stores to one point (the latest at which they can be restored together, or
``--at``) into a fresh sandbox folder as a restore job of purpose DRILL (the secondary then leaves the
production backup as it is: no initial sync, no window hole), with the primary's preserved ``gen.key``
(``--gen-key``) and an embedded configuration marked ``mms.drill.sandbox`` (the sandbox delivers no
notification, backs nothing up and watches no secondary); starts a sandbox ``opsmgr server`` on loopback
and requires its preflight to pass and it to answer ready; then proves it reconciles (``cli.drill_shadow``:
shadow agents present the configurations the live primary serves now, read with ``--primary-*``, and the
sandbox must end on exactly them); stops everything it started and removes the sandbox unless ``--keep``.
Each step is timed and reported to the secondary (``POST .../backingDatabases/{cid}/drills``) with the
restore point, RPO and RTO and the stores' sizes; a failed drill exits non-zero and raises
``BACKUP_DRILL_FAILED`` there. ``history`` lists the kept drills. ``opsmgr backup verify`` runs the seed's
runbook checks (``backup.verify``) against the secondary, the last drill among them.

May import ``opsmgr.errors``, ``opsmgr.conf``, ``opsmgr.backup.verify``, ``opsmgr.store.crypto``,
``opsmgr.server.settings`` (the sandbox's embedded setup), ``opsmgr.cli.api``, ``opsmgr.cli.backup``,
``opsmgr.cli.demo`` (child processes), ``opsmgr.cli.drill_shadow``, ``opsmgr.cli.restore_ends`` (a stop
signal as an interrupt), ``opsmgr.cli.restore_targets`` and ``opsmgr.cli.secondary``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from opsmgr.backup.verify import Limits, verify
from opsmgr.cli.api import CaFileOpt, PrivateKeyOpt, PublicApi, PublicKeyOpt, UrlOpt, err, fail
from opsmgr.cli.backup import backup_app
from opsmgr.cli.demo import Children, free_port, start_server
from opsmgr.cli.drill_shadow import live_configs, prepare, start, wait_reconciled
from opsmgr.cli.restore_ends import stops_as_interrupts
from opsmgr.cli.restore_targets import parse_instant, restore_targets
from opsmgr.cli.secondary import no_bar, run_restore
from opsmgr.conf import backing_uris
from opsmgr.errors import InvalidInput, OpsmgrError
from opsmgr.server.settings import CONF_NAME, EMBEDDED_STORES, embedded_defaults
from opsmgr.store.crypto import GenKey

out = Console(soft_wrap=True)
drill_app = typer.Typer(no_args_is_help=True, help="Restore drills of the primary's backing databases.")

GroupOpt = typer.Option(..., "--group", envvar="OPSMGR_GROUP", help="The secondary's project id.")
ClusterOpt = typer.Option(..., "--cluster", help="The backing-database deployment's cluster id.")


@dataclass
class Drill:
    """The steps of one drill as they pass or fail, in order."""

    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    steps: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        """Times the block as the step ``name``; its ``detail`` is the block's to fill. An error fails the
        step (its message is the detail) and ends the drill."""
        began = time.monotonic()
        entry: dict[str, Any] = {"name": name, "passed": False, "detail": ""}
        self.steps.append(entry)
        try:
            yield entry
        except OpsmgrError as exc:
            entry["detail"] = exc.detail[:2000]
            raise
        finally:
            entry["seconds"] = round(time.monotonic() - began, 3)
        entry["passed"] = True

    def report(self, point_ms: int | None, job_id: str | None, sizes: dict[str, int]) -> dict[str, Any]:
        return {
            "passed": all(s["passed"] for s in self.steps),
            "started": self.started_ms,
            "finished": int(time.time() * 1000),
            "restorePointUTCMillis": point_ms,
            "restoreJobId": job_id,
            "storeBytes": sizes,
            "steps": self.steps,
        }


def latest_together(backing: dict[str, Any]) -> int:
    """The latest instant at which the three stores can be restored together."""
    ranges = backing.get("restorableTogether") or []
    if not ranges:
        raise InvalidInput("the three backing databases have no point they can be restored together yet")
    return int(ranges[-1]["endUTCMillis"])


def make_sandbox(folder: Path, gen_key: Path, port: int) -> Path:
    """An embedded setup in ``folder`` with the primary's gen.key, marked a drill's sandbox; its conf."""
    if not gen_key.is_file():
        raise InvalidInput(
            f"{gen_key} is not a file: give the primary's preserved gen.key", field="--gen-key"
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(gen_key, folder / "gen.key")
    (folder / "gen.key").chmod(0o600)
    embedded_defaults(folder, port)
    conf = folder / CONF_NAME
    conf.write_text(conf.read_text(encoding="utf-8") + "\nmms.drill.sandbox=true\n", encoding="utf-8")
    return conf


def store_sizes(folder: Path) -> dict[str, int]:
    names = {
        "mongo.mongoUri": "app",
        "mms.snapshotMetadataStore.uri": "snapshot",
        "mms.oplogMetadataStore.uri": "oplog",
    }
    return {
        names[key]: sum(p.stat().st_size for p in folder.glob(f"{file}*") if p.is_file())
        for key, file in EMBEDDED_STORES.items()
    }


@dataclass(frozen=True)
class DrillPlan:
    """What one drill restores, from where, into where, and whose live configuration it must end on."""

    secondary: PublicApi
    primary: PublicApi
    group: str
    cluster: str
    gen_key: Path
    at_ms: int | None
    folder: Path
    timeout_s: float = 120.0


def run_drill(plan: DrillPlan) -> dict[str, Any]:
    """The drill's steps into ``plan.folder`` (the caller removes it); the report, passed or not."""
    drill = Drill()
    point: int | None = None
    job_id: str | None = None
    children = Children()
    try:
        point, targets = _restore_point(drill, plan)
        with drill.step("live configuration") as s:
            live = live_configs(plan.primary)
            s["detail"] = f"{len(live)} project(s) read from the live primary"
        port = free_port()
        job_id, conf = _restore(drill, plan, targets, port)
        app_uri = backing_uris(conf).app
        genkey = GenKey.load(plan.gen_key)
        with drill.step("shadow agents") as s:
            made = prepare(app_uri, genkey, live, plan.folder, f"http://127.0.0.1:{port}")
            s["detail"] = f"{len(made.shadows)} simulated agent(s) holding the live configurations"
        with drill.step("sandbox preflight and start") as s:
            url = start_server(
                children, "sandbox server", plan.folder, port, plan.folder / "sandbox-server.log"
            )
            s["detail"] = f"the sandbox passed its preflight and answers ready at {url}"
        with drill.step("reconcile") as s:
            start(made.shadows, children)
            wait_reconciled(made, live, children, plan.timeout_s)
            s["detail"] = f"{len(made.readers)} project(s) serve exactly the live configuration"
    except OpsmgrError as exc:
        log_tail = _log_tail(plan.folder / "sandbox-server.log")
        if log_tail and drill.steps and not drill.steps[-1]["passed"]:
            drill.steps[-1]["detail"] = f"{exc.detail[:1000]}\n{log_tail}"[:2000]
    finally:
        children.stop()
    return drill.report(point, job_id, store_sizes(plan.folder) if plan.folder.exists() else {})


def _restore_point(drill: Drill, plan: DrillPlan) -> tuple[int, dict[str, dict[str, Any]]]:
    with drill.step("restore point") as s:
        backing = plan.secondary.get(f"/groups/{plan.group}/backingDatabases/{plan.cluster}")
        point = plan.at_ms if plan.at_ms is not None else latest_together(backing)
        targets = restore_targets(backing, at_ms=point, snapshot_id=None, app_only=False, metadata_at_ms=None)
        s["detail"] = f"all three stores to {point} (UTC ms)"
    return point, targets


def _restore(
    drill: Drill, plan: DrillPlan, targets: dict[str, dict[str, Any]], port: int
) -> tuple[str, Path]:
    with drill.step("restore into the sandbox") as s:
        conf = make_sandbox(plan.folder, plan.gen_key, port)
        done = run_restore(
            plan.secondary,
            plan.group,
            plan.cluster,
            conf,
            targets,
            force=False,
            confirm=lambda _p: True,
            bar=no_bar,
            purpose="DRILL",
        )
        s["detail"] = ", ".join(f"{n}: {c['documents']} documents" for n, c in done["stores"].items())
    return str(done["restoreJobId"]), conf


def _log_tail(path: Path, lines: int = 8) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@drill_app.command("run")
def run(
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    group: str = GroupOpt,
    cluster: str = ClusterOpt,
    gen_key: Path = typer.Option(..., "--gen-key", help="The primary's preserved gen.key."),
    primary_url: str = typer.Option(
        ..., "--primary-url", envvar="OPSMGR_PRIMARY_URL", help="The live primary."
    ),
    primary_public_key: str = typer.Option(
        ..., "--primary-public-key", envvar="OPSMGR_PRIMARY_PUBLIC_KEY", help="A key that reads its projects."
    ),
    primary_private_key: str = typer.Option(
        ..., "--primary-private-key", envvar="OPSMGR_PRIMARY_PRIVATE_KEY", help="That key's private part."
    ),
    primary_ca_file: Path | None = typer.Option(
        None, "--primary-ca-file", help="CA of the primary's HTTPS certificate."
    ),
    timeout: float = typer.Option(120.0, "--timeout", min=1.0, help="Seconds the sandbox has to reconcile."),
    at: str | None = typer.Option(None, "--at", help="Restore point, ISO 8601 (default: the latest)."),
    point_in_time_ms: int | None = typer.Option(None, "--point-in-time-ms", help="Or: ms since the epoch."),
    sandbox: Path | None = typer.Option(
        None, "--sandbox-dir", help="Where (default: a new temporary folder)."
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the sandbox folder afterwards."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Restore the primary's backing databases into a sandbox, start a sandbox server on them, prove it
    reconciles to the live primary's configurations with shadow agents, report."""
    try:
        if at is not None and point_in_time_ms is not None:
            raise InvalidInput("give --at or --point-in-time-ms, not both", field="--at")
        at_ms = parse_instant(at, "--at") if at is not None else point_in_time_ms
        folder = sandbox or Path(tempfile.mkdtemp(prefix="opsmgr-drill-"))
        if any(folder.iterdir()) if folder.exists() else False:
            raise InvalidInput(
                f"{folder} is not empty: a drill restores into a fresh folder", field="--sandbox-dir"
            )
        try:
            with (
                PublicApi(url, public_key, private_key, ca_file=ca_file) as api,
                PublicApi(
                    primary_url, primary_public_key, primary_private_key, ca_file=primary_ca_file
                ) as live,
            ):
                plan = DrillPlan(
                    api, live, group, cluster, gen_key.expanduser().resolve(), at_ms, folder, timeout
                )
                # Stopped (the secondary ending a scheduled drill sends SIGTERM): the drill still stops
                # its sandbox server and shadow agents, which would run on orphaned.
                with stops_as_interrupts():
                    report = run_drill(plan)
                kept = api.post(f"/groups/{group}/backingDatabases/{cluster}/drills", report)
        finally:
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
    except OpsmgrError as exc:
        fail(exc)
    _show(kept, as_json, folder if keep else None)
    if not kept["passed"]:
        raise typer.Exit(1)


def _show(drill: dict[str, Any], as_json: bool, kept_in: Path | None) -> None:
    if as_json:
        typer.echo(json.dumps(drill))
        return
    table = Table(title=f"restore drill {drill['id']}: {'PASSED' if drill['passed'] else 'FAILED'}")
    for column in ("step", "result", "seconds", "detail"):
        table.add_column(column)
    for step in drill["steps"]:
        table.add_row(
            step["name"], "pass" if step["passed"] else "FAIL", f"{step['seconds']:.1f}", step["detail"]
        )
    out.print(table)
    rpo, rto = drill["rpoSeconds"], drill["rtoSeconds"]
    rpo_text = "-" if rpo is None else f"{rpo:.1f} s"
    out.print(
        f"RPO {rpo_text} (restore point to the drill's start), RTO {rto:.1f} s; "
        f"stores: {', '.join(f'{n} {b} B' for n, b in drill['storeBytes'].items())}",
        highlight=False,
    )
    if kept_in is not None:
        err.print(f"the sandbox stays in {kept_in}", highlight=False)


@drill_app.command("history")
def history(
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    group: str = GroupOpt,
    cluster: str = ClusterOpt,
) -> None:
    """The deployment's restore drills, newest first."""
    try:
        with PublicApi(url, public_key, private_key, ca_file=ca_file) as api:
            drills = api.get_all(f"/groups/{group}/backingDatabases/{cluster}/drills")["results"]
    except OpsmgrError as exc:
        fail(exc)
    table = Table(title=f"restore drills of {cluster}")
    for column in ("started (UTC ms)", "result", "RPO", "RTO", "failed step"):
        table.add_column(column)
    for d in drills:
        broken = next((s["name"] for s in d["steps"] if not s["passed"]), "-")
        rpo = "-" if d["rpoSeconds"] is None else f"{d['rpoSeconds']:.1f} s"
        table.add_row(
            str(d["started"]), "PASSED" if d["passed"] else "FAILED", rpo, f"{d['rtoSeconds']:.1f} s", broken
        )
    out.print(table)


@backup_app.command("verify")
def verify_backup(
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    group: str = GroupOpt,
    cluster: str = ClusterOpt,
    hours: float = typer.Option(24.0, "--hours", min=0.0, help="The windows must be continuous this long."),
    max_lag: float = typer.Option(300.0, "--max-lag", min=0.0, help="Seconds the windows' ends may lag now."),
    drill_days: float = typer.Option(
        7.0, "--drill-days", min=0.0, help="The last drill must be this recent."
    ),
) -> None:
    """The seed's runbook checks on the secondary: a completed snapshot of each store, the windows continuous
    and advancing, a recent point the three restore to together, a recent passing drill, a healthy daemon.
    Exits non-zero naming what is missing."""
    try:
        with PublicApi(url, public_key, private_key, ca_file=ca_file) as api:
            base = f"/groups/{group}/backingDatabases/{cluster}"
            backing = api.get(base)
            drills = api.get(f"{base}/drills", itemsPerPage=1)["results"]
            daemon = _daemon_health(api)
    except OpsmgrError as exc:
        fail(exc)
    limits = Limits(hours=hours, max_lag_s=max_lag, drill_days=drill_days)
    checks = verify(backing, drills, daemon, int(time.time() * 1000), limits)
    table = Table(title=f"backup of the backing databases ({cluster})")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.name, "ok" if c.ok else "MISSING", c.detail)
    out.print(table)
    missing = [c.name for c in checks if not c.ok]
    if missing:
        err.print(f"missing: {', '.join(missing)}", highlight=False)
        raise typer.Exit(1)


def _daemon_health(api: PublicApi) -> dict[str, Any] | None:
    """The daemon section of the secondary's ``/health/ready`` (None when it does not answer)."""
    try:
        answer = api.client.get(api.client.base_url.copy_with(path="/health/ready", query=None), timeout=10)
        daemon = answer.json().get("daemon")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return daemon if isinstance(daemon, dict) else None

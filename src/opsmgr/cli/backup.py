"""``opsmgr backup``: snapshots and the PITR window, on-demand snapshots, restore jobs and their progress.

Owns the ``backup`` Typer group (other modules may attach commands to it, e.g. ``restore-stores``); every
command is a thin client of the public API through :mod:`opsmgr.cli.api` and imports nothing from the
server or the backup daemon. A refusal prints the server's message and exits non-zero: a point outside the
window (400) lists the restorable ranges, missing blocks are 409 "snapshot blocks missing".

``opsmgr backup cancel JOB --cluster C [--backing]`` cancels an automated restore in progress, of a
deployment or of the backing databases (``DELETE`` on the job), and prints what the target now holds.

``--cluster`` takes a cluster id or its replica set name. With ``--backing``, ``snapshots`` and ``jobs``
show the backing databases of a primary that this server backs up as its secondary (``--cluster``: their id
or name, ``/groups/{id}/backingDatabases``): the three stores' snapshots and windows side by side, the times
all three can be restored to together, and their restore jobs.

May import ``opsmgr.errors``, ``opsmgr.durable_file`` and ``opsmgr.cli.api``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.table import Table

from opsmgr.cli.api import (
    ApiFailed,
    CaFileOpt,
    GroupOpt,
    PrivateKeyOpt,
    PublicApi,
    PublicKeyOpt,
    UrlOpt,
    progress_bar,
    public_api,
    watch,
)
from opsmgr.durable_file import durable_output
from opsmgr.errors import InvalidInput

backup_app = typer.Typer(no_args_is_help=True, help="Continuous backup: snapshots, PITR window, restores.")

ClusterOpt = typer.Option(..., "--cluster", help="Cluster id or replica set name.")
BackingOpt = typer.Option(
    False, "--backing", help="--cluster names the backing databases of a primary (this server its secondary)."
)
JobOpt = typer.Option([], "--job", help="With --backing: show this restore job (repeatable).")
TimeoutOpt = typer.Option(600.0, "--timeout", min=1.0, help="Seconds to wait before giving up.")
out = Console(soft_wrap=True)
# Piped output is 80 columns by default, which would fold ids and dates: tables get room there.
tables = out if out.is_terminal else Console(width=180)
# Ops Manager's final restore job states (opsmgr's own ``phase`` says QUEUED, RUNNING, FINISHED, FAILED or
# CANCELLED: a cancelled job is KILLED).
DONE = ("FINISHED", "BROKEN", "KILLED")


def _cluster_name(c: dict[str, Any]) -> str:
    """A replica set by its name; a sharded cluster (which has none) by its own, which its parts share."""
    return str(c.get("replicaSetName") or c.get("clusterName") or "")


def _cluster_id(api: PublicApi, group: str, cluster: str) -> str:
    clusters = api.get_all(f"/groups/{group}/clusters")["results"]
    for c in clusters:
        if cluster in (c["id"], _cluster_name(c)):
            return str(c["id"])
    names = ", ".join(f"{_cluster_name(c)} ({c['id']})" for c in clusters) or "none"
    raise InvalidInput(f"no cluster {cluster!r} in project {group}; clusters: {names}", field="--cluster")


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _window_lines(window: list[dict[str, Any]]) -> list[str]:
    if not window:
        return ["point-in-time window: none yet"]
    lines = ["point-in-time window:"]
    for i, r in enumerate(window):
        if i:
            lines.append(f"  hole     {window[i - 1]['end']['date']} .. {r['start']['date']}")
        start, end = r["start"], r["end"]
        lines.append(
            f"  range    {start['date']} .. {end['date']}  "
            f"(oplog {start['time']}:{start['increment']} .. {end['time']}:{end['increment']})"
        )
    return lines


def _snapshot_cells(s: dict[str, Any], position: str) -> list[str]:
    """A snapshot's row: id, created, type, ``position`` as the table shows it, documents, blocks, expiry."""
    return [
        s["id"],
        s["created"]["date"],
        s["snapshotType"],
        position,
        str(s.get("documentCount", "")),
        f"{s.get('blockCount', '')} ({s.get('newBlockCount', '')})",
        s.get("expires") or "-",
    ]


@backup_app.command("snapshots")
def snapshots(
    cluster: str = ClusterOpt,
    group: str = GroupOpt,
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    backing: bool = BackingOpt,
) -> None:
    """The cluster's snapshots, newest first, and its point-in-time window as ranges with the holes; with
    --backing, the three backing databases' snapshots and windows side by side."""
    with public_api(url, public_key, private_key, ca_file) as api:
        if backing:
            _backing_snapshots(api, group, cluster)
            return
        cid = _cluster_id(api, group, cluster)
        listing = api.get_all(f"/groups/{group}/clusters/{cid}/snapshots")
    table = Table(title=f"snapshots of cluster {cid}")
    for column in ("id", "created", "type", "oplog position", "documents", "blocks (new)", "expires"):
        table.add_column(column)
    for s in listing["results"]:
        pos = s["lastOplogAppliedTimestamp"]
        table.add_row(*_snapshot_cells(s, f"{pos['time']}:{pos['increment']}"))
    tables.print(table)
    out.print("\n".join(_window_lines(listing.get("pitrWindow", []))), highlight=False)


@backup_app.command("snapshot")
def snapshot(
    cluster: str = ClusterOpt,
    group: str = GroupOpt,
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    timeout: float = TimeoutOpt,
) -> None:
    """Takes an on-demand snapshot and waits for it with a progress bar."""
    with public_api(url, public_key, private_key, ca_file) as api:
        cid = _cluster_id(api, group, cluster)
        base = f"/groups/{group}/clusters/{cid}/snapshots"
        wanted = set(api.post(base)["snapshotIds"])

        def read() -> dict[str, Any]:
            present = {s["id"] for s in api.get_all(base)["results"]}
            return {"done": len(wanted & present), "of": len(wanted)}

        watch(
            read,
            lambda r: r["done"] / r["of"],
            lambda r: bool(r["done"] == r["of"]),
            description="snapshot",
            status=lambda r: f"{r['done']} of {r['of']} taken",
            timeout_s=timeout,
        )
    out.print(f"snapshot taken: {', '.join(sorted(wanted))}", highlight=False)


def _target(
    snapshot_id: str | None,
    at: str | None,
    point_in_time_ms: int | None,
    oplog_ts: int | None,
    oplog_inc: int | None,
) -> dict[str, Any]:
    given = [x for x in (snapshot_id, at, point_in_time_ms, oplog_ts) if x is not None]
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one of --snapshot, --at, --point-in-time-ms or --oplog-ts", field="--at"
        )
    if oplog_inc is not None and oplog_ts is None:
        raise InvalidInput("--oplog-inc goes with --oplog-ts", field="--oplog-inc")
    if snapshot_id is not None:
        return {"snapshotId": snapshot_id}
    if oplog_ts is not None:
        return {"oplogTs": oplog_ts, "oplogInc": oplog_inc or 0}
    if at is not None:
        try:
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"--at {at!r} is not an ISO 8601 date and time", field="--at") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return {"pointInTimeUTCMillis": int(moment.timestamp() * 1000)}
    return {"pointInTimeUTCMillis": point_in_time_ms}


def _progress_of(job: dict[str, Any]) -> float:
    if job["statusName"] == "FINISHED":
        return 1.0
    return float((job.get("progress") or {}).get("fraction", 0.0))


def _status_of(job: dict[str, Any]) -> str:
    message = (job.get("progress") or {}).get("message", "")
    return f"{job.get('phase', job['statusName'])} {message}".strip()


def _why(job: dict[str, Any]) -> list[str]:
    """Why a job failed, or what a cancelled one left."""
    return [w for w in (job.get("failure"), (job.get("cancellation") or {}).get("statement")) if w]


def _download(api: PublicApi, job: dict[str, Any], size_hint: int, to: Path) -> int:
    link = job["delivery"].get("url")
    if not link:
        raise ApiFailed(f"restore job {job['id']} has no download link (expired?)")
    with progress_bar(f"download {to.name}") as update:
        try:
            with api.client.stream("GET", link) as response, durable_output(to) as out:
                if response.status_code >= 400:
                    response.read()
                    raise ApiFailed(
                        f"GET {link}: HTTP {response.status_code}: {response.text[:500]}",
                        response.status_code,
                    )
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    # The size is the snapshot's: an estimate of the download's, so the bar stops short of 1.
                    update(
                        min(out.written / size_hint, 0.99) if size_hint else 0.0,
                        f"{out.written / 1e6:,.1f} MB",
                    )
        except httpx.HTTPError as exc:
            raise ApiFailed(f"download interrupted: {exc}") from exc
        update(1.0, f"{out.written / 1e6:,.1f} MB")
    return out.written


@backup_app.command("restore")
def restore(
    cluster: str = ClusterOpt,
    group: str = GroupOpt,
    snapshot_id: str | None = typer.Option(None, "--snapshot", help="Restore this snapshot."),
    at: str | None = typer.Option(None, "--at", help="Point in time, ISO 8601 (UTC unless it says)."),
    point_in_time_ms: int | None = typer.Option(None, "--point-in-time-ms", min=0, help="Point in time, ms."),
    oplog_ts: int | None = typer.Option(None, "--oplog-ts", min=0, help="Oplog timestamp seconds."),
    oplog_inc: int | None = typer.Option(None, "--oplog-inc", min=0, help="Oplog timestamp increment."),
    target_group: str | None = typer.Option(None, "--target-group", help="Automated restore: project."),
    target_cluster: str | None = typer.Option(None, "--target-cluster", help="Automated restore: cluster."),
    download: Path | None = typer.Option(None, "--download", dir_okay=False, help="Download to this file."),
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    timeout: float = TimeoutOpt,
) -> None:
    """Restores a snapshot or a point in time (inclusive: the entry at exactly that point is applied) into
    another deployment (automated restore) or into a file (HTTP download, one JSON document per line)."""
    with public_api(url, public_key, private_key, ca_file) as api:
        if (download is None) == (target_cluster is None):
            raise InvalidInput("give either --download FILE or --target-cluster (with --target-group)")
        body = _target(snapshot_id, at, point_in_time_ms, oplog_ts, oplog_inc)
        cid = _cluster_id(api, group, cluster)
        base = f"/groups/{group}/clusters/{cid}"
        if download is not None:
            body["delivery"] = {"methodName": "HTTP", "expirationHours": 1}
        else:
            tgroup = target_group or group
            body["delivery"] = {
                "methodName": "AUTOMATED_RESTORE",
                "targetGroupId": tgroup,
                "targetClusterId": _cluster_id(api, tgroup, str(target_cluster)),
            }
        job = api.post(f"{base}/restoreJobs", body)["results"][0]
        out.print(f"restore job {job['id']} from snapshot {job['snapshotId']}", highlight=False)
        if download is not None:
            snap = api.get(f"{base}/snapshots/{job['snapshotId']}")
            size = sum(int(p.get("dataSizeBytes", 0)) for p in snap.get("parts", []))
            written = _download(api, job, size, download)
            out.print(f"downloaded {written:,} bytes to {download}", highlight=False)
            return
        final = watch(
            lambda: dict(api.get(f"{base}/restoreJobs/{job['id']}")),
            _progress_of,
            lambda j: j["statusName"] in DONE,
            description="restore",
            status=_status_of,
            timeout_s=timeout,
        )
        if final["statusName"] != "FINISHED":
            why = final.get("failure") or (final.get("cancellation") or {}).get("statement", "")
            raise ApiFailed(f"restore job {job['id']} {final.get('phase')}: {why}")
    out.print(f"restore job {job['id']} FINISHED", highlight=False)


@backup_app.command("cancel")
def cancel(
    job_id: str = typer.Argument(..., help="The restore job to cancel."),
    cluster: str = ClusterOpt,
    group: str = GroupOpt,
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    backing: bool = BackingOpt,
) -> None:
    """Cancels an automated restore in progress: its agents load no further member, the members restart on
    what they hold, and the job ends CANCELLED stating what each member now holds. With --backing, a restore
    of the backing databases its agent carries out: the agent stops at its next batch, and the statement
    names the stores restored, the one partly written and those untouched (once writing began, every store
    stays fenced until a restore completes). A job that ended is refused (409)."""
    with public_api(url, public_key, private_key, ca_file) as api:
        if backing:
            found = _backing(api, group, cluster)
            base = f"/groups/{found['groupId']}/backingDatabases/{found['id']}"
        else:
            base = f"/groups/{group}/clusters/{_cluster_id(api, group, cluster)}"
        job = api.delete(f"{base}/restoreJobs/{quote(job_id, safe='')}")
    statement = (job.get("cancellation") or {}).get("statement", "")
    out.print(f"restore job {job['id']} {job.get('phase', job['statusName'])}: {statement}", highlight=False)


@backup_app.command("jobs")
def jobs(
    cluster: str = ClusterOpt,
    group: str = GroupOpt,
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    backing: bool = BackingOpt,
    job_ids: list[str] = JobOpt,
) -> None:
    """The cluster's restore jobs, newest first; with --backing, those of the backing databases."""
    with public_api(url, public_key, private_key, ca_file) as api:
        if backing:
            _backing_jobs(api, group, cluster, job_ids)
            return
        if job_ids:
            raise InvalidInput("--job goes with --backing", field="--job")
        cid = _cluster_id(api, group, cluster)
        found = api.get_all(f"/groups/{group}/clusters/{cid}/restoreJobs")["results"]
    table = Table(title=f"restore jobs of cluster {cid}")
    for column in ("id", "created", "status", "delivery", "snapshot", "target time"):
        table.add_column(column)
    for j in found:
        delivery = j["delivery"]
        where = (
            f"{delivery['targetGroupId']}/{delivery['targetClusterId']}"
            if delivery["methodName"] == "AUTOMATED_RESTORE"
            else f"HTTP {delivery.get('statusName', '')}"
        )
        table.add_row(
            j["id"],
            j["created"],
            _status_of(j) + "".join(f" ({why})" for why in _why(j)),
            where,
            j["snapshotId"],
            (j.get("plan") or {}).get("targetTimestamp", {}).get("date", "-"),
        )
    tables.print(table)


# The backing databases of a secondary (``/groups/{id}/backingDatabases``): the three stores of a primary that
# this server backs up, each its own backup source, shown together because they are restored together.

STORE_ORDER = ("app", "snapshot", "oplog")


def _backing(api: PublicApi, group: str, cluster: str) -> dict[str, Any]:
    # Quoted: what the operator typed stays one path segment (a "../x" reaches no other resource).
    found = api.get_all(f"/groups/{quote(group, safe='')}/backingDatabases")["results"]
    for b in found:
        if cluster in (b["id"], b["clusterName"]):
            return dict(api.get(f"/groups/{b['groupId']}/backingDatabases/{b['id']}"))
    names = ", ".join(f"{b['clusterName']} ({b['id']})" for b in found) or "none"
    raise InvalidInput(
        f"no backing databases {cluster!r} in project {group}; backing databases: {names}", field="--cluster"
    )


def _range_lines(window: list[dict[str, Any]]) -> str:
    """One store's window for a cell of the side-by-side table: each range, and the holes between them."""
    if not window:
        return "none yet"
    lines = []
    for i, r in enumerate(window):
        if i:
            lines.append(f"hole {window[i - 1]['end']['date']} .. {r['start']['date']}")
        lines.append(f"{r['start']['date']} .. {r['end']['date']}")
    return "\n".join(lines)


def _backing_snapshots(api: PublicApi, group: str, cluster: str) -> None:
    backing = _backing(api, group, cluster)
    stores = sorted(
        backing["stores"], key=lambda s: STORE_ORDER.index(s["name"]) if s["name"] in STORE_ORDER else 9
    )
    name = f"{backing['clusterName']} ({backing['id']})"
    table = Table(title=f"snapshots of the backing databases {name}")
    for column in ("store", "id", "created", "type", "position", "documents", "blocks (new)", "expires"):
        table.add_column(column)
    for store in stores:
        for s in store["snapshots"]:
            pos = s["lastOplogAppliedTimestamp"]
            table.add_row(
                store["name"], *_snapshot_cells(s, f"{pos['date']} ({pos['time']}:{pos['increment']})")
            )
        if not store["snapshots"]:
            table.add_row(store["name"], "none yet", *[""] * 6)
    tables.print(table)
    windows = Table(title="point-in-time windows, side by side")
    windows.add_column("")
    for store in stores:
        windows.add_column(f"{store['name']} ({store.get('label', '')})".replace(" ()", ""))
    windows.add_row("restorable", *[_range_lines(s.get("pitrWindow", [])) for s in stores])
    windows.add_row("last slice", *[s.get("lastSliceReceivedAt") or "-" for s in stores])
    windows.add_row("initial sync required", *["yes" if s.get("syncRequired") else "no" for s in stores])
    tables.print(windows)
    together = backing.get("restorableTogether", [])
    lines = [f"  {_when(r['startUTCMillis'])} .. {_when(r['endUTCMillis'])}" for r in together]
    header = "all stores restorable together:" if together else "all stores restorable together: not yet"
    out.print("\n".join([header, *lines]), highlight=False)


def _backing_target(entry: dict[str, Any]) -> str:
    target = entry.get("target") or {}
    if "snapshotId" in target:
        return f"snapshot {target['snapshotId']}"
    if "pointInTimeUTCMillis" in target:
        return _when(int(target["pointInTimeUTCMillis"]))
    if "oplogTs" in target:
        return f"oplog {target['oplogTs']}:{target.get('oplogInc', 0)}"
    return str(target)


def _backing_jobs_of(api: PublicApi, base: str, job_ids: list[str]) -> list[dict[str, Any]]:
    if job_ids:
        return [dict(api.get(f"{base}/{quote(j, safe='')}")) for j in job_ids]
    try:
        return list(api.get_all(base)["results"])
    except ApiFailed as exc:
        # A server without the list of backing restore jobs answers 404, or 405 (the path exists for POST).
        if exc.status not in (404, 405):
            raise
        raise ApiFailed(
            "this server does not list the restore jobs of backing databases "
            f"(GET {base}: HTTP {exc.status}); name them with --job ID"
        ) from exc


def _backing_jobs(api: PublicApi, group: str, cluster: str, job_ids: list[str]) -> None:
    backing = _backing(api, group, cluster)
    base = f"/groups/{backing['groupId']}/backingDatabases/{backing['id']}/restoreJobs"
    found = _backing_jobs_of(api, base, job_ids)
    table = Table(title=f"restore jobs of the backing databases {backing['clusterName']} ({backing['id']})")
    for column in ("id", "created", "status", "stores and targets", "finished"):
        table.add_column(column)
    for j in found:
        stores = []
        for store, entry in sorted(j.get("stores", {}).items()):
            progress = entry.get("progress") or {}
            done = f" {progress['fraction']:.0%} {progress.get('message', '')}".rstrip() if progress else ""
            stores.append(f"{store}: {_backing_target(entry)}{done}")
        # An agent's restore: how far it is; a cancelled one: what each store holds.
        said = j.get("detail") or (j.get("cancellation") or {}).get("statement")
        going = j.get("progress") if j.get("phase") in ("QUEUED", "RUNNING") else None
        if going:
            said = f"{going['phase']} {going.get('percent', 0)}%: {going.get('message', '')}".rstrip(": ")
        table.add_row(
            j["id"],
            j.get("created") or "-",
            j["statusName"] + (f" ({said})" if said else ""),
            "\n".join(stores),
            j.get("finished") or "-",
        )
    tables.print(table)


OptionalGroupOpt = typer.Option(None, "--group", envvar="OPSMGR_GROUP", help="Project (group) id.")
OptionalClusterOpt = typer.Option(
    None, "--cluster", help="Cluster id or replica set name (with --group); without it, the whole blockstore."
)


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _capacity_row(figures: dict[str, Any]) -> list[str]:
    ratio, growth = figures.get("dedupRatio"), figures.get("growthBytesPerDay")
    return [
        _size(figures["storedBytes"]),
        _size(figures["logicalBytes"]),
        "-" if ratio is None else f"{ratio:.2f}x",
        "-" if growth is None else f"{_size(growth)}/day",
        *(_size(p["storedBytes"]) for p in figures["projections"]),
    ]


def _capacity_table(title: str, first: str, rows: list[tuple[str, dict[str, Any]]]) -> Table:
    table = Table(title=title)
    for column in (first, "stored", "logical", "dedup", "growth", "in 30 days", "in 90 days", "in 365 days"):
        table.add_column(column)
    for name, figures in rows:
        table.add_row(name, *_capacity_row(figures))
    return table


def _disk_line(whole: dict[str, Any]) -> str:
    disk = (
        "disk: not visible (the blockstore is a database)"
        if whole["diskFreeBytes"] is None
        else f"disk: {_size(whole['diskFreeBytes'])} free of {_size(whole['diskTotalBytes'])}"
    )
    days = whole.get("daysUntilFull")
    if days is None:
        return f"{disk}; it does not fill at the measured growth under the schedules' retention"
    return f"{disk}; full in {days:.1f} days ({whole['fullDate']}) at the measured growth"


@backup_app.command("capacity")
def capacity(
    cluster: str | None = OptionalClusterOpt,
    group: str | None = OptionalGroupOpt,
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
) -> None:
    """Stored bytes, dedup ratio, growth per day and projected storage at 30/90/365 days under the schedule's
    retention: of one cluster (--cluster, a project reader's key), or of every backed-up source and the
    whole blockstore with when its disk fills (an ORG_OWNER or ORG_READ_ONLY key)."""
    with public_api(url, public_key, private_key, ca_file) as api:
        if cluster is not None:
            if group is None:
                raise InvalidInput("--cluster needs --group (or OPSMGR_GROUP)", field="--group")
            cid = _cluster_id(api, group, cluster)
            figures = api.get(f"/groups/{group}/clusters/{cid}/backup/capacity")
            tables.print(_capacity_table(f"capacity of cluster {cid}", "cluster", [(cid, figures)]))
            out.print(
                f"measured from {figures['growthMeasuredFromSnapshots']} recent snapshot(s)", highlight=False
            )
            return
        whole = api.get_all("/admin/backup/capacity")
    rows = [(f"{s['replicaSetName']} ({s['clusterId']})", s) for s in whole["results"]]
    rows.append(("whole blockstore", whole))
    tables.print(_capacity_table("blockstore capacity", "source", rows))
    out.print(_disk_line(whole), highlight=False)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


@backup_app.command("daemon")
def daemon(
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
) -> None:
    """The Backup Daemon's jobs, one per backed-up source: whether it ingests, its ingest lag, the age of
    its last snapshot, its queues and its last error (an ORG_OWNER or ORG_READ_ONLY key)."""
    with public_api(url, public_key, private_key, ca_file) as api:
        whole = api.get_all("/admin/backup/daemon")
    table = Table(title=f"backup daemon: {whole['sourceCount']} source(s), {whole['errorsTotal']} error(s)")
    for column in ("source", "ingesting", "ingest lag", "last snapshot", "slices", "snapshots", "last error"):
        table.add_column(column)
    for job in whole["results"]:
        table.add_row(
            f"{job['replicaSetName']} ({job['kind']})",
            "yes" if job["ingesting"] else "no",
            _seconds(job["ingestLagSeconds"]),
            "never" if job["lastSnapshotAt"] is None else f"{_seconds(job['lastSnapshotAgeSeconds'])} ago",
            str(job["queue"]["slicesPending"]),
            str(job["queue"]["snapshotsRequested"]),
            job["lastError"] or "-",
        )
    tables.print(table)

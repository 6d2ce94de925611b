"""``opsmgr secondary attach`` and ``opsmgr backup restore-stores``: a secondary server that backs up a
primary's three backing databases, and restoring them from it (the seed's procedure).

``attach`` creates, through the secondary's public API, the project whose deployment is the primary's backing
databases, writes the ``automation-agent.config`` with which ``opsmgr agent`` on the primary's host backs
them up to the secondary, and records the secondary in the primary's application database
(``backup.secondaries``), from which the primary watches it and raises the global alert
``BACKUP_SECONDARY_UNREACHABLE`` when it stops answering.

``restore-stores`` runs on the primary's host, with the primary stopped:

1. it takes the running-server lock (``store.running``): refused, naming the running server, while the primary
   serves, and the primary cannot start while the restore holds it;
2. asks the secondary for a restore job of the chosen stores to the chosen points (400 outside the window,
   409 "snapshot blocks missing") and downloads every restored store completely before touching anything;
3. applies the seed's rules (``backup.store_restore.decide``): a metadata store earlier than the application
   database is refused, naming the restore jobs that would answer 409, unless ``--force``; ``--app-only``
   names the snapshots that may become unavailable;
4. writes the restore fence on every target store, asks for confirmation (``--yes`` skips it), replaces each
   store's documents (an empty database, a missing SQLite file created, when the old ones are lost), tells the
   secondary (which then resyncs its backup of the restored stores), and removes the fences last.

A thin client of the public API (:mod:`opsmgr.cli.api`) plus the stores it restores; the job's targets are
``cli.restore_targets``'.

May import ``opsmgr.errors``, ``opsmgr.conf``, ``opsmgr.properties``, ``opsmgr.agent.state``,
``opsmgr.backup.restore_download``, ``opsmgr.backup.secondaries``,
``opsmgr.backup.store_replace``, ``opsmgr.backup.store_restore``, ``opsmgr.restoration.record``,
``opsmgr.store``, ``opsmgr.cli.api``, ``opsmgr.cli.backup``, ``opsmgr.cli.restore_ends`` and
``opsmgr.cli.restore_targets``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from opsmgr.agent.state import atomic_write
from opsmgr.backup.restore_download import claimed, private_opener
from opsmgr.backup.secondaries import record_secondary
from opsmgr.backup.store_replace import fence_all, replace_documents, unfence_unwritten
from opsmgr.backup.store_restore import (
    Facts,
    Plan,
    Points,
    RestoreRefused,
    decide,
    jobs_from,
    snapshots_from,
)
from opsmgr.cli.api import (
    ApiFailed,
    CaFileOpt,
    PrivateKeyOpt,
    PublicApi,
    PublicKeyOpt,
    UrlOpt,
    fail,
    progress_bar,
)
from opsmgr.cli.backup import backup_app
from opsmgr.cli.restore_ends import (
    RestoreAborted,
    RestoreInterrupted,
    aborted_message,
    interrupted_message,
    stops_as_interrupts,
)
from opsmgr.cli.restore_targets import parse_instant, restore_targets
from opsmgr.conf import backing_uris
from opsmgr.errors import InvalidInput, OpsmgrError, StoreError
from opsmgr.properties import dump_properties
from opsmgr.restoration import record
from opsmgr.store.backing import LABELS, StoreName
from opsmgr.store.engine import Store
from opsmgr.store.installation import read_fence, remove_fence
from opsmgr.store.running import hold_for_restore

secondary_app = typer.Typer(no_args_is_help=True, help="A secondary server that backs up a primary's stores.")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

PrimaryConfOpt = typer.Option(
    None, "--primary-conf", help="The primary's conf-mms.properties.", dir_okay=False
)
PrimaryDirOpt = typer.Option(None, "--primary-data-dir", help="Or: the primary's embedded data dir.")
CONF_NAME = "conf-mms.properties"


def primary_conf_path(conf: Path | None, data_dir: Path | None) -> Path:
    if (conf is None) == (data_dir is None):
        raise InvalidInput("give either --primary-conf or --primary-data-dir", field="--primary-conf")
    chosen = conf if conf is not None else Path(str(data_dir)) / CONF_NAME
    path = chosen.expanduser().resolve()
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist: name the primary's configuration", field="--primary-conf")
    return path


# attach


def find_or_create_group(api: PublicApi, name: str) -> str:
    for g in api.get_all("/groups")["results"]:
        if g["name"] == name:
            return str(g["id"])
    return str(api.post("/groups", {"name": name})["id"])


def attach_secondary(
    api: PublicApi,
    url: str,
    conf: Path,
    *,
    group_name: str,
    hostname: str,
    agent_dir: Path,
    slice_seconds: float = 1.0,
    poll_interval: float = 5.0,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """Creates the backing-database deployment on the secondary, writes the agent config and records the
    secondary on the primary (both trusting ``ca_file`` for the secondary's HTTPS certificate, when given);
    returns ``{groupId, clusterId, agentConfig}``."""
    app_uri = backing_uris(conf).app  # the configuration must be readable before anything is created
    group_id = find_or_create_group(api, group_name)
    agent_key = api.post(f"/groups/{group_id}/agentapikeys", {"desc": f"backing databases of {hostname}"})[
        "key"
    ]
    cluster = api.post(
        f"/groups/{group_id}/backingDatabases", {"clusterName": "backing-databases", "hostname": hostname}
    )
    agent_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config_path = agent_dir / "automation-agent.config"
    values = {
        "mmsGroupId": group_id,
        "mmsApiKey": agent_key,
        "mmsBaseUrl": url.rstrip("/"),
        "hostname": hostname,
        "stateDir": str(agent_dir / "state"),
        "logFile": str(agent_dir / "agent.log"),
        # The secondary's project runs no MongoDB process: this agent's automation side has nothing to do.
        "driver": "sim",
        "sim.world": ":memory:",
        "pollIntervalSeconds": repr(poll_interval),
        "backing.primaryConf": str(conf),
        "backing.sliceSeconds": repr(slice_seconds),
    }
    if ca_file is not None:
        values["sslTrustedMMSServerCertificate"] = str(ca_file.resolve())
    # It holds the agent API key: 0600 from its first byte.
    atomic_write(config_path, dump_properties(values, header="written by opsmgr secondary attach").encode())
    primary_app = Store(app_uri, name="primary's application database")
    try:
        record_secondary(primary_app, url, group_id, cluster["id"], int(time.time() * 1000), ca_file=ca_file)
    finally:
        primary_app.close()
    return {"groupId": group_id, "clusterId": cluster["id"], "agentConfig": str(config_path)}


@secondary_app.command("attach")
def attach(
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    primary_conf: Path | None = PrimaryConfOpt,
    primary_data_dir: Path | None = PrimaryDirOpt,
    group: str = typer.Option(
        "primary-backing-databases", "--group", help="Name of the secondary's project."
    ),
    hostname: str = typer.Option(socket.gethostname(), "--hostname", help="The primary's host name."),
    agent_dir: Path | None = typer.Option(None, "--agent-dir", help="Where to write the agent config."),
    slice_seconds: float = typer.Option(1.0, "--slice-seconds", min=0.05, help="Seconds between slices."),
    poll_interval: float = typer.Option(5.0, "--poll-interval", min=0.05, help="Agent poll interval."),
    as_json: bool = typer.Option(False, "--json", help="Print {groupId, clusterId, agentConfig} as JSON."),
) -> None:
    """Make a server the secondary of a primary: a project backing up the primary's three stores."""
    try:
        conf = primary_conf_path(primary_conf, primary_data_dir)
        with PublicApi(url, public_key, private_key, ca_file=ca_file) as api:
            record = attach_secondary(
                api,
                url,
                conf,
                group_name=group,
                hostname=hostname,
                agent_dir=(agent_dir or conf.parent / "backing-agent").resolve(),
                slice_seconds=slice_seconds,
                poll_interval=poll_interval,
                ca_file=ca_file,
            )
    except OpsmgrError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(record))
        return
    out.print(
        f"secondary project {record['groupId']}, backing-database deployment {record['clusterId']}\n"
        f"start the agent on the primary's host:  opsmgr agent --config {record['agentConfig']}",
        highlight=False,
    )


# restore-stores


@dataclass
class Download:
    name: str
    path: Path
    documents: int

    def docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                item = json.loads(line)
                yield item["ns"], item["doc"]


def download_store(api: PublicApi, path: str, name: str, folder: Path, update: Any) -> Download:
    """Streams one store's restored documents to a file; a stream without its end line is an error."""
    target = folder / f"{name}.jsonl"
    count = 0
    ended = None
    try:
        with (
            api.client.stream("GET", path, timeout=None) as response,
            open(target, "w", encoding="utf-8", opener=private_opener) as f,
        ):
            if response.status_code >= 400:
                response.read()
                raise ApiFailed(
                    f"GET {path}: HTTP {response.status_code}: {response.text[:300]}", response.status_code
                )
            for line in response.iter_lines():
                if not line:
                    continue
                item = json.loads(line)
                if item.get("end"):
                    ended = item
                    break
                f.write(line + "\n")
                count += 1
                if count % 500 == 0:
                    update(f"{LABELS[name]}: {count} documents received")
    except (OSError, ValueError) as exc:
        raise ApiFailed(f"downloading the restored {LABELS[name]}: {exc}") from exc
    except Exception as exc:  # httpx errors while streaming
        if isinstance(exc, OpsmgrError):
            raise
        raise ApiFailed(f"downloading the restored {LABELS[name]} was cut: {exc}") from exc
    if ended is None or ended.get("documents") != count:
        raise ApiFailed(f"the restored {LABELS[name]} arrived incomplete ({count} documents, no end mark)")
    return Download(name, target, count)


def open_target(name: str, uri: str) -> Store:
    """The store to restore into; a lost SQLite file is created, a PostgreSQL database must exist (empty)."""
    import sqlalchemy as sa

    url = sa.engine.make_url(uri)
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        return Store(uri, name=f"primary's {LABELS[name]}")
    except StoreError as exc:
        raise StoreError(
            f"{exc.detail}\nIf the database was lost, provision an empty one with the same name "
            f"({url.database}) and run the restore again."
        ) from exc


def current_snapshots(uri: str) -> Facts | None:
    """The snapshots the primary's snapshot metadata store holds now (None when it is lost or unreadable)."""
    import sqlalchemy as sa

    url = sa.engine.make_url(uri)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return None
    try:
        store = Store(uri, name="primary's snapshot metadata store")
    except StoreError:
        return None
    try:
        docs = [(c, d) for c in store.collections() for d in store.find(c)]
    finally:
        store.close()
    return Facts(current_snapshots=snapshots_from(docs))


Bar = Callable[[str], AbstractContextManager[Callable[[float, str], None]]]


@contextmanager
def no_bar(_description: str) -> Iterator[Callable[[float, str], None]]:
    """For ``--json``: the output is the JSON document alone."""
    yield lambda _fraction, _status: None


def run_restore(
    api: PublicApi,
    group_id: str,
    cluster_id: str,
    conf: Path,
    targets: dict[str, dict[str, Any]],
    *,
    force: bool,
    confirm: Any,
    bar: Bar = progress_bar,
    purpose: str = "RESTORE",
) -> dict[str, Any]:
    """The whole procedure; ``confirm(plan)`` returns whether to go on once the fences stand. ``purpose``
    DRILL: the stores restored are a drill's sandbox, which the secondary does not take for the primary's."""
    uris = backing_uris(conf).by_name()
    base = f"/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs"
    with (
        stops_as_interrupts(),
        hold_for_restore({LABELS[name]: uri for name, uri in uris.items()}) as me,
        claimed(conf.parent) as download,  # deleted whatever ends the block; a SIGKILL's is found later
    ):
        if download.leftover_removed:
            err.print(
                f"deleted the download an interrupted restore left in {download.folder}", highlight=False
            )
        job = api.post(base, {"stores": targets, "purpose": purpose})
        job_id = job["id"]
        try:
            downloads: dict[str, Download] = {}
            with bar("downloading from the secondary") as update:
                for i, name in enumerate(targets):

                    def status(text: str, i: int = i) -> None:
                        update(i / len(targets), text)

                    status(f"{LABELS[name]}")
                    downloads[name] = download_store(
                        api, f"{base}/{job_id}/stores/{name}/documents", name, download.folder, status
                    )
                update(1.0, f"{sum(d.documents for d in downloads.values())} documents")
            plan = decide_plan(job, downloads, uris, force)
            fencing = Fencing(me.describe(), str(download.folder))
            result = apply_plan(api, base, job_id, plan, downloads, uris, fencing, confirm, bar)
        except BaseException as exc:
            _report(api, base, job_id, "FAILED", str(getattr(exc, "detail", exc)) or "interrupted")
            raise
    return result


@dataclass(frozen=True)
class Fencing:
    """What this restore's fences say: who wrote them, and where its download is (for a later cleanup)."""

    written_by: str
    download: str


def decide_plan(
    job: dict[str, Any], downloads: dict[str, Download], uris: dict[str, str], force: bool
) -> Plan:
    positions = {name: int(entry["targetPosition"]) for name, entry in job["stores"].items()}
    points = Points(positions["app"], positions.get("snapshot"), positions.get("oplog"))
    app_docs = list(downloads["app"].docs())
    restored = (
        frozenset(s.id for s in snapshots_from(downloads["snapshot"].docs()))
        if "snapshot" in downloads
        else None
    )
    now = current_snapshots(uris["snapshot"]) if "snapshot" not in downloads else None
    facts = Facts(
        jobs=jobs_from(app_docs),
        restored_snapshots=restored,
        current_snapshots=now.current_snapshots if now else None,
    )
    decision = decide(points, facts, force)
    if not isinstance(decision, Plan):
        raise RestoreRefused(decision.reason, jobs=list(decision.jobs))
    return decision


def apply_plan(
    api: PublicApi,
    base: str,
    job_id: str,
    plan: Plan,
    downloads: dict[str, Download],
    uris: dict[str, str],
    fencing: Fencing,
    confirm: Any,
    bar: Bar,
) -> dict[str, Any]:
    """Fences every target, asks ``confirm``, writes, tells the secondary and removes the fences last. Ended
    before writing (declined, end of input, Ctrl-C, an error), it removes its fences: nothing was changed.
    Ended once writing has begun, it leaves them, and :class:`RestoreInterrupted` names them."""
    stores: dict[str, Store] = {}
    taken: dict[str, str] = {}
    writing = False
    try:
        for n in plan.stores:
            stores[n.value] = open_target(n.value, uris[n.value])
        # Fences first, on every target, before any of them is changed.
        taken = fence_all(stores, job_id, fencing.written_by, fencing.download)
        for name, old_job in taken.items():
            err.print(f"took over the fence of interrupted restore job {old_job} on the {LABELS[name]}")
        if not confirm(plan):
            raise RestoreAborted("declined")
        writing = True
        counts = _write_stores(stores, downloads, bar)
        if StoreName.APP.value in stores:
            # Read by the server that starts on it: every project is armed until its agents are heard.
            record.mark_restored(stores["app"], job_id, plan.points.app, downloads["app"].docs())
        # The secondary is told before the fences go, so its backup resyncs the restored stores rather than
        # continue their old history; a secondary that fails now does not hold the primary back.
        reported = _report(api, base, job_id, "FINISHED", "")
        for store in stores.values():
            remove_fence(store, restore_job_id=job_id)
    except BaseException as exc:
        if writing:
            fenced = [LABELS[name] for name, store in stores.items() if read_fence(store) is not None]
            raise RestoreInterrupted(interrupted_message(fenced, job_id, exc)) from exc
        unfence_unwritten(stores, job_id, taken)
        if isinstance(exc, KeyboardInterrupt | RestoreAborted):
            raise RestoreAborted(aborted_message(exc, [LABELS[name] for name in taken])) from None
        raise
    finally:
        for store in stores.values():
            store.close()
    return {
        "restoreJobId": job_id,
        "stores": counts,
        "warnings": list(plan.warnings),
        "jobsAnswering409": list(plan.jobs_answering_409),
        "snapshotsMayBeUnavailable": list(plan.snapshots_may_be_unavailable),
        "secondaryInformed": reported,
    }


def _write_stores(
    stores: dict[str, Store], downloads: dict[str, Download], bar: Bar
) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    total = sum(downloads[n].documents for n in stores) or 1
    with bar("restoring the backing databases") as update:
        done = 0
        for name, store in stores.items():

            def written(n: int, name: str = name, before: int = done) -> None:
                update((before + n) / total, f"{LABELS[name]}: {n} of {downloads[name].documents}")

            counts[name] = replace_documents(store, downloads[name].docs(), written)
            done += counts[name]["documents"]
        update(1.0, "done")
    return counts


def _report(api: PublicApi, base: str, job_id: str, status: str, detail: str) -> bool:
    try:
        api.call("PATCH", f"{base}/{job_id}", {"statusName": status, "detail": detail})
        return True
    except ApiFailed as exc:
        err.print(f"[yellow]warning:[/] could not tell the secondary the restore {status}: {exc.detail}")
        return False


def _show_plan(plan: Plan) -> None:
    for name in plan.stores:
        err.print(f"  restoring the {LABELS[name.value]} to position {plan.points.of(name)}", highlight=False)
    for w in plan.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


def _confirmer(yes: bool) -> Callable[[Plan], bool]:
    """Shows the plan once the fences stand, and asks whether to go on (``--yes``: it goes on)."""

    def confirm(plan: Plan) -> bool:
        _show_plan(plan)
        err.print("restore fences written: the primary cannot start until this restore ends")
        try:
            return yes or typer.confirm("Replace the primary's backing databases now?", err=True)
        except typer.Abort:  # end of input or Ctrl-C at the prompt: a no
            err.print()
            return False

    return confirm


def _print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    out.print(
        "restored " + ", ".join(f"{n}: {c['documents']} documents" for n, c in result["stores"].items()) + " "
        f"(restore job {result['restoreJobId']}); fences removed. Start the primary now.",
        highlight=False,
    )


@backup_app.command("restore-stores")
def restore_stores(
    url: str = UrlOpt,
    public_key: str = PublicKeyOpt,
    private_key: str = PrivateKeyOpt,
    ca_file: Path | None = CaFileOpt,
    group: str = typer.Option(..., "--group", envvar="OPSMGR_GROUP", help="The secondary's project id."),
    cluster: str = typer.Option(..., "--cluster", help="The backing-database deployment's cluster id."),
    primary_conf: Path | None = PrimaryConfOpt,
    primary_data_dir: Path | None = PrimaryDirOpt,
    at: str | None = typer.Option(None, "--at", help="Restore point, ISO 8601 (e.g. 2024-05-01T12:00:00Z)."),
    point_in_time_ms: int | None = typer.Option(
        None, "--point-in-time-ms", help="Or: milliseconds since the epoch."
    ),
    snapshot: str | None = typer.Option(None, "--snapshot", help="Or: a snapshot id (its position for all)."),
    app_only: bool = typer.Option(False, "--app-only", help="Restore only the application database."),
    metadata_at: str | None = typer.Option(
        None, "--metadata-at", help="A later point for the metadata stores."
    ),
    force: bool = typer.Option(False, "--force", help="Accept metadata stores earlier than the app DB."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Restore the primary's backing databases from the secondary (on the primary's host, primary stopped)."""
    try:
        conf = primary_conf_path(primary_conf, primary_data_dir)
        if at is not None and point_in_time_ms is not None:
            raise InvalidInput("give --at or --point-in-time-ms, not both", field="--at")
        at_ms = parse_instant(at, "--at") if at is not None else point_in_time_ms
        meta_ms = parse_instant(metadata_at, "--metadata-at") if metadata_at is not None else None
        with PublicApi(url, public_key, private_key, ca_file=ca_file) as api:
            backing = api.get(f"/groups/{group}/backingDatabases/{cluster}")
            targets = restore_targets(
                backing, at_ms=at_ms, snapshot_id=snapshot, app_only=app_only, metadata_at_ms=meta_ms
            )

            result = run_restore(
                api,
                group,
                cluster,
                conf,
                targets,
                force=force,
                confirm=_confirmer(yes),
                bar=no_bar if as_json else progress_bar,
            )
    except OpsmgrError as exc:
        fail(exc)
    except KeyboardInterrupt:  # while writing it is a RestoreInterrupted: here nothing was written
        fail(RestoreAborted("restore interrupted before anything was written: nothing was changed"))
    _print_result(result, as_json)

"""``opsmgr secondary attach`` and ``opsmgr backup restore-stores``: a secondary server that backs up a
primary's three backing databases, and restoring them from it (the seed's procedure).

``attach`` creates, through the secondary's public API, the project whose deployment is the primary's backing
databases, writes the ``automation-agent.config`` with which ``opsmgr agent`` on the primary's host backs
them up to the secondary, and records the secondary in the primary's application database
(``backup.secondaries``), from which the primary watches it and raises the global alert
``BACKUP_SECONDARY_UNREACHABLE`` when it stops answering.

``restore-stores`` runs on the primary's host, with the primary stopped: the front-end of the seed's restore,
which the backing agent on that host carries out (``agent.backing_restorer``). It fails early, naming the
running server, while the primary runs (the running-server lock, ``store.running``); shows what each store is
restored to and asks for confirmation (``--yes`` skips it); creates the restore job on the secondary
(``delivery: AGENT``, ``force`` with it) and follows the job's progress with a progress bar until it ends:
FINISHED prints the outcome and "Start the primary now", FAILED the reason (a refusal of the seed's rules
names the restore jobs that would answer 409) and exits non-zero, as does a cancelled job (KILLED: ``opsmgr
backup cancel --backing``), naming the cancellation and what each store holds. Ctrl-C stops following; the
agent goes on.

:func:`run_restore` is the same restore carried out here, for ``opsmgr drill`` into its sandbox (a job with
``delivery: CLI``): it takes the running-server lock, downloads every store, applies the rules, fences,
asks ``confirm``, writes and tells the secondary, with the steps ``agent.backing_restore`` shares with the
agent; its ends are ``cli.restore_ends``'.

A thin client of the public API (:mod:`opsmgr.cli.api`) plus the stores it restores; the job's targets are
``cli.restore_targets``'.

May import ``opsmgr.errors``, ``opsmgr.conf``, ``opsmgr.properties``, ``opsmgr.agent.state``,
``opsmgr.agent.backing_restore``, ``opsmgr.backup.restore_download``, ``opsmgr.backup.secondaries``,
``opsmgr.backup.store_replace``, ``opsmgr.backup.store_restore``, ``opsmgr.store``, ``opsmgr.cli.api``,
``opsmgr.cli.backup``, ``opsmgr.cli.restore_ends`` and ``opsmgr.cli.restore_targets``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from opsmgr.agent.backing_restore import (
    Download,
    Fencing,
    Received,
    close_all,
    decide_plan,
    fence_targets,
    outcome,
    restore_lock,
    write_stores,
)
from opsmgr.agent.state import atomic_write
from opsmgr.backup.restore_download import claimed, private_opener
from opsmgr.backup.secondaries import record_secondary
from opsmgr.backup.store_replace import unfence_unwritten
from opsmgr.backup.store_restore import Plan
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
from opsmgr.errors import InvalidInput, OpsmgrError
from opsmgr.properties import dump_properties
from opsmgr.store.backing import LABELS
from opsmgr.store.engine import Store
from opsmgr.store.installation import read_fence, remove_fence

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


def download_store(api: PublicApi, path: str, name: str, folder: Path, update: Any) -> Download:
    """Streams one store's restored documents to a file; a stream without its end line is an error."""
    target = folder / f"{name}.jsonl"
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
            received = Received(name, target, f)
            for line in response.iter_lines():
                if received.take(line):
                    break
                if received.count % 500 == 0 and received.count:
                    update(f"{LABELS[name]}: {received.count} documents received")
    except (OSError, ValueError) as exc:
        raise ApiFailed(f"downloading the restored {LABELS[name]}: {exc}") from exc
    except Exception as exc:  # httpx errors while streaming
        if isinstance(exc, OpsmgrError):
            raise
        raise ApiFailed(f"downloading the restored {LABELS[name]} was cut: {exc}") from exc
    return received.whole()


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
        restore_lock(uris) as me,
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
            positions = {name: int(entry["targetPosition"]) for name, entry in job["stores"].items()}
            plan = decide_plan(positions, downloads, uris, force)
            fencing = Fencing(me.describe(), str(download.folder))
            result = apply_plan(api, base, job_id, plan, downloads, uris, fencing, confirm, bar)
        except BaseException as exc:
            _report(api, base, job_id, "FAILED", str(getattr(exc, "detail", exc)) or "interrupted")
            raise
    return result


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
        # Fences first, on every target, before any of them is changed.
        taken = fence_targets(plan, uris, job_id, fencing, stores)
        for name, old_job in taken.items():
            err.print(f"took over the fence of interrupted restore job {old_job} on the {LABELS[name]}")
        if not confirm(plan):
            raise RestoreAborted("declined")
        writing = True
        with bar("restoring the backing databases") as update:
            counts = write_stores(stores, downloads, job_id, plan, update)
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
        close_all(stores)
    return {**outcome(job_id, plan, counts), "secondaryInformed": reported}


def _report(api: PublicApi, base: str, job_id: str, status: str, detail: str) -> bool:
    try:
        api.call("PATCH", f"{base}/{job_id}", {"statusName": status, "detail": detail})
        return True
    except ApiFailed as exc:
        err.print(f"[yellow]warning:[/] could not tell the secondary the restore {status}: {exc.detail}")
        return False


def _print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    out.print(
        "restored " + ", ".join(f"{n}: {c['documents']} documents" for n, c in result["stores"].items()) + " "
        f"(restore job {result['restoreJobId']}); fences removed. Start the primary now.",
        highlight=False,
    )


# restore-stores: the front-end of the restore the backing agent carries out.

QUEUED_S = 120.0  # no agent has taken the job up by then: it is not running
STALLED_S = 600.0  # no progress reported for this long: the agent is gone or stuck
POLL_S = 0.3
ENDED = ("FINISHED", "FAILED", "KILLED")  # KILLED: cancelled (``opsmgr backup cancel --backing``)


class RestoreFailed(OpsmgrError):
    """The restore job ended FAILED, or could not be followed to its end."""


def refuse_running_primary(uris: dict[str, str]) -> None:
    """Fails early, with the message the agent would give, while the primary runs on its stores (or one
    cannot be reached)."""
    with restore_lock(uris):
        pass


def _confirmed(targets: dict[str, dict[str, Any]], yes: bool) -> bool:
    for name, target in targets.items():
        err.print(f"  restoring the {LABELS[name]} to {json.dumps(target)}", highlight=False)
    err.print("the backing agent on this host fences every store, replaces it, and removes the fences last")
    try:
        return yes or typer.confirm("Replace the primary's backing databases now?", err=True)
    except typer.Abort:  # end of input or Ctrl-C at the prompt: a no
        err.print()
        return False


def _status(job: dict[str, Any]) -> tuple[float, str]:
    progress = job.get("progress") or {}
    phase = progress.get("phase") or job["statusName"]
    text = f"{phase.lower()}: {progress.get('message', '')}".rstrip(": ")
    return float(progress.get("fraction", 0.0)), text


def follow_job(
    api: PublicApi, path: str, bar: Bar, *, queued_s: float = QUEUED_S, stalled_s: float = STALLED_S
) -> dict[str, Any]:
    """Polls the job until it ends, drawing its progress; RestoreFailed when no agent takes it up within
    ``queued_s`` or its progress stands still for ``stalled_s`` (the job itself goes on)."""
    began = last_change = time.monotonic()
    seen: Any = None
    with bar("restoring the backing databases") as update:
        while True:
            job = dict(api.get(path))
            update(*_status(job))
            if job["statusName"] in ENDED:
                return job
            now = time.monotonic()
            if job.get("progress") != seen:
                seen, last_change = job.get("progress"), now
            if job["statusName"] == "QUEUED" and now - began > queued_s:
                raise RestoreFailed(
                    f"no backing agent took restore job {job['id']} up in {queued_s:.0f} s: start the agent "
                    "on the primary's host (opsmgr agent --config <its automation-agent.config>); it "
                    "carries the job out when it starts"
                )
            if now - last_change > stalled_s:
                raise RestoreFailed(
                    f"restore job {job['id']} reported no progress for {stalled_s:.0f} s "
                    f"({_status(job)[1]}): is the backing agent running? The job goes on when it is"
                )
            time.sleep(POLL_S)


def agent_restore(
    api: PublicApi, group_id: str, cluster_id: str, targets: dict[str, dict[str, Any]], force: bool, bar: Bar
) -> dict[str, Any]:
    """Creates the restore job the backing agent carries out and follows it to its end."""
    base = f"/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs"
    job = api.post(base, {"stores": targets, "delivery": "AGENT", "force": force})
    try:
        final = follow_job(api, f"{base}/{job['id']}", bar)
    except KeyboardInterrupt:
        raise RestoreFailed(
            f"stopped following restore job {job['id']}: the backing agent carries it on (GET {base}/"
            f"{job['id']} shows it); start the primary only once it is FINISHED"
        ) from None
    result = {"restoreJobId": job["id"], "statusName": final["statusName"], **(final.get("outcome") or {})}
    if final["statusName"] == "FAILED":
        result.setdefault("reason", final.get("detail") or "")
    if final["statusName"] == "KILLED":
        result["cancellation"] = final.get("cancellation") or {}
        result["reason"] = f"it was cancelled: {result['cancellation'].get('statement', '')}"
    return result


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
    """Restore the primary's backing databases from the secondary: a restore job the backing agent on the
    primary's host carries out (the primary stopped), its progress shown here."""
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
            refuse_running_primary(backing_uris(conf).by_name())
            if not _confirmed(targets, yes):
                raise RestoreAborted("restore declined before anything was written: nothing was changed")
            result = agent_restore(api, group, cluster, targets, force, no_bar if as_json else progress_bar)
    except OpsmgrError as exc:
        fail(exc)
    except KeyboardInterrupt:
        fail(RestoreAborted("restore interrupted before anything was written: nothing was changed"))
    for warning in result.get("warnings", []):
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if result["statusName"] != "FINISHED":
        if as_json:
            typer.echo(json.dumps(result))
        ended = "was not completed" if result["statusName"] == "KILLED" else "failed"
        fail(RestoreFailed(f"restore job {result['restoreJobId']} {ended}: {result['reason']}"))
    _print_result(result, as_json)

"""The daemon's jobs as monitoring sees them: for each backed-up source, how far ingestion is behind, its last
snapshot, its queue (slices received and not yet applied to its head, snapshots requested and not yet taken)
and its last error. Read-only: it reads the daemon's parts and changes nothing, so the API
(``GET /admin/backup/daemon``) and ``/metrics`` can ask at any time.

The decisions are pure functions (:func:`ingest_lag_ms`, :func:`last_error`, :func:`failing`,
:func:`daemon_health`); :func:`daemon_jobs` gathers the facts. The daemon is unhealthy while a source's job
is failing: its last error is more recent than its last snapshot (a snapshot or a tick failed and none has
succeeded since). May import ``opsmgr.backup``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.head import HeadState
from opsmgr.backup.positions import to_millis
from opsmgr.backup.slices import Chain
from opsmgr.backup.sources import Source

# The most slices counted in one source's queue: past it the queue is reported as this many (and more).
MAX_COUNTED_SLICES = 1000


@dataclass(frozen=True)
class SourceJob:
    """One source's job. Times are UTC milliseconds; ``None`` where the daemon does not know yet."""

    source: Source
    newest_entry_ms: int | None  # the newest oplog entry the daemon received (its slices' tip)
    source_position_ms: int | None  # the newest entry of the source's oplog its agent last saw
    last_slice_received_ms: int | None
    last_agent_contact_ms: int | None
    head_applied_ms: int | None
    head_consistent: bool
    last_snapshot_ms: int | None
    slices_pending: int
    snapshots_requested: int
    sync_required: str | None
    last_error: dict[str, Any] | None
    errors_total: int
    now_ms: int

    @property
    def ingest_lag_ms(self) -> int | None:
        return ingest_lag_ms(self.now_ms, self.newest_entry_ms, self.source_position_ms)

    @property
    def ingesting(self) -> bool:
        """Slices arrive on a chain the head follows: no initial sync is needed or running."""
        return (
            self.newest_entry_ms is not None
            and self.sync_required is None
            and self.head_applied_ms is not None
        )

    def to_json(self) -> dict[str, Any]:
        lag = self.ingest_lag_ms
        age = None if self.last_snapshot_ms is None else max(self.now_ms - self.last_snapshot_ms, 0)
        return {
            "sourceId": self.source.id,
            "groupId": self.source.groupId,
            "clusterId": self.source.clusterId,
            "replicaSetName": self.source.name,
            "kind": self.source.kind.value,
            "ingesting": self.ingesting,
            "ingestLagSeconds": None if lag is None else lag / 1000,
            "newestEntryUTCMillis": self.newest_entry_ms,
            "sourcePositionUTCMillis": self.source_position_ms,
            "lastSliceReceivedAt": self.last_slice_received_ms,
            "lastAgentContact": self.last_agent_contact_ms,
            "headAppliedUTCMillis": self.head_applied_ms,
            "headConsistent": self.head_consistent,
            "lastSnapshotAt": self.last_snapshot_ms,
            "lastSnapshotAgeSeconds": None if age is None else age / 1000,
            "queue": {"slicesPending": self.slices_pending, "snapshotsRequested": self.snapshots_requested},
            "syncRequired": self.sync_required,
            "lastError": self.last_error,
            "errorsTotal": self.errors_total,
        }


def ingest_lag_ms(now_ms: int, newest_entry_ms: int | None, source_position_ms: int | None) -> int | None:
    """How far the received oplog is behind the source: behind the source's newest entry when its agent told
    it, else behind now (an idle source's periodic no-op writes keep that small); never negative (clocks)."""
    if newest_entry_ms is None:
        return None
    reference = now_ms if source_position_ms is None else source_position_ms
    return max(reference - newest_entry_ms, 0)


def last_error(*errors: dict[str, Any] | None) -> dict[str, Any] | None:
    """The most recent of the errors given (each ``{at, message, ...}``), or None."""
    known = [e for e in errors if e is not None]
    return max(known, key=lambda e: int(e.get("at") or 0), default=None)


def failing(job: SourceJob) -> str | None:
    """What is wrong with the source's job now, or None: an error no snapshot has succeeded since."""
    error = job.last_error
    if error is None or (job.last_snapshot_ms is not None and job.last_snapshot_ms >= int(error["at"])):
        return None
    return f"backup of {job.source.name} ({job.source.id}) failing: {error['message']}"


def daemon_health(jobs: list[SourceJob]) -> dict[str, Any]:
    """The daemon's health as a readiness answer shows it: healthy unless a source's job is failing."""
    problems = [p for p in map(failing, jobs) if p is not None]
    return {
        "healthy": not problems,
        "sourceCount": len(jobs),
        "ingestingCount": sum(1 for j in jobs if j.ingesting),
        "problems": problems,
        "lastError": last_error(*(j.last_error for j in jobs)),
    }


def daemon_jobs(daemon: BackupDaemon, sources: list[Source] | None = None) -> list[SourceJob]:
    """Each source's job (all sources unless given), in the daemon's order."""
    now = daemon.now_ms()
    requested = Counter(str(r["sourceId"]) for r in daemon.snapshot_catalog.requests())
    return [
        _job(daemon, src, requested[src.id], now)
        for src in (daemon.sources() if sources is None else sources)
    ]


def _job(daemon: BackupDaemon, src: Source, requested: int, now: int) -> SourceJob:
    kind = src.position_kind
    chain = daemon.slice_catalog.chain(src.id)
    state = daemon.head_state(src.id)  # the job owner's head, whichever server asks
    contact_ms, source_last = daemon.ingest.contact(src.id)
    tip = chain.tip if chain is not None else None
    snapshot_failure = daemon.scheduled.last_failure(src.id)
    count, tick_failure = daemon.tick_failures(src.id)
    return SourceJob(
        source=src,
        newest_entry_ms=None if tip is None else to_millis(kind, tip),
        source_position_ms=None if source_last is None else to_millis(kind, source_last),
        last_slice_received_ms=chain.lastReceivedAt if chain else None,
        last_agent_contact_ms=contact_ms,
        head_applied_ms=None if state is None else to_millis(kind, state.applied),
        head_consistent=state is not None and state.consistent,
        last_snapshot_ms=max((m.createdAt for m in daemon.snapshots(src.id)), default=None),
        slices_pending=_slices_pending(daemon, src.id, chain, state),
        snapshots_requested=requested,
        sync_required=_sync_required(chain),
        last_error=last_error(
            None if snapshot_failure is None else {**snapshot_failure, "kind": "SNAPSHOT"},
            None if tick_failure is None else {**tick_failure, "kind": "JOB"},
        ),
        errors_total=count,
        now_ms=now,
    )


def _sync_required(chain: Chain | None) -> str | None:
    return chain.syncRequired if chain is not None and chain.chain else "no initial sync yet"


def _slices_pending(
    daemon: BackupDaemon, source_id: str, chain: Chain | None, state: HeadState | None
) -> int:
    """The slices of the head's chain after the position it applied (walked one by one, as the next tick
    will apply them: normally a handful, and never more than :data:`MAX_COUNTED_SLICES` counted)."""
    if chain is None or state is None or chain.chain != state.sync_id:
        return 0
    n, position = 0, state.applied
    while n < MAX_COUNTED_SLICES:
        found = daemon.slice_catalog.slice_after(source_id, state.sync_id, position)
        if found is None:
            break
        n, position = n + 1, found.end
    return n

"""The backup daemon of one server: sources, initial syncs, slice ingestion, heads, snapshots, grooming,
the integrity job, PITR windows and restores. This module does the I/O; the decisions are in ``policy``,
``pitr`` and ``changes``.

Where things live:

- application database: ``backup_sources`` (one document per backed-up source: project, cluster, name,
  kind, schedule), like Ops Manager's backup configurations;
- snapshot metadata store: snapshots and their block lists (``backup.snapshots``), on-demand requests,
  ``backup_status`` (last snapshot failure per source) and ``backup_integrity`` (the last integrity report);
- oplog metadata store: chains and slices (``backup.slices``);
- blockstore folder: blocks, heads (``backup.head``) and restore scratch space.

Concurrency: the server calls ingestion and reads from request threads and :meth:`BackupDaemon.tick` from
its periodic thread. Per source, one lock serialises head applies, snapshots and grooming; ingestion only
appends to the oplog metadata store (under the slice catalog's own per-source lock), so uploads never wait
for a snapshot. May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from opsmgr.backup import crashpoints, pitr, policy, restore
from opsmgr.backup.blockstore import Blockstore, Compression
from opsmgr.backup.errors import BlockCorrupt, SnapshotBlocksMissing, SnapshotFailed
from opsmgr.backup.head import Head, Heads, HeadState
from opsmgr.backup.pitr import Range, SliceSpan, SnapshotPoint, Target
from opsmgr.backup.policy import Schedule
from opsmgr.backup.positions import PositionKind, timestamp_json, to_millis
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.slices import (
    SliceCatalog,
    SliceMeta,
    SliceResult,
    SliceStatus,
    decode_slice,
    normalise,
    read_changes,
)
from opsmgr.backup.snapshots import (
    BLOCK_TARGET,
    Progress,
    SnapshotCatalog,
    SnapshotMeta,
    SnapshotType,
    check_blocks,
    snapshot_blocks,
    snapshot_json,
    write_snapshot,
)
from opsmgr.errors import Conflict, InvalidInput, NotFound, OpsmgrError
from opsmgr.store.engine import Store, new_id

log = logging.getLogger("opsmgr.backup")

SOURCES = "backup_sources"
STATUS = "backup_status"
INTEGRITY = "backup_integrity"


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class BackupStores(Protocol):
    """The server's three backing databases (``opsmgr.server.app.Stores`` has this shape)."""

    @property
    def app(self) -> Store: ...

    @property
    def snapshots(self) -> Store: ...

    @property
    def oplogs(self) -> Store: ...


class SourceKind(StrEnum):
    REPLICA_SET = "REPLICA_SET"  # a MongoDB replica set (sim or mongod): BSON timestamps
    BACKING_DATABASE = "BACKING_DATABASE"  # an opsmgr backing database: store oplog timestamps


@dataclass(frozen=True)
class Source:
    id: str
    groupId: str
    clusterId: str
    name: str
    kind: SourceKind
    schedule: Schedule
    createdAt: int

    @property
    def position_kind(self) -> PositionKind:
        return PositionKind.BSON if self.kind is SourceKind.REPLICA_SET else PositionKind.STORE

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "groupId": self.groupId,
            "clusterId": self.clusterId,
            "name": self.name,
            "kind": self.kind.value,
            "snapshotSchedule": self.schedule.to_json(),
            "createdAt": self.createdAt,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Source:
        return cls(
            id=doc["_id"],
            groupId=doc["groupId"],
            clusterId=doc["clusterId"],
            name=doc["name"],
            kind=SourceKind(doc["kind"]),
            schedule=Schedule(**doc.get("schedule", {})),
            createdAt=doc["createdAt"],
        )


@dataclass
class TickReport:
    applied: dict[str, int] = field(default_factory=dict)  # source id -> entries applied to its head
    snapshots: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    groomed: bool = False
    integrity_problems: int | None = None  # set when the integrity job ran


@dataclass(frozen=True)
class GroomReport:
    snapshots_deleted: list[str]
    slices_deleted: int
    blocks_freed: int


def _check_name(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64 or "\x00" in value:
        raise InvalidInput(f"{field_name} must be 1 to 64 characters", field=field_name)
    return value


class BackupDaemon:
    def __init__(
        self,
        stores: BackupStores,
        blockstore_path: str | Path,
        clock: Clock | None = None,
        *,
        block_target: int = BLOCK_TARGET,
        compression: Compression | None = None,
        groom_interval_s: float = 600.0,
        groom_grace_s: float = 600.0,
        integrity_interval_s: float = 24 * 3600.0,
    ) -> None:
        self.app = stores.app
        self.snapshot_catalog = SnapshotCatalog(stores.snapshots)
        self.slice_catalog = SliceCatalog(stores.oplogs)
        self.root = Path(blockstore_path)
        self.blockstore = Blockstore(self.root, compression=compression)
        self.heads = Heads(self.root)
        self.clock = clock or SystemClock()
        self.block_target = block_target
        self.groom_interval_ms = int(groom_interval_s * 1000)
        self.groom_grace_s = groom_grace_s
        self._locks: defaultdict[str, threading.RLock] = defaultdict(threading.RLock)
        self._locks_guard = threading.Lock()
        self._progress: dict[str, Progress] = {}
        self._progress_lock = threading.Lock()
        self.integrity_interval_ms = int(integrity_interval_s * 1000)
        self._last_groom_ms: int | None = None
        # Blocks are re-hashed once after every start (a crash may have come with disk trouble), then daily.
        self._integrity_checked = False
        self.started_ms = self.now_ms()
        # Agent contact per source, in memory: after a restart, silence is counted from started_ms.
        self._contact: dict[str, tuple[int, int | None]] = {}

    def close(self) -> None:
        self.heads.close()

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def _lock(self, source_id: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks[source_id]

    # Sources.

    def register_source(
        self,
        group_id: str,
        cluster_id: str,
        name: str,
        kind: SourceKind | str,
        schedule: Schedule | None = None,
    ) -> Source:
        """Starts backing up a source; registering the same (project, cluster, name) again returns it."""
        for value, field_name in ((group_id, "groupId"), (cluster_id, "clusterId"), (name, "name")):
            _check_name(value, field_name)
        try:
            source_kind = SourceKind(kind)
        except ValueError:
            raise InvalidInput(f"kind must be one of {[k.value for k in SourceKind]}", field="kind") from None
        with self.app.tx() as t:
            found = t.find(SOURCES, groupId=group_id, clusterId=cluster_id, name=name)
            if found:
                return Source.from_doc(found[0])
            doc = {
                "_id": new_id(),
                "groupId": group_id,
                "clusterId": cluster_id,
                "name": name,
                "kind": source_kind.value,
                "schedule": (schedule or Schedule()).to_json(),
                "createdAt": self.now_ms(),
            }
            t.insert(SOURCES, doc)
        log.info("backing up %s/%s/%s (%s) as source %s", group_id, cluster_id, name, source_kind, doc["_id"])
        return Source.from_doc(doc)

    def sources(self, group_id: str | None = None, cluster_id: str | None = None) -> list[Source]:
        eq = {k: v for k, v in (("groupId", group_id), ("clusterId", cluster_id)) if v is not None}
        return [Source.from_doc(d) for d in self.app.find(SOURCES, **eq)]

    def source(self, source_id: str) -> Source:
        doc = self.app.get(SOURCES, source_id)
        if doc is None:
            raise NotFound(f"no backup source {source_id}", sourceId=source_id)
        return Source.from_doc(doc)

    def remove_source(self, source_id: str) -> None:
        """Stops backing up a source and deletes its snapshots, slices and head (Ops Manager's "terminate");
        the next groom frees the blocks nothing else uses."""
        with self._lock(source_id):
            self.source(source_id)
            self.snapshot_catalog.delete(source_id, [m.id for m in self.snapshots(source_id)])
            self.slice_catalog.remove(source_id)
            self.heads.remove(source_id)
            self.app.delete(SOURCES, source_id)
        log.warning("source %s: backup terminated, its snapshots and slices deleted", source_id)

    def set_schedule(self, source_id: str, body: Any) -> Schedule:
        """Lays a (partial) ``snapshotSchedule`` body over the source's schedule."""
        with self.app.tx() as t:
            doc = t.get(SOURCES, source_id)
            if doc is None:
                raise NotFound(f"no backup source {source_id}", sourceId=source_id)
            schedule = policy.schedule_from_json(body, Schedule(**doc.get("schedule", {})))
            t.put(SOURCES, {**doc, "schedule": schedule.to_json()})
        return schedule

    # The agent's side: initial sync and slices.

    def start_sync(self, source_id: str, position: int) -> str:
        """Begins an initial sync whose documents are read after the source's oplog reached ``position``;
        returns its id. The current head (if any) stays in use until :meth:`finish_sync`."""
        self.source(source_id)
        if not isinstance(position, int) or position < 0:
            raise InvalidInput("position must be a non-negative integer", field="position")
        sync_id = new_id()
        self.heads.open(source_id, sync_id).init(sync_id, position)
        log.info("source %s: initial sync %s from position %s", source_id, sync_id, position)
        return sync_id

    def _sync_head(self, source_id: str, sync_id: str) -> tuple[Head, HeadState]:
        if not sync_id.isalnum() or not self.heads.exists(source_id, sync_id):
            raise NotFound(f"no initial sync {sync_id} for source {source_id}: start one", syncId=sync_id)
        head = self.heads.open(source_id, sync_id)
        state = head.state()
        if state is None:
            raise NotFound(f"initial sync {sync_id} of source {source_id} was abandoned: start again")
        return head, state

    def sync_documents(self, source_id: str, sync_id: str, docs: Iterable[tuple[str, dict[str, Any]]]) -> int:
        head, state = self._sync_head(source_id, sync_id)
        if state.loaded:
            raise Conflict(f"initial sync {sync_id} is already finished", syncId=sync_id)
        return head.load(docs)

    def finish_sync(self, source_id: str, sync_id: str, min_valid: int) -> SliceResult:
        """Ends an initial sync: the source's oplog had reached ``min_valid`` when the last document was
        read. Its head replaces the current one and a new chain starts at the sync's position: the agent
        ships slices from the acknowledged position on. Calling it again is harmless."""
        with self._lock(source_id):
            head, state = self._sync_head(source_id, sync_id)
            if not state.loaded:
                state = head.finish_load(min_valid)
            self.heads.promote(source_id, sync_id)
        chain = self.slice_catalog.begin_chain(source_id, sync_id, state.applied, self.now_ms())
        log.info("source %s: initial sync %s finished; slices from %s", source_id, sync_id, chain.tip)
        return SliceResult(SliceStatus.ACCEPTED, chain.tip, sync_id)

    def initial_sync(
        self, source_id: str, position: int, docs: Iterable[tuple[str, dict[str, Any]]], min_valid: int
    ) -> SliceResult:
        """:meth:`start_sync`, :meth:`sync_documents` and :meth:`finish_sync` in one call."""
        sync_id = self.start_sync(source_id, position)
        self.sync_documents(source_id, sync_id, docs)
        return self.finish_sync(source_id, sync_id, min_valid)

    def ingest_slice(
        self, source_id: str, start: int, end: int, entries: list[dict[str, Any]]
    ) -> SliceResult:
        """Stores a slice ``(start, end]`` of the source's oplog, in the source's own entry shape."""
        src = self.source(source_id)
        changes = normalise(src.position_kind, start, end, entries)
        result = self.slice_catalog.append(self.blockstore, source_id, start, end, changes, self.now_ms())
        if result.status is SliceStatus.GAP:
            log.warning("source %s: oplog gap: %s", source_id, result.detail)
        return result

    def ingest_slice_bytes(self, source_id: str, data: bytes) -> SliceResult:
        """Stores a slice in the wire format of ``backup.slices.encode_slice``."""
        upload = decode_slice(data)
        return self.ingest_slice(source_id, upload.start, upload.end, upload.entries)

    def note_agent(self, source_id: str, source_last: int | None = None) -> None:
        """An agent reached the daemon for the source; ``source_last`` is the newest entry of the source's
        oplog it saw (how far backup is behind the source, for alerts)."""
        previous = self._contact.get(source_id)
        if source_last is None and previous is not None:
            source_last = previous[1]
        self._contact[source_id] = (self.now_ms(), source_last)

    def acknowledged(self, source_id: str) -> SliceResult:
        """Where the agent resumes: the chain's tip, or SYNC_REQUIRED."""
        chain = self.slice_catalog.chain(source_id)
        if chain is None or chain.chain is None or chain.syncRequired:
            why = chain.syncRequired if chain and chain.syncRequired else "no initial sync yet"
            return SliceResult(SliceStatus.SYNC_REQUIRED, None, None, why)
        return SliceResult(SliceStatus.ACCEPTED, chain.tip, chain.chain)

    def report_gap(self, source_id: str, first_available: int | None, detail: str = "") -> None:
        """The agent found the source's oplog no longer holds the entries after the tip: a new initial
        sync is needed, and the window will show a hole up to it."""
        chain = self.slice_catalog.chain(source_id)
        tip = chain.tip if chain else None
        reason = detail or f"the source's oplog no longer holds the entries after {tip}"
        gap = {"afterTs": tip, "firstAvailable": first_available}
        self.slice_catalog.require_sync(source_id, reason, self.now_ms(), gap)
        log.warning("source %s: oplog gap reported by the agent: %s", source_id, reason)

    def require_resync(self, source_id: str, reason: str) -> None:
        """Refuse slices until a new initial sync (after a restore overwrote the source, say)."""
        self.slice_catalog.require_sync(source_id, reason, self.now_ms())

    # Heads.

    def apply_pending(self, source_id: str) -> int:
        """Applies the stored slices the head has not applied yet, in order; returns the entries applied."""
        with self._lock(source_id):
            head = self.heads.current(source_id)
            state = head.state() if head else None
            if head is None or state is None or not state.loaded:
                return 0
            n = 0
            applied = state.applied
            while (s := self.slice_catalog.slice_after(source_id, state.sync_id, applied)) is not None:
                n += head.apply(read_changes(self.blockstore, s), s.end, after=applied)
                applied = s.end
            if n:
                head.trim_oplog()
            return n

    # Snapshots.

    def take_snapshot(
        self, source_id: str, on_demand: bool = False, snapshot_id: str | None = None
    ) -> SnapshotMeta:
        """Applies pending slices, then snapshots the head at the position it reached."""
        src = self.source(source_id)
        with self._lock(source_id):
            self.apply_pending(source_id)
            head = self.heads.current(source_id)
            state = head.state() if head else None
            if head is None or state is None or not state.consistent:
                raise Conflict(
                    f"source {src.name} has no consistent head yet (initial sync unfinished, or slices up "
                    "to its end not applied)",
                    sourceId=source_id,
                )
            meta = SnapshotMeta(
                id=snapshot_id or new_id(),
                sourceId=src.id,
                groupId=src.groupId,
                clusterId=src.clusterId,
                name=src.name,
                kind=src.position_kind,
                chain=state.sync_id,
                position=state.applied,
                createdAt=self.now_ms(),
                type=SnapshotType.ON_DEMAND if on_demand else SnapshotType.SCHEDULED,
                compression=str(self.blockstore.compression),
            )
            try:
                done = write_snapshot(
                    self.blockstore,
                    self.snapshot_catalog,
                    meta,
                    head.records(),
                    total_records=head.count(),
                    now_ms=self.now_ms,
                    target=self.block_target,
                    progress=lambda p: self._set_progress(meta.id, p),
                    before_commit=lambda _blocks: crashpoints.reached("daemon-snapshot-commit"),
                )
            except OpsmgrError as exc:
                self._record_failure(source_id, meta.id, exc.detail)
                raise
            except OSError as exc:
                self._record_failure(source_id, meta.id, str(exc))
                raise SnapshotFailed(f"snapshot of {src.name} failed: {exc}", sourceId=source_id) from exc
            self._clear_failure(source_id)
        log.info(
            "source %s: snapshot %s at %s: %d documents, %d blocks (%d new)",
            source_id,
            done.id,
            done.position,
            done.records,
            done.blockCount,
            done.newBlocks,
        )
        return done

    def _record_failure(self, source_id: str, snapshot_id: str, message: str) -> None:
        log.error("source %s: snapshot %s failed: %s", source_id, snapshot_id, message)
        self._set_progress(snapshot_id, Progress(0.0, f"failed: {message}"))
        self.snapshot_catalog.store.put(
            STATUS,
            {
                "_id": source_id,
                "lastFailure": {"at": self.now_ms(), "snapshotId": snapshot_id, "message": message},
            },
        )

    def _clear_failure(self, source_id: str) -> None:
        self.snapshot_catalog.store.delete(STATUS, source_id)

    def request_snapshot(self, source_id: str, reason: str = "on demand") -> str:
        """Queues an on-demand snapshot, taken at the next tick; returns the id it will have."""
        self.source(source_id)
        snapshot_id = new_id()
        with self.snapshot_catalog.store.tx() as t:
            self.snapshot_catalog.request(t, snapshot_id, source_id, self.now_ms(), reason)
        self._set_progress(snapshot_id, Progress(0.0, "queued"))
        return snapshot_id

    def request_cluster_snapshot(
        self, group_id: str, cluster_id: str, reason: str = "on demand"
    ) -> list[str]:
        sources = self.sources(group_id, cluster_id)
        if not sources:
            raise NotFound(
                f"cluster {cluster_id} of project {group_id} is not backed up", clusterId=cluster_id
            )
        return [self.request_snapshot(s.id, reason) for s in sources]

    def enqueue_on_demand(self, group_id: str) -> list[str]:
        """An on-demand snapshot of every backed-up source of a project (Restoration Mode's exit)."""
        return [
            self.request_snapshot(s.id, "Restoration Mode reconciliation") for s in self.sources(group_id)
        ]

    def snapshots(self, source_id: str) -> list[SnapshotMeta]:
        return self.snapshot_catalog.for_source(source_id)

    def snapshot(self, source_id: str, snapshot_id: str) -> SnapshotMeta:
        meta = self.snapshot_catalog.get(source_id, snapshot_id)
        if meta is None:
            raise NotFound(f"no snapshot {snapshot_id}", snapshotId=snapshot_id)
        return meta

    def snapshots_json(self, source_id: str) -> list[dict[str, Any]]:
        """The source's snapshots, newest first, in Ops Manager's shape (with their expiry)."""
        src = self.source(source_id)
        metas = self.snapshots(source_id)
        snaps = [policy.Snap(m.id, m.createdAt, m.position, m.chain) for m in metas]
        return [
            snapshot_json(m, policy.expires_ms(s, snaps, src.schedule))
            for m, s in sorted(zip(metas, snaps, strict=True), key=lambda p: -p[0].createdAt)
        ]

    # The window and restores.

    def _points(self, source_id: str) -> list[SnapshotPoint]:
        return [SnapshotPoint(m.id, m.position, m.chain, m.createdAt) for m in self.snapshots(source_id)]

    @staticmethod
    def _spans(slices: Iterable[SliceMeta]) -> list[SliceSpan]:
        return [SliceSpan(s.id, s.chain, s.start, s.end) for s in slices]

    def pitr_window(self, source_id: str) -> list[Range]:
        return pitr.window(self._points(source_id), self.slice_catalog.runs(source_id))

    def window_json(self, source_id: str) -> list[dict[str, Any]]:
        return pitr.window_json(self.source(source_id).position_kind, self.pitr_window(source_id))

    def cluster_window(self, group_id: str, cluster_id: str) -> list[tuple[int, int]]:
        """The milliseconds to which every source of a cluster can be restored (the same point for all)."""
        windows = []
        for src in self.sources(group_id, cluster_id):
            shown = pitr.window_json(src.position_kind, self.pitr_window(src.id))
            windows.append(
                [(r["startUTCMillis"], r["endUTCMillis"]) for r in shown if r["startUTCMillis"] is not None]
            )
        return pitr.intersect(windows)

    def restore_plan(self, source_id: str, target: Target | dict[str, Any]) -> ResolvedRestore:
        """What a restore to ``target`` needs; 400 outside the window, 409 when blocks are missing."""
        src = self.source(source_id)
        kind = src.position_kind
        if isinstance(target, dict):
            target = pitr.parse_target(kind, target)
        slices = self.slice_catalog.slices(source_id)
        plan = pitr.plan_restore(kind, self._points(source_id), self._spans(slices), target)
        meta = self.snapshot_catalog.get(source_id, plan.snapshot.id)
        if meta is None:  # groomed since the plan was made
            raise SnapshotBlocksMissing(
                f"snapshot {plan.snapshot.id} was just deleted", snapshotId=plan.snapshot.id
            )
        blocks = snapshot_blocks(self.snapshot_catalog, self.blockstore, meta)
        by_id = {s.id: s for s in slices}
        needed = [by_id[s.id] for s in plan.slices]
        slice_blocks = [s.blockId for s in needed if s.blockId]
        check_blocks(self.blockstore, slice_blocks, "the oplog slices to replay")
        self._refuse_known_corrupt(blocks + slice_blocks)
        return ResolvedRestore(kind, plan, meta, blocks, needed)

    def _refuse_known_corrupt(self, block_ids: list[str]) -> None:
        """A restore needing a block the integrity job found damaged is refused before it starts (409), not
        cut off midway; such blocks are re-verified here, as the report may be older than a repair."""
        report = self.snapshot_catalog.store.get(INTEGRITY, "last")
        reported = {p["blockId"] for p in report["problems"]} if report else set()
        for block_id in reported.intersection(block_ids):
            problem = self.blockstore.verify(block_id)
            if problem is not None:
                raise BlockCorrupt(block_id, f"{problem.problem}; found by the integrity job")

    def cluster_restore_plans(
        self, group_id: str, cluster_id: str, body: dict[str, Any]
    ) -> list[ResolvedRestore]:
        """A restore job's plans for a cluster: with ``snapshotId``, the one source that snapshot is of;
        with a point in time, every source of the cluster to that same point (each refusal as for one)."""
        sources = self.sources(group_id, cluster_id)
        if not sources:
            raise NotFound(
                f"cluster {cluster_id} of project {group_id} is not backed up", clusterId=cluster_id
            )
        snapshot_id = body.get("snapshotId") if isinstance(body, dict) else None
        if snapshot_id is not None:
            for src in sources:
                if isinstance(snapshot_id, str) and self.snapshot_catalog.get(src.id, snapshot_id):
                    return [self.restore_plan(src.id, body)]
            # Parsed for its validation; then, as no source has it, 409 as for a single source.
            return [self.restore_plan(sources[0].id, body)]
        return [self.restore_plan(src.id, body) for src in sources]

    def restore_documents(
        self, resolved: ResolvedRestore, job_id: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The restored documents ``(namespace, document)``, for a download or a driver's ``load``."""
        return restore.materialize(
            self.blockstore, resolved, self.root / "restores", self._progress_fn(job_id)
        )

    def restore_into_store(
        self, resolved: ResolvedRestore, target: Store, job_id: str | None = None
    ) -> dict[str, int]:
        """Replaces a backing database's documents with the restored ones (verifies every block first)."""
        return restore.restore_into_store(self.blockstore, resolved, target, self._progress_fn(job_id))

    # Progress of long work.

    def _set_progress(self, job_id: str, progress: Progress) -> None:
        with self._progress_lock:
            self._progress[job_id] = progress

    def _progress_fn(self, job_id: str | None) -> Callable[[Progress], None] | None:
        if job_id is None:
            return None
        return lambda p: self._set_progress(job_id, p)

    def progress(self, job_id: str) -> Progress | None:
        """Progress of a snapshot (by snapshot id) or a restore (by the job id given to it)."""
        with self._progress_lock:
            return self._progress.get(job_id)

    # Periodic work.

    def tick(self, now_ms: int | None = None) -> TickReport:
        """Applies pending slices, takes requested and due snapshots, and grooms when it is time."""
        now = self.now_ms() if now_ms is None else now_ms
        report = TickReport()
        requests = defaultdict(list)
        for req in self.snapshot_catalog.requests():
            requests[req["sourceId"]].append(req["_id"])
        for src in self.sources():
            try:
                report.applied[src.id] = self.apply_pending(src.id)
                head = self.heads.current(src.id)
                state = head.state() if head else None
                if state is None:
                    self._check_head_lost(src.id)
                    continue
                if not state.consistent:
                    continue
                for snapshot_id in requests.get(src.id, []):
                    report.snapshots.append(self.take_snapshot(src.id, True, snapshot_id).id)
                metas = self.snapshots(src.id)
                last = max((m.createdAt for m in metas), default=None)
                # A new chain (after a gap or a resync) extends no window until it has a snapshot of its own.
                if policy.due(now, last, src.schedule) or all(m.chain != state.sync_id for m in metas):
                    report.snapshots.append(self.take_snapshot(src.id).id)
            except OpsmgrError as exc:
                report.failures[src.id] = exc.detail
                log.warning("backup of source %s: %s", src.id, exc.detail)
        if self._last_groom_ms is None or now - self._last_groom_ms >= self.groom_interval_ms:
            self.groom(now)
            report.groomed = True
        last_check = self.snapshot_catalog.store.get(INTEGRITY, "last")
        if (
            not self._integrity_checked
            or last_check is None
            or now - last_check["checkedAt"] >= self.integrity_interval_ms
        ):
            report.integrity_problems = len(self.integrity_check()["problems"])
        return report

    def _check_head_lost(self, source_id: str) -> None:
        """A chain that slices extend but no head to apply them to (its file was lost): only a new initial
        sync can make snapshots again, so the agent is told to do one."""
        chain = self.slice_catalog.chain(source_id)
        if chain is not None and chain.chain is not None and not chain.syncRequired:
            log.error("source %s: the head copy is missing; asking for a new initial sync", source_id)
            self.require_resync(source_id, "the daemon's head copy of the source is missing")

    def groom(self, now_ms: int | None = None) -> GroomReport:
        """Deletes what retention no longer keeps, then frees the blocks nothing references."""
        now = self.now_ms() if now_ms is None else now_ms
        self._last_groom_ms = now
        deleted: list[str] = []
        slices_deleted = 0
        for src in self.sources():
            with self._lock(src.id):
                metas = self.snapshots(src.id)
                snaps = [policy.Snap(m.id, m.createdAt, m.position, m.chain) for m in metas]
                kept = policy.retained(snaps, now, src.schedule)
                gone = [m.id for m in metas if m.id not in kept]
                head = self.heads.current(src.id)
                state = head.state() if head else None
                slices = self.slice_catalog.slices(src.id)
                refs = [policy.SliceRef(s.id, s.chain, s.start, s.end) for s in slices]
                keep_slices = policy.needed_slices(
                    snaps,
                    kept,
                    refs,
                    now,
                    src.schedule,
                    state.sync_id if state else None,
                    state.applied if state else None,
                )
                # Metadata first: a crash before the blocks are freed leaves unreferenced blocks, never
                # metadata naming a freed block.
                self.snapshot_catalog.delete(src.id, gone)
                slices_deleted += self.slice_catalog.delete(
                    src.id, [s.id for s in slices if s.id not in keep_slices]
                )
                deleted += gone
        referenced = self.snapshot_catalog.referenced_blocks() | self.slice_catalog.referenced_blocks()
        older_than = time.time() - self.groom_grace_s
        freed = sum(
            self.blockstore.delete(b, older_than=older_than)
            for b in policy.unreferenced(list(self.blockstore), referenced)
        )
        if deleted or slices_deleted or freed:
            log.info(
                "groom: %d snapshot(s), %d slice(s) deleted, %d block(s) freed",
                len(deleted),
                slices_deleted,
                freed,
            )
        return GroomReport(deleted, slices_deleted, freed)

    def integrity_check(self) -> dict[str, Any]:
        """Re-hashes every block; reports those that do not match and the referenced ones that are gone,
        with the snapshots and slices each affects. The report is kept in the snapshot metadata store."""
        lists = self.snapshot_catalog.block_lists()
        users: defaultdict[str, list[str]] = defaultdict(list)
        for snapshot_id, blocks in lists.items():
            for b in blocks:
                users[b].append(f"snapshot:{snapshot_id}")
        for src in self.sources():
            for s in self.slice_catalog.slices(src.id):
                if s.blockId:
                    users[s.blockId].append(f"slice:{src.id}/{s.id}")
        checked = 0
        problems: dict[str, str] = {}
        for block_id in self.blockstore:
            checked += 1
            problem = self.blockstore.verify(block_id)
            if problem is not None:
                problems[block_id] = problem.problem
        for block_id in users:
            if block_id not in problems and not self.blockstore.exists(block_id):
                problems[block_id] = "missing"
        found = [
            {"blockId": b, "problem": p, "usedBy": users.get(b, [])} for b, p in sorted(problems.items())
        ]
        report = {"_id": "last", "checkedAt": self.now_ms(), "blocksChecked": checked, "problems": found}
        self.snapshot_catalog.store.put(INTEGRITY, report)
        self._integrity_checked = True
        for item in found:
            log.error(
                "integrity: block %s: %s (used by %s)", item["blockId"], item["problem"], item["usedBy"]
            )
        return report

    # Facts for alerts.

    def status(self, source_id: str) -> dict[str, Any]:
        """What alerting needs about a source: last snapshot, window end and holes, slice lag, gaps."""
        src = self.source(source_id)
        kind = src.position_kind
        now = self.now_ms()
        metas = self.snapshots(source_id)
        last = max(metas, key=lambda m: m.createdAt, default=None)
        ranges = self.pitr_window(source_id)
        chain = self.slice_catalog.chain(source_id)
        head = self.heads.current(source_id)
        state = head.state() if head else None
        failure = self.snapshot_catalog.store.get(STATUS, source_id)
        integrity = self.snapshot_catalog.store.get(INTEGRITY, "last")
        tip_ms = to_millis(kind, chain.tip) if chain and chain.tip is not None else None
        contact_ms, source_last = self._contact.get(source_id, (None, None))
        gap = chain.gap if chain else None
        mine = {m.id for m in metas}
        prefix = f"slice:{source_id}/"
        own_problems = (
            sum(
                any(u.startswith(prefix) or u.removeprefix("snapshot:") in mine for u in p["usedBy"])
                for p in integrity["problems"]
            )
            if integrity
            else 0
        )
        return {
            "sourceId": src.id,
            "groupId": src.groupId,
            "clusterId": src.clusterId,
            "name": src.name,
            "kind": src.kind.value,
            "now": now,
            "lastSnapshot": None
            if last is None
            else {
                "id": last.id,
                "createdAt": last.createdAt,
                "timestamp": timestamp_json(kind, last.position),
            },
            "lastSnapshotAgeMs": None if last is None else now - last.createdAt,
            "snapshotIntervalMs": src.schedule.interval_ms,
            "snapshotDue": policy.due(now, last.createdAt if last else None, src.schedule),
            "lastSnapshotFailure": failure["lastFailure"] if failure else None,
            "window": pitr.window_json(kind, ranges),
            "windowEndUTCMillis": to_millis(kind, ranges[-1].end) if ranges else None,
            "windowHoles": max(len(ranges) - 1, 0),
            "chain": None if chain is None else chain.chain,
            "tip": None if chain is None or chain.tip is None else timestamp_json(kind, chain.tip),
            "tipUTCMillis": tip_ms,
            "sliceLagMs": None if tip_ms is None else max(now - tip_ms, 0),
            "lastSliceReceivedAt": chain.lastReceivedAt if chain else None,
            "chainStartUTCMillis": to_millis(kind, chain.chainStart)
            if chain and chain.chainStart is not None
            else None,
            "currentChainSnapshotted": chain is not None and any(m.chain == chain.chain for m in metas),
            "lastAgentContact": contact_ms,
            "sourceLastUTCMillis": None if source_last is None else to_millis(kind, source_last),
            "gap": None
            if gap is None
            else {
                **gap,
                "afterUTCMillis": None if gap.get("afterTs") is None else to_millis(kind, gap["afterTs"]),
            },
            "syncRequired": chain.syncRequired if chain and chain.chain else "no initial sync yet",
            "head": None
            if state is None
            else {
                "syncId": state.sync_id,
                "applied": timestamp_json(kind, state.applied),
                "consistent": state.consistent,
                # How far the head is behind the acknowledged slices (the next tick applies them).
                "applyLagMs": to_millis(kind, chain.tip) - to_millis(kind, state.applied)
                if chain is not None and chain.chain == state.sync_id and chain.tip is not None
                else None,
            },
            "integrityProblems": len(integrity["problems"]) if integrity else 0,
            "sourceIntegrityProblems": own_problems,
            "createdAt": src.createdAt,
        }

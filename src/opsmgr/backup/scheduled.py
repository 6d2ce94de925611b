"""Snapshots as the daemon takes them: each source's head brought up to the acknowledged slices (or rebuilt
from the shared catalog by the server that owns the backup job: ``backup.head_keeper``), then written
as blocks (``backup.snapshots``), on schedule (``policy.due``), on demand (requests queued in the snapshot
metadata store and taken at the next tick), and whenever a new chain (after a gap or a resync) has none yet.

Owns ``backup_status`` in the snapshot metadata store: a source's last snapshot failure, until its next
success; and ``backup_tick_failures``: how many ticks of each source's job failed and the last one (in the
store, so that every server sharing it shows what the job's owner met). May import ``opsmgr.errors``,
``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from opsmgr.backup import crashpoints, policy
from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.errors import SnapshotFailed
from opsmgr.backup.head import Head, Heads, HeadState
from opsmgr.backup.head_keeper import HeadKeeper
from opsmgr.backup.slices import SliceCatalog
from opsmgr.backup.snapshots import (
    Progress,
    ProgressBoard,
    SnapshotCatalog,
    SnapshotMeta,
    SnapshotType,
    snapshot_json,
    write_snapshot,
)
from opsmgr.backup.sources import Clock, Source, SourceLocks, Sources, now_ms
from opsmgr.errors import Conflict, NotFound, OpsmgrError
from opsmgr.store.engine import new_id

log = logging.getLogger("opsmgr.backup")

STATUS = "backup_status"
TICK_FAILURES = "backup_tick_failures"


@dataclass
class TickReport:
    applied: dict[str, int] = field(default_factory=dict)  # source id -> entries applied to its head
    snapshots: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    groomed: bool = False
    integrity_problems: int | None = None  # set when the integrity job ran


class Snapshots:
    """The sources' heads and the snapshots taken from them."""

    def __init__(
        self,
        sources: Sources,
        catalog: SnapshotCatalog,
        slices: SliceCatalog,
        blockstore: Blockstore,
        heads: Heads,
        locks: SourceLocks,
        progress: ProgressBoard,
        clock: Clock,
        block_target: int,
    ) -> None:
        self.sources = sources
        self.catalog = catalog
        self.slices = slices
        self.blockstore = blockstore
        self.heads = heads
        self.locks = locks
        self.progress = progress
        self.clock = clock
        self.block_target = block_target
        self.keeper = HeadKeeper(heads, catalog, slices, blockstore)

    def _head(self, source_id: str) -> tuple[Head | None, HeadState | None]:
        head = self.heads.current(source_id)
        return head, head.state() if head else None

    def apply_pending(self, source_id: str) -> int:
        """Brings the head to the acknowledged slices (rebuilt from the shared catalog first when it is
        missing or cannot be caught up: ``backup.head_keeper``); returns the entries applied."""
        with self.locks(source_id):
            return self.keeper.catch_up(source_id)

    def take(self, source_id: str, on_demand: bool = False, snapshot_id: str | None = None) -> SnapshotMeta:
        """Applies pending slices, then snapshots the head at the position it reached."""
        src = self.sources.get(source_id)
        with self.locks(source_id):
            self.apply_pending(source_id)
            head, state = self._head(source_id)
            if head is None or state is None or not state.consistent:
                raise Conflict(
                    f"source {src.name} has no consistent head yet (initial sync unfinished, or slices up "
                    "to its end not applied)",
                    sourceId=source_id,
                )
            meta = self._meta(src, state, on_demand, snapshot_id or new_id())
            done = self._write(src, head, meta)
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

    def _meta(self, src: Source, state: HeadState, on_demand: bool, snapshot_id: str) -> SnapshotMeta:
        return SnapshotMeta(
            id=snapshot_id,
            sourceId=src.id,
            groupId=src.groupId,
            clusterId=src.clusterId,
            name=src.name,
            kind=src.position_kind,
            chain=state.sync_id,
            position=state.applied,
            createdAt=now_ms(self.clock),
            type=SnapshotType.ON_DEMAND if on_demand else SnapshotType.SCHEDULED,
            compression=str(self.blockstore.compression),
        )

    def _write(self, src: Source, head: Head, meta: SnapshotMeta) -> SnapshotMeta:
        """Writes the snapshot; a failure is kept for the source's status until the next success."""
        try:
            done = write_snapshot(
                self.blockstore,
                self.catalog,
                meta,
                head.records(),
                total_records=head.count(),
                now_ms=lambda: now_ms(self.clock),
                target=self.block_target,
                progress=lambda p: self.progress.set(meta.id, p),
                before_commit=lambda _blocks: crashpoints.reached("daemon-snapshot-commit"),
            )
        except OpsmgrError as exc:
            self._record_failure(src.id, meta.id, exc.detail)
            raise
        except OSError as exc:
            self._record_failure(src.id, meta.id, str(exc))
            raise SnapshotFailed(f"snapshot of {src.name} failed: {exc}", sourceId=src.id) from exc
        self.catalog.store.delete(STATUS, src.id)
        return done

    def _record_failure(self, source_id: str, snapshot_id: str, message: str) -> None:
        log.error("source %s: snapshot %s failed: %s", source_id, snapshot_id, message)
        self.progress.set(snapshot_id, Progress(0.0, f"failed: {message}"))
        failure = {"at": now_ms(self.clock), "snapshotId": snapshot_id, "message": message}
        self.catalog.store.put(STATUS, {"_id": source_id, "lastFailure": failure})

    def note_tick_failure(self, source_id: str, at_ms: int, message: str) -> None:
        """Counts a failed tick of the source's job where every server sharing the stores reads it."""
        with self.catalog.store.tx() as t:
            seen = t.get(TICK_FAILURES, source_id)
            count = int(seen["count"]) if seen else 0
            last = {"at": at_ms, "message": message}
            t.put(TICK_FAILURES, {"_id": source_id, "count": count + 1, "last": last})

    def tick_failures(self, source_id: str) -> tuple[int, dict[str, Any] | None]:
        """How many ticks of the source's job failed (on any server), and the last one's ``{at, message}``."""
        doc = self.catalog.store.get(TICK_FAILURES, source_id)
        return (int(doc["count"]), dict(doc["last"])) if doc else (0, None)

    def last_failure(self, source_id: str) -> dict[str, Any] | None:
        """The source's last snapshot failure, unless a snapshot succeeded since."""
        doc = self.catalog.store.get(STATUS, source_id)
        return dict(doc["lastFailure"]) if doc else None

    # On demand.

    def request(self, source_id: str, reason: str = "on demand") -> str:
        """Queues an on-demand snapshot, taken at the next tick; returns the id it will have."""
        self.sources.get(source_id)
        snapshot_id = new_id()
        with self.catalog.store.tx() as t:
            self.catalog.request(t, snapshot_id, source_id, now_ms(self.clock), reason)
        self.progress.set(snapshot_id, Progress(0.0, "queued"))
        return snapshot_id

    def request_cluster(self, group_id: str, cluster_id: str, reason: str = "on demand") -> list[str]:
        sources = self.sources.find(group_id, cluster_id)
        if not sources:
            raise NotFound(
                f"cluster {cluster_id} of project {group_id} is not backed up", clusterId=cluster_id
            )
        return [self.request(s.id, reason) for s in sources]

    def enqueue_on_demand(self, group_id: str) -> list[str]:
        """An on-demand snapshot of every backed-up source of a project (Restoration Mode's exit)."""
        return [self.request(s.id, "Restoration Mode reconciliation") for s in self.sources.find(group_id)]

    # Reads.

    def of_source(self, source_id: str) -> list[SnapshotMeta]:
        return self.catalog.for_source(source_id)

    def get(self, source_id: str, snapshot_id: str) -> SnapshotMeta:
        meta = self.catalog.get(source_id, snapshot_id)
        if meta is None:
            raise NotFound(f"no snapshot {snapshot_id}", snapshotId=snapshot_id)
        return meta

    def to_json(self, source_id: str) -> list[dict[str, Any]]:
        """The source's snapshots, newest first, in Ops Manager's shape (with their expiry)."""
        src = self.sources.get(source_id)
        metas = self.of_source(source_id)
        snaps = [policy.Snap(m.id, m.createdAt, m.position, m.chain) for m in metas]
        return [
            snapshot_json(m, policy.expires_ms(s, snaps, src.schedule))
            for m, s in sorted(zip(metas, snaps, strict=True), key=lambda p: -p[0].createdAt)
        ]

    # Periodic work.

    def tick(self, now: int, report: TickReport) -> None:
        """Applies pending slices and takes requested and due snapshots of every source; a source's failure
        is reported and the others go on."""
        requests = defaultdict(list)
        for req in self.catalog.requests():
            requests[req["sourceId"]].append(req["_id"])
        for src in self.sources.find():
            try:
                self._tick_source(src, requests.get(src.id, []), now, report)
            except OpsmgrError as exc:
                report.failures[src.id] = exc.detail
                log.warning("backup of source %s: %s", src.id, exc.detail)

    def _tick_source(self, src: Source, requested: list[str], now: int, report: TickReport) -> None:
        report.applied[src.id] = self.apply_pending(src.id)
        _, state = self._head(src.id)
        if state is None:
            self._check_head_lost(src.id)
            return
        if not state.consistent:
            return
        for snapshot_id in requested:
            report.snapshots.append(self.take(src.id, True, snapshot_id).id)
        metas = self.of_source(src.id)
        last = max((m.createdAt for m in metas), default=None)
        # A new chain (after a gap or a resync) extends no window until it has a snapshot of its own.
        if policy.due(now, last, src.schedule) or all(m.chain != state.sync_id for m in metas):
            report.snapshots.append(self.take(src.id).id)

    def _check_head_lost(self, source_id: str) -> None:
        """A chain that slices extend but no head to apply them to and nothing to rebuild one from (no
        snapshot of the chain, no finished initial sync): only a new initial sync can make snapshots again,
        so the agent is told to do one."""
        chain = self.slices.chain(source_id)
        if chain is not None and chain.chain is not None and not chain.syncRequired:
            log.error("source %s: the head copy is missing; asking for a new initial sync", source_id)
            self.slices.require_sync(
                source_id, "the daemon's head copy of the source is missing", now_ms(self.clock)
            )

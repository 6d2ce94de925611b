"""The backup daemon of one server: the one object the server, the CLI and the tests drive, a façade over its
parts, each in its own module:

- ``sources``: the backed-up sources (``backup_sources`` in the application database: project, cluster,
  name, kind, schedule), like Ops Manager's backup configurations, and the lock each source has;
- ``ingest``: initial syncs (``syncs``), slices, the acknowledged position, gaps, agent contact: only
  recorded in the shared stores, so any server may take any agent request;
- ``scheduled``: heads brought up to the slices (rebuilt from the shared catalog where missing or behind:
  ``head_keeper``) and the snapshots taken from them (on schedule, on demand), by the backup job's owner;
- ``restores``: PITR windows, restore plans and restored documents;
- ``grooming``: retention and the integrity job.

Where things live: the application database holds the sources; the snapshot metadata store the snapshots and
their block lists (``backup.snapshots``), on-demand requests, ``backup_status`` (last snapshot failure per
source) and ``backup_integrity`` (the last integrity report); the oplog metadata store chains and slices
(``backup.slices``); the blockstore (a folder, or a PostgreSQL database: ``backup.blockstore_pg``), heads
(``backup.head``, local files of the server that owns the backup job) and restore scratch space.

Concurrency: the server calls ingestion and reads from request threads and :meth:`BackupDaemon.tick` from
its periodic thread. Per source, one lock serialises head applies, snapshots and grooming; ingestion only
appends to the oplog metadata store (under the slice catalog's own per-source lock), so uploads never wait
for a snapshot. Besides its parts, this module composes what spans them: a source's removal, the tick, and
the facts alerts read (:meth:`BackupDaemon.status`). May import ``opsmgr.errors``, ``opsmgr.store`` and
``opsmgr.backup``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from opsmgr.backup import pitr, policy
from opsmgr.backup.blockstore import Blockstore, Compression
from opsmgr.backup.blockstore_pg import PgBlocks
from opsmgr.backup.grooming import Grooming, GroomReport, last_integrity
from opsmgr.backup.head import Heads, HeadState
from opsmgr.backup.ingest import Ingest
from opsmgr.backup.pitr import Range, Target
from opsmgr.backup.policy import Schedule
from opsmgr.backup.positions import PositionKind, timestamp_json, to_millis
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.restores import Restores
from opsmgr.backup.scheduled import Snapshots, TickReport
from opsmgr.backup.slices import Chain, SliceCatalog, SliceResult
from opsmgr.backup.snapshots import BLOCK_TARGET, Progress, ProgressBoard, SnapshotCatalog, SnapshotMeta
from opsmgr.backup.sources import Clock, Source, SourceKind, SourceLocks, Sources, SystemClock, now_ms
from opsmgr.store.engine import Store

__all__ = [
    "BackupDaemon",
    "BackupStores",
    "Clock",
    "GroomReport",
    "Source",
    "SourceKind",
    "SystemClock",
    "TickReport",
]

log = logging.getLogger("opsmgr.backup")

PROGRESS_KEEP_S = 24 * 3600  # a finished snapshot's or restore's progress is shown this long


class BackupStores(Protocol):
    """The server's three backing databases (``opsmgr.server.services.Stores`` has this shape)."""

    @property
    def app(self) -> Store: ...

    @property
    def snapshots(self) -> Store: ...

    @property
    def oplogs(self) -> Store: ...


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
        blocks_uri: str | None = None,
    ) -> None:
        self.app = stores.app
        self.snapshot_catalog = SnapshotCatalog(stores.snapshots)
        self.slice_catalog = SliceCatalog(stores.oplogs)
        self.root = Path(blockstore_path)
        blocks = self.root if blocks_uri is None else PgBlocks(blocks_uri)
        self.blockstore = Blockstore(blocks, compression=compression)
        self.heads = Heads(self.root)
        self.clock = clock or SystemClock()
        self.board = ProgressBoard(stores.snapshots, self.clock.now)
        locks = SourceLocks()
        self.locks = locks
        self.registry = Sources(self.app, self.clock)
        parts = (self.registry, self.snapshot_catalog, self.slice_catalog, self.blockstore)
        self.ingest = Ingest(self.registry, self.slice_catalog, self.blockstore, self.clock)
        self.scheduled = Snapshots(*parts, self.heads, locks, self.board, self.clock, block_target)
        self.restores = Restores(*parts, self.root / "restores", self.board)
        self.grooming = Grooming(
            *parts,
            self.heads,
            locks,
            self.clock,
            interval_s=groom_interval_s,
            grace_s=groom_grace_s,
            integrity_interval_s=integrity_interval_s,
        )
        self.started_ms = self.now_ms()

    def close(self) -> None:
        self.heads.close()
        self.blockstore.files.close()

    def now_ms(self) -> int:
        return now_ms(self.clock)

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
        return self.registry.register(group_id, cluster_id, name, kind, schedule)

    def sources(self, group_id: str | None = None, cluster_id: str | None = None) -> list[Source]:
        return self.registry.find(group_id, cluster_id)

    def source(self, source_id: str) -> Source:
        return self.registry.get(source_id)

    def remove_source(self, source_id: str) -> None:
        """Stops backing up a source and deletes its snapshots, slices and head (Ops Manager's "terminate");
        the next groom frees the blocks nothing else uses."""
        with self.locks(source_id):
            self.source(source_id)
            self.snapshot_catalog.delete(source_id, [m.id for m in self.snapshots(source_id)])
            self.slice_catalog.remove(source_id)
            self.ingest.syncs.delete([s.id for s in self.ingest.syncs.of_source(source_id)])
            self.scheduled.keeper.forget(source_id)
            self.registry.delete(source_id)
        log.warning("source %s: backup terminated, its snapshots and slices deleted", source_id)

    def set_schedule(self, source_id: str, body: Any) -> Schedule:
        return self.registry.set_schedule(source_id, body)

    # The agent's side: initial sync and slices.

    def start_sync(self, source_id: str, position: int) -> str:
        return self.ingest.start_sync(source_id, position)

    def sync_documents(self, source_id: str, sync_id: str, docs: Iterable[tuple[str, dict[str, Any]]]) -> int:
        return self.ingest.sync_documents(source_id, sync_id, docs)

    def finish_sync(self, source_id: str, sync_id: str, min_valid: int) -> SliceResult:
        return self.ingest.finish_sync(source_id, sync_id, min_valid)

    def initial_sync(
        self, source_id: str, position: int, docs: Iterable[tuple[str, dict[str, Any]]], min_valid: int
    ) -> SliceResult:
        return self.ingest.initial_sync(source_id, position, docs, min_valid)

    def ingest_slice(
        self, source_id: str, start: int, end: int, entries: list[dict[str, Any]]
    ) -> SliceResult:
        return self.ingest.ingest_slice(source_id, start, end, entries)

    def ingest_slice_bytes(self, source_id: str, data: bytes) -> SliceResult:
        return self.ingest.ingest_slice_bytes(source_id, data)

    def note_agent(self, source_id: str, source_last: int | None = None) -> None:
        self.ingest.note_agent(source_id, source_last)

    def acknowledged(self, source_id: str) -> SliceResult:
        return self.ingest.acknowledged(source_id)

    def report_gap(self, source_id: str, first_available: int | None, detail: str = "") -> None:
        self.ingest.report_gap(source_id, first_available, detail)

    def require_resync(self, source_id: str, reason: str) -> None:
        self.ingest.require_resync(source_id, reason)

    # Heads and snapshots.

    def apply_pending(self, source_id: str) -> int:
        return self.scheduled.apply_pending(source_id)

    def take_snapshot(
        self, source_id: str, on_demand: bool = False, snapshot_id: str | None = None
    ) -> SnapshotMeta:
        return self.scheduled.take(source_id, on_demand, snapshot_id)

    def request_snapshot(self, source_id: str, reason: str = "on demand") -> str:
        return self.scheduled.request(source_id, reason)

    def request_cluster_snapshot(
        self, group_id: str, cluster_id: str, reason: str = "on demand"
    ) -> list[str]:
        return self.scheduled.request_cluster(group_id, cluster_id, reason)

    def enqueue_on_demand(self, group_id: str) -> list[str]:
        return self.scheduled.enqueue_on_demand(group_id)

    def snapshots(self, source_id: str) -> list[SnapshotMeta]:
        return self.scheduled.of_source(source_id)

    def snapshot(self, source_id: str, snapshot_id: str) -> SnapshotMeta:
        return self.scheduled.get(source_id, snapshot_id)

    def snapshots_json(self, source_id: str) -> list[dict[str, Any]]:
        return self.scheduled.to_json(source_id)

    # The window and restores.

    def pitr_window(self, source_id: str) -> list[Range]:
        return self.restores.pitr_window(source_id)

    def window_json(self, source_id: str) -> list[dict[str, Any]]:
        return self.restores.window_json(source_id)

    def cluster_window(self, group_id: str, cluster_id: str) -> list[tuple[int, int]]:
        return self.restores.cluster_window(group_id, cluster_id)

    def restore_plan(self, source_id: str, target: Target | dict[str, Any]) -> ResolvedRestore:
        return self.restores.plan(source_id, target)

    def cluster_restore_plans(
        self, group_id: str, cluster_id: str, body: dict[str, Any]
    ) -> list[ResolvedRestore]:
        return self.restores.cluster_plans(group_id, cluster_id, body)

    def restore_documents(
        self, resolved: ResolvedRestore, job_id: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        return self.restores.documents(resolved, job_id)

    def restore_into_store(
        self, resolved: ResolvedRestore, target: Store, job_id: str | None = None
    ) -> dict[str, int]:
        return self.restores.into_store(resolved, target, job_id)

    def progress(self, job_id: str) -> Progress | None:
        """Progress of a snapshot (by snapshot id) or a restore (by the job id given to it)."""
        return self.board.get(job_id)

    # Periodic work.

    def tick(self, now_ms: int | None = None) -> TickReport:
        """Applies pending slices, takes requested and due snapshots, and grooms and checks the blocks when
        it is time."""
        now = self.now_ms() if now_ms is None else now_ms
        report = TickReport()
        self.scheduled.tick(now, report)
        for source_id, detail in report.failures.items():
            self.scheduled.note_tick_failure(source_id, now, detail)
        if self.grooming.groom_due(now):
            self.grooming.groom(now)
            self.board.forget(now / 1000 - PROGRESS_KEEP_S)
            report.groomed = True
        if self.grooming.integrity_due(now):
            report.integrity_problems = len(self.grooming.integrity_check()["problems"])
        return report

    def groom(self, now_ms: int | None = None) -> GroomReport:
        return self.grooming.groom(self.now_ms() if now_ms is None else now_ms)

    def integrity_check(self) -> dict[str, Any]:
        return self.grooming.integrity_check()

    # Facts for alerts and monitoring.

    def head_state(self, source_id: str) -> HeadState | None:
        """The source's head as the backup job's owner last published it (whichever server asks)."""
        return self.scheduled.keeper.recorded(source_id)

    def tick_failures(self, source_id: str) -> tuple[int, dict[str, Any] | None]:
        return self.scheduled.tick_failures(source_id)

    def status(self, source_id: str) -> dict[str, Any]:
        """What alerting needs about a source: last snapshot, window end and holes, slice lag, gaps."""
        src = self.source(source_id)
        kind = src.position_kind
        now = self.now_ms()
        metas = self.snapshots(source_id)
        chain = self.slice_catalog.chain(source_id)
        head = self.head_state(source_id)
        contact_ms, source_last = self.ingest.contact(source_id)
        return {
            "sourceId": src.id,
            "groupId": src.groupId,
            "clusterId": src.clusterId,
            "name": src.name,
            "kind": src.kind.value,
            "now": now,
            **self._snapshot_facts(src, metas, now),
            **_window_facts(kind, self.pitr_window(source_id)),
            **_chain_facts(kind, chain, metas, now),
            "lastAgentContact": contact_ms,
            "sourceLastUTCMillis": None if source_last is None else to_millis(kind, source_last),
            "head": _head_facts(kind, head, chain),
            **self._integrity_facts(source_id, metas),
            "createdAt": src.createdAt,
        }

    def _snapshot_facts(self, src: Source, metas: list[SnapshotMeta], now: int) -> dict[str, Any]:
        last = max(metas, key=lambda m: m.createdAt, default=None)
        return {
            "lastSnapshot": None
            if last is None
            else {
                "id": last.id,
                "createdAt": last.createdAt,
                "timestamp": timestamp_json(src.position_kind, last.position),
            },
            "lastSnapshotAgeMs": None if last is None else now - last.createdAt,
            "snapshotIntervalMs": src.schedule.interval_ms,
            "snapshotDue": policy.due(now, last.createdAt if last else None, src.schedule),
            "lastSnapshotFailure": self.scheduled.last_failure(src.id),
        }

    def _integrity_facts(self, source_id: str, metas: list[SnapshotMeta]) -> dict[str, int]:
        """The integrity job's problems, all of them and those of the source's snapshots and slices."""
        integrity = last_integrity(self.snapshot_catalog)
        if integrity is None:
            return {"integrityProblems": 0, "sourceIntegrityProblems": 0}
        mine = {m.id for m in metas}
        prefix = f"slice:{source_id}/"
        own = sum(
            any(u.startswith(prefix) or u.removeprefix("snapshot:") in mine for u in p["usedBy"])
            for p in integrity["problems"]
        )
        return {"integrityProblems": len(integrity["problems"]), "sourceIntegrityProblems": own}


def _window_facts(kind: PositionKind, ranges: list[Range]) -> dict[str, Any]:
    return {
        "window": pitr.window_json(kind, ranges),
        "windowEndUTCMillis": to_millis(kind, ranges[-1].end) if ranges else None,
        "windowHoles": max(len(ranges) - 1, 0),
    }


def _chain_facts(
    kind: PositionKind, chain: Chain | None, metas: list[SnapshotMeta], now: int
) -> dict[str, Any]:
    tip_ms = to_millis(kind, chain.tip) if chain and chain.tip is not None else None
    gap = chain.gap if chain else None
    return {
        "chain": None if chain is None else chain.chain,
        "tip": None if chain is None or chain.tip is None else timestamp_json(kind, chain.tip),
        "tipUTCMillis": tip_ms,
        "sliceLagMs": None if tip_ms is None else max(now - tip_ms, 0),
        "lastSliceReceivedAt": chain.lastReceivedAt if chain else None,
        "chainStartUTCMillis": to_millis(kind, chain.chainStart)
        if chain and chain.chainStart is not None
        else None,
        "currentChainSnapshotted": chain is not None and any(m.chain == chain.chain for m in metas),
        "gap": None
        if gap is None
        else {
            **gap,
            "afterUTCMillis": None if gap.get("afterTs") is None else to_millis(kind, gap["afterTs"]),
        },
        "syncRequired": chain.syncRequired if chain and chain.chain else "no initial sync yet",
    }


def _head_facts(kind: PositionKind, state: HeadState | None, chain: Chain | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "syncId": state.sync_id,
        "applied": timestamp_json(kind, state.applied),
        "consistent": state.consistent,
        # How far the head is behind the acknowledged slices (the next tick applies them).
        "applyLagMs": to_millis(kind, chain.tip) - to_millis(kind, state.applied)
        if chain is not None and chain.chain == state.sync_id and chain.tip is not None
        else None,
    }

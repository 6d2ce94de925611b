"""Capacity planning of the blockstore: what each backed-up source stores, how fast it grows, and how much it
will store under its schedule and retention; for the whole blockstore the same plus when its disk fills.

The figures are computed by pure functions from plain inputs (:class:`SnapshotUse` per snapshot, the
source's :class:`~opsmgr.backup.policy.Schedule`, measured byte counts and the disk's free/total bytes);
:func:`measure` and :func:`measure_blockstore` gather those inputs from a daemon (block lists, the sizes
of the block files, the free space of the blockstore folder, unknown for a blockstore in a database).

**Figures of a source.** ``storedBytes``: the bytes on disk of the unique blocks its snapshots and oplog
slices reference (a block shared with another source counts for each). ``logicalBytes``: the sum of its
snapshots' uncompressed sizes, what they would take without deduplication or compression; ``dedupRatio``
is ``logicalBytes`` per stored snapshot byte (deduplication and compression together; ``None`` without
stored bytes).

**Growth** is measured from the recent snapshots: those taken within :data:`GROWTH_WINDOW_DAYS` of the
newest (all of them when the history is shorter). The stored bytes the snapshots after the oldest of them
added, divided by the time they span, is the growth per day. A span shorter than one snapshot interval is
stretched to the interval: the schedule stores a block's changes at most once per interval, so bursts of
on-demand snapshots do not read as a schedule's growth. Fewer than two recent snapshots: growth unknown
(``None``), counted as 0 in projections.

**Projection model** (an upper bound): new bytes accumulate until the oldest snapshot the schedule keeps is
the retention horizon old — the longest of ``snapshotRetentionDays``, ``dailySnapshotRetentionDays``,
``weeklySnapshotRetentionWeeks`` and ``monthlySnapshotRetentionMonths`` (30.44 days a month) — and from
then on grooming frees about as many bytes as new snapshots add, so storage stays flat. A source whose
oldest snapshot is already ``covered`` days old therefore grows for ``horizon - covered`` more days:
``stored(t) = storedBytes + growth * min(t, horizon - covered)``. It is an upper bound because thinned
(daily, weekly, monthly) snapshots keep only the last version of a block changed several times between
them. The oplog slices kept for the point-in-time window are a constant part of ``storedBytes``.

**The blockstore** stores the bytes of every block file (unreferenced ones awaiting grooming included);
its projection adds each source's growth up to that source's own horizon, and the disk fills when that
added growth reaches the disk's free bytes (:func:`days_until_full`, ``None`` when it never does).

May import ``opsmgr.backup`` and ``opsmgr.timestamps``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsmgr.backup.policy import DAY_MS, Schedule
from opsmgr.timestamps import iso_utc

if TYPE_CHECKING:
    from opsmgr.backup.daemon import BackupDaemon
    from opsmgr.backup.sources import Source

GROWTH_WINDOW_DAYS = 7
PROJECTION_DAYS = (30, 90, 365)
DAYS_PER_MONTH = 30.44


@dataclass(frozen=True)
class SnapshotUse:
    """What capacity needs of a snapshot (``opsmgr.backup.snapshots.SnapshotMeta``'s figures)."""

    created_ms: int
    size_bytes: int  # uncompressed records
    new_bytes: int  # bytes it added to the blockstore
    block_count: int = 0
    new_blocks: int = 0


@dataclass(frozen=True)
class SourceCapacity:
    source_id: str
    group_id: str
    cluster_id: str
    name: str
    stored_bytes: int
    snapshot_stored_bytes: int
    oplog_stored_bytes: int
    logical_bytes: int
    dedup_ratio: float | None
    snapshot_count: int
    block_count: int  # unique blocks of its snapshots
    growth_bytes_per_day: float | None
    growth_snapshots: int  # how many recent snapshots the growth was measured from
    horizon_days: float
    growth_days_left: float
    projections: tuple[tuple[int, int], ...]  # (days from now, projected stored bytes)

    def grows(self, days: float) -> float:
        """Bytes it adds in the next ``days`` days under the projection model."""
        return (self.growth_bytes_per_day or 0.0) * min(days, self.growth_days_left)

    def to_json(self) -> dict[str, Any]:
        return {
            "sourceId": self.source_id,
            "groupId": self.group_id,
            "clusterId": self.cluster_id,
            "replicaSetName": self.name,
            "storedBytes": self.stored_bytes,
            "snapshotStoredBytes": self.snapshot_stored_bytes,
            "oplogStoredBytes": self.oplog_stored_bytes,
            "logicalBytes": self.logical_bytes,
            "dedupRatio": _rounded(self.dedup_ratio),
            "snapshotCount": self.snapshot_count,
            "blockCount": self.block_count,
            "growthBytesPerDay": _rounded(self.growth_bytes_per_day),
            "growthMeasuredFromSnapshots": self.growth_snapshots,
            "retentionHorizonDays": round(self.horizon_days, 2),
            "growthDaysLeft": round(self.growth_days_left, 2),
            "projections": _projections_json(self.projections),
        }


@dataclass(frozen=True)
class BlockstoreCapacity:
    stored_bytes: int
    logical_bytes: int
    snapshot_stored_bytes: int
    dedup_ratio: float | None
    growth_bytes_per_day: float
    projections: tuple[tuple[int, int], ...]
    disk_free_bytes: int | None  # None: a blockstore in a database, whose disk this server cannot see
    disk_total_bytes: int | None
    days_until_full: float | None
    full_at_ms: int | None
    sources: tuple[SourceCapacity, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "storedBytes": self.stored_bytes,
            "logicalBytes": self.logical_bytes,
            "snapshotStoredBytes": self.snapshot_stored_bytes,
            "dedupRatio": _rounded(self.dedup_ratio),
            "growthBytesPerDay": _rounded(self.growth_bytes_per_day),
            "projections": _projections_json(self.projections),
            "diskFreeBytes": self.disk_free_bytes,
            "diskTotalBytes": self.disk_total_bytes,
            "daysUntilFull": None if self.days_until_full is None else round(self.days_until_full, 2),
            "fullDate": None if self.full_at_ms is None else iso_utc(self.full_at_ms),
            "sourceCount": len(self.sources),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _projections_json(projections: Iterable[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"days": days, "storedBytes": stored} for days, stored in projections]


# The pure computation.


def dedup_ratio(logical_bytes: int, stored_bytes: int) -> float | None:
    return logical_bytes / stored_bytes if stored_bytes > 0 else None


def recent(snapshots: Sequence[SnapshotUse], window_days: float = GROWTH_WINDOW_DAYS) -> list[SnapshotUse]:
    """The snapshots taken within ``window_days`` of the newest, oldest first."""
    ordered = sorted(snapshots, key=lambda s: s.created_ms)
    if not ordered:
        return []
    since = ordered[-1].created_ms - window_days * DAY_MS
    return [s for s in ordered if s.created_ms >= since]


def growth_per_day(snapshots: Sequence[SnapshotUse], interval_ms: int) -> tuple[float | None, int]:
    """Stored bytes added per day over the recent snapshots, and how many snapshots that was measured from
    (see the module docstring); ``None`` with fewer than two."""
    used = recent(snapshots)
    if len(used) < 2:
        return None, len(used)
    added = sum(s.new_bytes for s in used[1:])
    span_ms = max(used[-1].created_ms - used[0].created_ms, interval_ms, 1)
    return added * DAY_MS / span_ms, len(used)


def horizon_days(schedule: Schedule) -> float:
    """The age of the oldest snapshot the schedule keeps (its longest retention class), in days."""
    return float(
        max(
            schedule.snapshotRetentionDays,
            schedule.dailySnapshotRetentionDays,
            schedule.weeklySnapshotRetentionWeeks * 7,
            schedule.monthlySnapshotRetentionMonths * DAYS_PER_MONTH,
        )
    )


def source_capacity(
    ids: tuple[str, str, str, str],
    schedule: Schedule,
    snapshots: Sequence[SnapshotUse],
    stored: tuple[int, int, int],
    now_ms: int,
) -> SourceCapacity:
    """The figures of one source. ``ids``: (source, group, cluster, replica set name); ``stored``: the bytes
    on disk of its snapshots' unique blocks, of its slices' blocks, and the count of those snapshot blocks."""
    snapshot_stored, oplog_stored, blocks = stored
    logical = sum(s.size_bytes for s in snapshots)
    growth, measured = growth_per_day(snapshots, schedule.interval_ms)
    horizon = horizon_days(schedule)
    oldest = min((s.created_ms for s in snapshots), default=now_ms)
    left = max(0.0, horizon - max(0, now_ms - oldest) / DAY_MS)
    total = snapshot_stored + oplog_stored
    per_day = growth or 0.0
    return SourceCapacity(
        source_id=ids[0],
        group_id=ids[1],
        cluster_id=ids[2],
        name=ids[3],
        stored_bytes=total,
        snapshot_stored_bytes=snapshot_stored,
        oplog_stored_bytes=oplog_stored,
        logical_bytes=logical,
        dedup_ratio=dedup_ratio(logical, snapshot_stored),
        snapshot_count=len(snapshots),
        block_count=blocks,
        growth_bytes_per_day=growth,
        growth_snapshots=measured,
        horizon_days=horizon,
        growth_days_left=left,
        projections=tuple((d, total + round(per_day * min(d, left))) for d in PROJECTION_DAYS),
    )


def days_until_full(free_bytes: int, growths: Iterable[tuple[float, float]]) -> float | None:
    """Days until ``free_bytes`` are used by sources each growing ``(bytes per day, for so many more days)``;
    0 when the disk is already full, ``None`` when the growth stops (or never starts) before it fills."""
    if free_bytes <= 0:
        return 0.0
    # Piecewise linear: between two sources' ends, the rate is that of the sources still growing.
    pieces = sorted((left, rate) for rate, left in growths if rate > 0 and left > 0)
    used, at = 0.0, 0.0
    rate = sum(r for _, r in pieces)
    for left, piece_rate in pieces:
        if used + rate * (left - at) >= free_bytes:
            return at + (free_bytes - used) / rate
        used += rate * (left - at)
        at, rate = left, rate - piece_rate
    return None


def blockstore_capacity(
    sources: Sequence[SourceCapacity],
    stored: tuple[int, int],
    disk: tuple[int, int] | None,
    now_ms: int,
) -> BlockstoreCapacity:
    """The whole blockstore's figures. ``stored``: the bytes of every block file, and of the unique blocks
    any snapshot references; ``disk``: the free and total bytes of the blockstore's filesystem (None for a
    blockstore in a database: no days until full are then foreseen)."""
    all_stored, snapshot_stored = stored
    free, total = disk or (None, None)
    logical = sum(s.logical_bytes for s in sources)
    growths = ((s.growth_bytes_per_day or 0.0, s.growth_days_left) for s in sources)
    days = None if free is None else days_until_full(free, growths)
    return BlockstoreCapacity(
        stored_bytes=all_stored,
        logical_bytes=logical,
        snapshot_stored_bytes=snapshot_stored,
        dedup_ratio=dedup_ratio(logical, snapshot_stored),
        growth_bytes_per_day=sum(s.growth_bytes_per_day or 0.0 for s in sources),
        projections=tuple((d, all_stored + round(sum(s.grows(d) for s in sources))) for d in PROJECTION_DAYS),
        disk_free_bytes=free,
        disk_total_bytes=total,
        days_until_full=days,
        full_at_ms=None if days is None else now_ms + round(days * DAY_MS),
        sources=tuple(sources),
    )


# Gathering the inputs from a daemon.


def _sizes(daemon: BackupDaemon, block_ids: Iterable[str]) -> tuple[int, int]:
    """The bytes on disk of the unique ``block_ids`` and how many they are."""
    unique = set(block_ids)
    return sum(daemon.blockstore.stored_bytes(b) for b in unique), len(unique)


def _snapshot_blocks(daemon: BackupDaemon, snapshot_ids: Iterable[str]) -> set[str]:
    return {b for sid in snapshot_ids for b in daemon.snapshot_catalog.blocks(sid) or ()}


def measure(daemon: BackupDaemon, src: Source, now_ms: int) -> SourceCapacity:
    """The capacity figures of one source, measured on the blockstore."""
    metas = daemon.snapshots(src.id)
    uses = [SnapshotUse(m.createdAt, m.sizeBytes, m.storedBytes, m.blockCount, m.newBlocks) for m in metas]
    snapshot_stored, blocks = _sizes(daemon, _snapshot_blocks(daemon, (m.id for m in metas)))
    slice_blocks = (s.blockId for s in daemon.slice_catalog.slices(src.id) if s.blockId)
    oplog_stored, _ = _sizes(daemon, slice_blocks)
    ids = (src.id, src.groupId, src.clusterId, src.name)
    return source_capacity(ids, src.schedule, uses, (snapshot_stored, oplog_stored, blocks), now_ms)


def measure_blockstore(daemon: BackupDaemon, sources: Sequence[Source], now_ms: int) -> BlockstoreCapacity:
    """The whole blockstore's figures over ``sources`` (the backed-up ones)."""
    per_source = [measure(daemon, src, now_ms) for src in sources]
    every_file = sum(daemon.blockstore.stored_bytes(b) for b in daemon.blockstore)
    referenced, _ = _sizes(daemon, daemon.snapshot_catalog.referenced_blocks())
    space = daemon.blockstore.files.space()
    return blockstore_capacity(per_source, (every_file, referenced), space, now_ms)

"""Snapshot schedule, retention and grooming decisions, in Ops Manager's shape. Pure.

The schedule (Ops Manager's ``snapshotSchedule`` resource) says how often snapshots are taken and how long
they are kept:

=================================  ======================================================  =======
field                              meaning                                                 default
=================================  ======================================================  =======
``snapshotIntervalHours``          hours between scheduled snapshots                       6
``snapshotRetentionDays``          days every snapshot is kept                             2
``dailySnapshotRetentionDays``     days the first snapshot of each UTC day is kept         7
``weeklySnapshotRetentionWeeks``   weeks the first snapshot of each ISO week is kept       4
``monthlySnapshotRetentionMonths``  months the first snapshot of each month is kept        13
``pointInTimeWindowHours``         hours back from now that must stay restorable           24
=================================  ======================================================  =======

Retention keeps, besides those, the newest snapshot (a source is never left without one) and the **base**
of the point-in-time window: the newest snapshot taken at or before its start, without which the oldest
part of the window could not be restored. Slices are needed from the base (and any later snapshot) onward
in that snapshot's chain, and while the head has not applied them; grooming deletes the metadata of the
rest first and then frees only the blocks no remaining snapshot or slice references.

May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from opsmgr.errors import InvalidInput

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Ops Manager offers 6, 8, 12 and 24; shorter intervals are allowed for demos and small deployments.
INTERVAL_HOURS_MAX = 24


@dataclass(frozen=True)
class Schedule:
    snapshotIntervalHours: float = 6
    snapshotRetentionDays: int = 2
    dailySnapshotRetentionDays: int = 7
    weeklySnapshotRetentionWeeks: int = 4
    monthlySnapshotRetentionMonths: int = 13
    pointInTimeWindowHours: float = 24

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def interval_ms(self) -> int:
        return int(self.snapshotIntervalHours * HOUR_MS)

    @property
    def window_ms(self) -> int:
        return int(self.pointInTimeWindowHours * HOUR_MS)


_LIMITS: dict[str, tuple[float, float, bool]] = {
    # field: (min, max, integer)
    "snapshotIntervalHours": (1 / 60, INTERVAL_HOURS_MAX, False),
    "snapshotRetentionDays": (1, 365, True),
    "dailySnapshotRetentionDays": (0, 365, True),
    "weeklySnapshotRetentionWeeks": (0, 52, True),
    "monthlySnapshotRetentionMonths": (0, 36, True),
    "pointInTimeWindowHours": (0, 24 * 365, False),
}


def schedule_from_json(body: Any, current: Schedule | None = None) -> Schedule:
    """A schedule from a (partial) request body laid over ``current``; InvalidInput names the bad field."""
    if not isinstance(body, dict):
        raise InvalidInput("the snapshot schedule must be a JSON object", field="body")
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if name in ("groupId", "clusterId", "links"):
            continue
        if name not in _LIMITS:
            raise InvalidInput(f"unknown snapshot schedule field {name!r}", field=name)
        low, high, integer = _LIMITS[name]
        number_ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not number_ok or (integer and not float(value).is_integer()) or not low <= value <= high:
            kind = "a whole number" if integer else "a number"
            raise InvalidInput(f"{name} must be {kind} from {low:g} to {high:g}", field=name)
        changes[name] = int(value) if integer else value
    merged = replace(current or Schedule(), **changes)
    if merged.pointInTimeWindowHours > merged.snapshotRetentionDays * 24:
        raise InvalidInput(
            "pointInTimeWindowHours cannot be longer than snapshotRetentionDays",
            field="pointInTimeWindowHours",
        )
    return merged


def due(now_ms: int, last_snapshot_ms: int | None, schedule: Schedule) -> bool:
    """Whether a scheduled snapshot is due (a source without one is due at once)."""
    return last_snapshot_ms is None or now_ms - last_snapshot_ms >= schedule.interval_ms


@dataclass(frozen=True)
class Snap:
    """What retention needs of a snapshot."""

    id: str
    created_ms: int
    position: int
    chain: str


@dataclass(frozen=True)
class SliceRef:
    id: str
    chain: str
    start: int
    end: int


def _day(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _firsts(snaps: Sequence[Snap], bucket: Any) -> dict[Any, Snap]:
    """The earliest snapshot of each bucket (day, week, month)."""
    firsts: dict[Any, Snap] = {}
    for s in sorted(snaps, key=lambda x: (x.created_ms, x.id)):
        firsts.setdefault(bucket(_day(s.created_ms)), s)
    return firsts


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def pitr_base(snaps: Sequence[Snap], now_ms: int, schedule: Schedule) -> Snap | None:
    """The newest snapshot at or before the start of the point-in-time window, if any."""
    start = now_ms - schedule.window_ms
    before = [s for s in snaps if s.created_ms <= start]
    return max(before, key=lambda s: (s.created_ms, s.position), default=None)


def retained(snaps: Sequence[Snap], now_ms: int, schedule: Schedule) -> set[str]:
    """The ids of the snapshots the schedule keeps at ``now_ms``."""
    if not snaps:
        return set()
    keep = {max(snaps, key=lambda s: (s.created_ms, s.position)).id}
    keep |= {s.id for s in snaps if s.created_ms > now_ms - schedule.snapshotRetentionDays * DAY_MS}
    now = _day(now_ms)
    for bucket, alive in (
        (lambda d: d.date(), lambda s: s.created_ms > now_ms - schedule.dailySnapshotRetentionDays * DAY_MS),
        (
            lambda d: d.isocalendar()[:2],
            lambda s: s.created_ms > now_ms - schedule.weeklySnapshotRetentionWeeks * 7 * DAY_MS,
        ),
        (
            _month_index,
            lambda s: (
                _month_index(now) - _month_index(_day(s.created_ms)) < schedule.monthlySnapshotRetentionMonths
            ),
        ),
    ):
        keep |= {s.id for s in _firsts(snaps, bucket).values() if alive(s)}
    base = pitr_base(snaps, now_ms, schedule)
    if base is not None:
        keep.add(base.id)
    return keep


def expires_ms(snap: Snap, snaps: Sequence[Snap], schedule: Schedule) -> int:
    """When retention will drop a snapshot (the longest of the classes it belongs to), ignoring the rules
    that keep the newest snapshot and the window's base, which depend on snapshots not yet taken."""
    created = _day(snap.created_ms)
    ends = [snap.created_ms + schedule.snapshotRetentionDays * DAY_MS]
    if _firsts(snaps, lambda d: d.date()).get(created.date()) == snap:
        ends.append(snap.created_ms + schedule.dailySnapshotRetentionDays * DAY_MS)
    if _firsts(snaps, lambda d: d.isocalendar()[:2]).get(created.isocalendar()[:2]) == snap:
        ends.append(snap.created_ms + schedule.weeklySnapshotRetentionWeeks * 7 * DAY_MS)
    if _firsts(snaps, _month_index).get(_month_index(created)) == snap:
        month = _month_index(created) + schedule.monthlySnapshotRetentionMonths
        first_of_month = datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)
        ends.append(int(first_of_month.timestamp() * 1000))
    return max(ends)


def needed_slices(
    snaps: Sequence[Snap],
    kept: set[str],
    slices: Iterable[SliceRef],
    now_ms: int,
    schedule: Schedule,
    head_chain: str | None,
    head_applied: int | None,
) -> set[str]:
    """The slices grooming keeps: those after the window's base (or any later kept snapshot) in its chain,
    and those the head has not applied yet. With no snapshot at all every slice is kept."""
    slices = list(slices)
    live = [s for s in snaps if s.id in kept]
    if not live:
        return {x.id for x in slices}
    base = pitr_base(live, now_ms, schedule)
    window_start = now_ms - schedule.window_ms
    anchors = [s for s in live if s.created_ms > window_start or (base is not None and s.id == base.id)]
    if base is None:
        # The window reaches back past the oldest snapshot: everything after it is needed.
        anchors.append(min(live, key=lambda s: (s.created_ms, s.position)))
    from_pos: dict[str, int] = {}
    for a in anchors:
        from_pos[a.chain] = min(from_pos.get(a.chain, a.position), a.position)
    keep = {x.id for x in slices if x.chain in from_pos and x.end > from_pos[x.chain]}
    if head_chain is not None and head_applied is not None:
        keep |= {x.id for x in slices if x.chain == head_chain and x.end > head_applied}
    return keep


def unreferenced(blocks: Iterable[str], referenced: set[str]) -> list[str]:
    return [b for b in blocks if b not in referenced]

"""The point-in-time-restore window and restore planning, from metadata alone. Pure.

A position ``t`` is **restorable** iff there is a complete snapshot at a position ``p <= t`` and the slices of
that snapshot's chain (the lineage of the initial sync its head came from) cover ``(p, t]`` without a break.
The window is the union of ``[p, end of the unbroken run of slices after p]`` over all snapshots: a list of
disjoint inclusive ranges, with holes where a chain broke (a gap) and no later snapshot healed it.

A restore to ``t`` takes the newest snapshot at or before ``t`` that reaches it and replays the entries with
``snapshot position < ts <= t``: **the target is inclusive**, the entry at exactly ``t`` is applied.
Targets come in Ops Manager's shapes: ``snapshotId``, ``pointInTimeUTCMillis`` or ``oplogTs`` + ``oplogInc``
(see ``backup.positions`` for how each maps to a position).

May import ``opsmgr.errors``, ``opsmgr.timestamps``, ``opsmgr.backup.positions`` and ``opsmgr.backup.errors``
only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opsmgr.backup.errors import OutsideWindow, SnapshotBlocksMissing
from opsmgr.backup.positions import (
    PositionKind,
    from_millis,
    from_oplog,
    millis_range,
    timestamp_json,
)
from opsmgr.errors import InvalidInput
from opsmgr.timestamps import iso_utc


@dataclass(frozen=True, order=True)
class Range:
    """Positions ``start`` through ``end``, both included."""

    start: int
    end: int


@dataclass(frozen=True)
class SnapshotPoint:
    id: str
    position: int
    chain: str
    created_ms: int = 0


@dataclass(frozen=True)
class SliceSpan:
    """A slice covering ``(start, end]`` of one chain."""

    id: str
    chain: str
    start: int
    end: int


def merge(ranges: Iterable[Range]) -> list[Range]:
    """The union of ranges as disjoint sorted ranges; ranges that touch (``a.end + 1 == b.start``) join."""
    out: list[Range] = []
    for r in sorted(ranges):
        if out and r.start <= out[-1].end + 1:
            if r.end > out[-1].end:
                out[-1] = Range(out[-1].start, r.end)
        else:
            out.append(r)
    return out


def coverage(slices: Iterable[SliceSpan]) -> dict[str, list[tuple[int, int]]]:
    """Per chain, the runs ``(a, b]`` its abutting slices cover without a break."""
    by_chain: dict[str, list[SliceSpan]] = defaultdict(list)
    for s in slices:
        by_chain[s.chain].append(s)
    runs: dict[str, list[tuple[int, int]]] = {}
    for chain, spans in by_chain.items():
        chain_runs: list[tuple[int, int]] = []
        for s in sorted(spans, key=lambda x: (x.start, x.end)):
            if chain_runs and chain_runs[-1][0] <= s.start <= chain_runs[-1][1]:
                chain_runs[-1] = (chain_runs[-1][0], max(chain_runs[-1][1], s.end))
            else:
                chain_runs.append((s.start, s.end))
        runs[chain] = chain_runs
    return runs


def _reach(snapshot: SnapshotPoint, runs: dict[str, list[tuple[int, int]]]) -> int:
    """The furthest position restorable from a snapshot."""
    for a, b in runs.get(snapshot.chain, ()):
        if a <= snapshot.position < b:
            return b
    return snapshot.position


def window(snapshots: Iterable[SnapshotPoint], slices: Iterable[SliceSpan]) -> list[Range]:
    runs = coverage(slices)
    return merge(Range(s.position, _reach(s, runs)) for s in snapshots)


def restorable(ranges: Sequence[Range], position: int) -> bool:
    return any(r.start <= position <= r.end for r in ranges)


# Targets and plans.


@dataclass(frozen=True)
class Target:
    """Exactly one of a snapshot id or a position; ``label`` says what the caller asked for."""

    snapshot_id: str | None = None
    position: int | None = None
    label: str = ""
    field: str = "pointInTimeUTCMillis"  # the request field a refusal names


def parse_target(kind: PositionKind, body: dict[str, Any]) -> Target:
    """A restore target from a restore job body: ``snapshotId``, ``pointInTimeUTCMillis`` or
    ``oplogTs`` (+ ``oplogInc``, default 0), exactly one of them."""
    given = [k for k in ("snapshotId", "pointInTimeUTCMillis", "oplogTs") if body.get(k) is not None]
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one of snapshotId, pointInTimeUTCMillis or oplogTs (with oplogInc)",
            field="snapshotId" if not given else given[1],
        )
    if "oplogInc" in body and given != ["oplogTs"]:
        raise InvalidInput("oplogInc goes with oplogTs", field="oplogInc")
    if given == ["snapshotId"]:
        sid = body["snapshotId"]
        if not isinstance(sid, str) or not sid.isalnum() or len(sid) > 64:
            raise InvalidInput("snapshotId must be a snapshot's id", field="snapshotId")
        return Target(snapshot_id=sid, label=f"snapshot {sid}")
    if given == ["pointInTimeUTCMillis"]:
        ms = body["pointInTimeUTCMillis"]
        if not _is_int(ms) or not 0 <= ms < (1 << 31) * 1000:
            raise InvalidInput(
                "pointInTimeUTCMillis must be milliseconds since the epoch", field="pointInTimeUTCMillis"
            )
        return Target(position=from_millis(kind, ms), label=f"{iso_utc(ms)} (pointInTimeUTCMillis {ms})")
    ts, inc = body["oplogTs"], body.get("oplogInc", 0)
    if not _is_int(ts):
        raise InvalidInput("oplogTs must be seconds since the epoch", field="oplogTs")
    if not _is_int(inc):
        raise InvalidInput("oplogInc must be an integer", field="oplogInc")
    return Target(position=from_oplog(kind, ts, inc), label=f"oplogTs {ts}, oplogInc {inc}", field="oplogTs")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class RestorePlan:
    """Restore ``snapshot``, then apply the entries with ``snapshot.position < ts <= target`` found in
    ``slices`` (in order)."""

    snapshot: SnapshotPoint
    target: int
    slices: tuple[SliceSpan, ...]

    @property
    def after(self) -> int:
        return self.snapshot.position


def plan_restore(
    kind: PositionKind, snapshots: Sequence[SnapshotPoint], slices: Sequence[SliceSpan], target: Target
) -> RestorePlan:
    if target.snapshot_id is not None:
        snap = next((s for s in snapshots if s.id == target.snapshot_id), None)
        if snap is None:
            raise SnapshotBlocksMissing(
                f"snapshot {target.snapshot_id} is not in the snapshot metadata store",
                snapshotId=target.snapshot_id,
            )
        return RestorePlan(snap, snap.position, ())
    assert target.position is not None
    t = target.position
    runs = coverage(slices)
    candidates = sorted(
        (s for s in snapshots if s.position <= t), key=lambda s: (s.position, s.created_ms), reverse=True
    )
    for snap in candidates:
        if t <= _reach(snap, runs):
            needed = tuple(
                sorted(
                    (
                        x
                        for x in slices
                        if x.chain == snap.chain
                        and snap.position < t
                        and x.end > snap.position
                        and x.start < t
                    ),
                    key=lambda x: x.start,
                )
            )
            return RestorePlan(snap, t, needed)
    ranges = window(snapshots, slices)
    shown = window_json(kind, ranges)
    listing = "; ".join(f"{r['start']['date']} to {r['end']['date']}" for r in shown) or "none"
    raise OutsideWindow(
        f"{target.label or t} is outside the point-in-time restore window; restorable ranges: {listing}",
        shown,
        target.field,
    )


def window_json(kind: PositionKind, ranges: Sequence[Range]) -> list[dict[str, Any]]:
    """Ranges in the API: each end as a BSON-style timestamp, plus the milliseconds restorable by
    ``pointInTimeUTCMillis`` (null when no whole millisecond fits in the range)."""
    out = []
    for r in ranges:
        millis = millis_range(kind, r.start, r.end)
        out.append(
            {
                "start": timestamp_json(kind, r.start),
                "end": timestamp_json(kind, r.end),
                "startUTCMillis": None if millis is None else millis[0],
                "endUTCMillis": None if millis is None else millis[1],
            }
        )
    return out


def intersect(windows: Sequence[Sequence[tuple[int, int]]]) -> list[tuple[int, int]]:
    """The times (inclusive ``(lo, hi)`` pairs, e.g. milliseconds) restorable in every one of several
    windows: where a deployment of several sources can be restored to one point."""
    if not windows:
        return []
    current = sorted(windows[0])
    for other in windows[1:]:
        nxt: list[tuple[int, int]] = []
        for lo, hi in current:
            for olo, ohi in sorted(other):
                a, b = max(lo, olo), min(hi, ohi)
                if a <= b:
                    nxt.append((a, b))
        current = nxt
    return current

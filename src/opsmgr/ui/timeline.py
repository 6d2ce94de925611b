"""A point-in-time window drawn as a timeline: its restorable ranges and the holes between them as absolute
positions in percent of the span they cover (computed here, so the page needs no script), snapshots as marks
on the same axis, and the times as the pages print them (UTC, to the millisecond).

May import the standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# A range too short to see at the page's width is still drawn this wide (percent).
MIN_WIDTH = 0.4


def utc(ms: object) -> str:
    """``2026-12-05 21:17:18.123 UTC`` (empty for anything but milliseconds: a field a record lacks)."""
    if not isinstance(ms, int) or isinstance(ms, bool):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d} UTC"


@dataclass(frozen=True)
class Segment:
    """A restorable range (``kind`` "range") or a hole, placed on the axis."""

    kind: str
    start_ms: int
    end_ms: int
    left: float  # percent of the axis
    width: float

    @property
    def label(self) -> str:
        what = "Restorable" if self.kind == "range" else "Not restorable (hole)"
        return f"{what}: {utc(self.start_ms)} to {utc(self.end_ms)}"

    @property
    def style(self) -> str:
        return f"left: {self.left:.3f}%; width: {self.width:.3f}%"


@dataclass(frozen=True)
class Mark:
    """A snapshot on the axis."""

    at_ms: int
    left: float
    label: str

    @property
    def style(self) -> str:
        return f"left: {self.left:.3f}%"


@dataclass(frozen=True)
class Timeline:
    start_ms: int | None
    end_ms: int | None
    segments: tuple[Segment, ...]
    marks: tuple[Mark, ...]

    @property
    def empty(self) -> bool:
        return not self.segments

    @property
    def holes(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "hole"]

    @property
    def ranges(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "range"]


def ranges_of(window: Iterable[Mapping[str, object]]) -> list[tuple[int, int]]:
    """The millisecond ranges of a window as the API shows it (``startUTCMillis``, ``endUTCMillis``); a
    range in which no whole millisecond fits is left out."""
    out = []
    for r in window:
        lo, hi = r.get("startUTCMillis"), r.get("endUTCMillis")
        if isinstance(lo, int) and isinstance(hi, int):
            out.append((lo, hi))
    return sorted(out)


def timeline(ranges: Sequence[tuple[int, int]], snapshots: Iterable[tuple[int, str]] = ()) -> Timeline:
    """``ranges`` (inclusive millisecond pairs) and the holes between them on one axis from the first start
    to the last end; ``snapshots`` (time, label) inside that span become marks."""
    ordered = sorted(ranges)
    if not ordered:
        return Timeline(None, None, (), ())
    lo, hi = ordered[0][0], max(end for _, end in ordered)
    span = max(hi - lo, 1)

    def place(kind: str, start: int, end: int) -> Segment:
        left = (start - lo) * 100.0 / span
        width = max((end - start) * 100.0 / span, MIN_WIDTH)
        return Segment(kind, start, end, round(min(left, 100.0 - MIN_WIDTH), 3), round(min(width, 100.0), 3))

    segments: list[Segment] = []
    reached = None
    for start, end in ordered:
        if reached is not None and start > reached + 1:
            segments.append(place("hole", reached, start))
        segments.append(place("range", start, end))
        reached = end if reached is None else max(reached, end)
    marks = tuple(
        Mark(at, round((at - lo) * 100.0 / span, 3), label) for at, label in snapshots if lo <= at <= hi
    )
    return Timeline(lo, hi, tuple(segments), marks)

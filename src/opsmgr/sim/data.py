"""Documents and oplog entries of the simulated world, stored once per lineage.

A **lineage** is one history of writes: the members of a replica set that replicate from each other share
it, and each member is a pair of pointers into it: ``applied_ts`` (its last applied entry, so its data is the
lineage's documents as of that entry) and ``trunc_ts`` (its oplog holds the entries after it, up to
``applied_ts``; the member's ``replication.oplogSizeMB`` moves it forward). Replication is moving a pointer,
so it costs nothing per document, and the documents of any member are available without copying:

- entries: ``(ts, cum, size, op, ns, o, o2, wall_ms)`` in ``ts`` order, ``cum`` the lineage's byte count
  through the entry (an entry's size is its JSON size plus a fixed header), so a member's oplog size is
  ``cum(applied) - cum(trunc)``. Entries no member's oplog holds are pruned.
- documents: versions ``(ns, _id, from_ts, to_ts, doc)`` (multi-version), so that the documents as of any
  member's ``applied_ts`` can be read. Versions that no member can still see are garbage collected: a
  member that can still catch up may need any version after its point; a member that cannot (too stale)
  only needs the versions visible at its point.

A new primary elected behind the lineage's end rolls the lineage back to its point (the entries after it
are removed and the versions undone), which is MongoDB's rollback of unreplicated writes.

Two implementations of :class:`DataOps`: :class:`MemoryData` here and ``sim.sqlite.SqliteData``.
May import the standard library and ``opsmgr.drivers.base`` only.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsmgr.drivers.base import OplogRecord

TS_MAX = (1 << 63) - 1
ENTRY_HEADER_BYTES = 48  # ts, t, wall, v, op and the BSON framing of a real oplog entry, roughly


def dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def id_key(doc_id: Any) -> str:
    return dumps(doc_id)


@dataclass(frozen=True, slots=True)
class Entry:
    ts: int
    cum: int
    size: int
    op: str
    ns: str
    o: str  # JSON, so that an entry is immutable and shared safely
    o2: str | None
    wall_ms: int

    @staticmethod
    def make(ts: int, prev_cum: int, op: str, ns: str, o: Any, o2: Any | None, wall_ms: int) -> Entry:
        o_json = dumps(o)
        o2_json = dumps(o2) if o2 is not None else None
        size = ENTRY_HEADER_BYTES + len(ns) + len(o_json) + (len(o2_json) if o2_json else 0)
        return Entry(ts, prev_cum + size, size, op, ns, o_json, o2_json, wall_ms)

    def record(self) -> OplogRecord:
        return OplogRecord(
            ts=self.ts,
            op=self.op,
            ns=self.ns,
            o=json.loads(self.o),
            o2=json.loads(self.o2) if self.o2 is not None else None,
            wall_ms=self.wall_ms,
        )


class DataOps(Protocol):
    """Entries and document versions per lineage id."""

    def append(self, lid: int, entries: Sequence[Entry]) -> None: ...

    def entries(self, lid: int, after_ts: int, upto_ts: int, limit: int) -> list[Entry]:
        """Entries with ``after_ts < ts <= upto_ts`` in ts order, at most ``limit``."""
        ...

    def entry_at(self, lid: int, ts: int) -> Entry | None: ...

    def nth_after(self, lid: int, after_ts: int, upto_ts: int, n: int) -> Entry | None:
        """The n-th entry (1-based) after ``after_ts``, or the last one up to ``upto_ts`` if fewer."""
        ...

    def count_between(self, lid: int, after_ts: int, upto_ts: int) -> int: ...

    def first_cum_at_least(self, lid: int, cum: int) -> Entry | None: ...

    def prune_entries(self, lid: int, keep: list[tuple[int, int]]) -> None:
        """Remove entries outside the union of the ``(lo, hi]`` ranges in ``keep``."""
        ...

    def truncate_after(self, lid: int, ts: int) -> int:
        """Remove the entries after ``ts``; how many there were."""
        ...

    def get_doc(self, lid: int, ns: str, key: str, at: int) -> dict[str, Any] | None: ...

    def put_doc(self, lid: int, ns: str, key: str, ts: int, doc: dict[str, Any] | None) -> None:
        """From ``ts`` on, the document is ``doc`` (None: deleted)."""
        ...

    def docs_at(self, lid: int, at: int) -> list[tuple[str, dict[str, Any]]]: ...

    def count_docs(self, lid: int, at: int) -> int: ...

    def rollback_docs(self, lid: int, ts: int) -> None:
        """Undo every version change made after ``ts``."""
        ...

    def gc_docs(self, lid: int, moving_min: int, frozen: list[int]) -> None:
        """Drop versions ending at or before ``moving_min`` that are visible at none of ``frozen``."""
        ...

    def drop(self, lid: int) -> None: ...


def keep_ranges(refs: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """The union of the members' oplog ranges ``(trunc, applied]``, merged and sorted."""
    ranges = sorted((r[0], r[1]) for r in refs if r[1] > r[0])
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def gc_points(refs: Sequence[Sequence[int]]) -> tuple[int, list[int]]:
    """``(moving_min, frozen)`` for :meth:`DataOps.gc_docs` from the members' ``[trunc, applied]``.

    A member can still move forward when it is the furthest, or when another member's oplog covers the
    entry after its point; it then may need any version after its point. The others are frozen there.
    """
    top = max((r[1] for r in refs), default=0)
    moving: list[int] = []
    frozen: list[int] = []
    for trunc_ts, applied in refs:
        del trunc_ts
        can_move = applied >= top or any(o[0] <= applied < o[1] for o in refs)
        (moving if can_move else frozen).append(applied)
    return (min(moving) if moving else top), frozen


@dataclass
class _Version:
    start: int
    end: int
    doc: str  # JSON


@dataclass
class _MemLineage:
    entries: list[Entry] = field(default_factory=list)
    tss: list[int] = field(default_factory=list)
    cums: list[int] = field(default_factory=list)
    versions: dict[tuple[str, str], list[_Version]] = field(default_factory=dict)
    # (end, ns, key) of superseded versions, so that GC visits only keys that have some.
    ended: list[tuple[int, str, str]] = field(default_factory=list)


class MemoryData:
    """:class:`DataOps` in Python lists and dicts (the in-memory world)."""

    def __init__(self) -> None:
        self._lineages: dict[int, _MemLineage] = {}

    def _l(self, lid: int) -> _MemLineage:
        lin = self._lineages.get(lid)
        if lin is None:
            lin = self._lineages[lid] = _MemLineage()
        return lin

    def append(self, lid: int, entries: Sequence[Entry]) -> None:
        lin = self._l(lid)
        for e in entries:
            lin.entries.append(e)
            lin.tss.append(e.ts)
            lin.cums.append(e.cum)

    def entries(self, lid: int, after_ts: int, upto_ts: int, limit: int) -> list[Entry]:
        lin = self._l(lid)
        lo = bisect.bisect_right(lin.tss, after_ts)
        hi = min(bisect.bisect_right(lin.tss, upto_ts), lo + max(0, limit))
        return lin.entries[lo:hi]

    def entry_at(self, lid: int, ts: int) -> Entry | None:
        lin = self._l(lid)
        i = bisect.bisect_left(lin.tss, ts)
        return lin.entries[i] if i < len(lin.tss) and lin.tss[i] == ts else None

    def nth_after(self, lid: int, after_ts: int, upto_ts: int, n: int) -> Entry | None:
        lin = self._l(lid)
        lo = bisect.bisect_right(lin.tss, after_ts)
        hi = bisect.bisect_right(lin.tss, upto_ts)
        if hi <= lo or n < 1:
            return None
        return lin.entries[min(lo + n, hi) - 1]

    def count_between(self, lid: int, after_ts: int, upto_ts: int) -> int:
        lin = self._l(lid)
        return max(0, bisect.bisect_right(lin.tss, upto_ts) - bisect.bisect_right(lin.tss, after_ts))

    def first_cum_at_least(self, lid: int, cum: int) -> Entry | None:
        lin = self._l(lid)
        i = bisect.bisect_left(lin.cums, cum)
        return lin.entries[i] if i < len(lin.entries) else None

    def prune_entries(self, lid: int, keep: list[tuple[int, int]]) -> None:
        lin = self._l(lid)
        if not lin.entries:
            return
        if not keep:
            lin.entries, lin.tss, lin.cums = [], [], []
            return
        first = bisect.bisect_right(lin.tss, keep[0][0])
        holes = [
            (bisect.bisect_right(lin.tss, a[1]), bisect.bisect_right(lin.tss, b[0]))
            for a, b in itertools.pairwise(keep)
        ]
        last = bisect.bisect_right(lin.tss, keep[-1][1])
        in_holes = sum(hi - lo for lo, hi in holes)
        if in_holes == 0:
            if first or last < len(lin.entries):
                del lin.entries[last:], lin.tss[last:], lin.cums[last:]
                del lin.entries[:first], lin.tss[:first], lin.cums[:first]
            return
        spans = [(first, holes[0][0]), *((h[1], n[0]) for h, n in itertools.pairwise(holes))]
        spans.append((holes[-1][1], last))
        kept = [e for lo, hi in spans for e in lin.entries[lo:hi]]
        lin.entries = kept
        lin.tss = [e.ts for e in kept]
        lin.cums = [e.cum for e in kept]

    def truncate_after(self, lid: int, ts: int) -> int:
        lin = self._l(lid)
        i = bisect.bisect_right(lin.tss, ts)
        removed = len(lin.entries) - i
        del lin.entries[i:], lin.tss[i:], lin.cums[i:]
        return removed

    @staticmethod
    def _visible(versions: list[_Version], at: int) -> _Version | None:
        for v in reversed(versions):
            if v.start <= at < v.end:
                return v
            if v.end <= at:
                return None
        return None

    def get_doc(self, lid: int, ns: str, key: str, at: int) -> dict[str, Any] | None:
        versions = self._l(lid).versions.get((ns, key))
        v = self._visible(versions, at) if versions else None
        return json.loads(v.doc) if v else None

    def put_doc(self, lid: int, ns: str, key: str, ts: int, doc: dict[str, Any] | None) -> None:
        lin = self._l(lid)
        versions = lin.versions.setdefault((ns, key), [])
        if versions and versions[-1].end == TS_MAX:
            versions[-1].end = ts
            heapq.heappush(lin.ended, (ts, ns, key))
        if doc is not None:
            versions.append(_Version(ts, TS_MAX, dumps(doc)))
        elif not versions:
            del lin.versions[(ns, key)]

    def docs_at(self, lid: int, at: int) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for (ns, _key), versions in self._l(lid).versions.items():
            v = self._visible(versions, at)
            if v is not None:
                out.append((ns, json.loads(v.doc)))
        return out

    def count_docs(self, lid: int, at: int) -> int:
        return sum(1 for vs in self._l(lid).versions.values() if self._visible(vs, at) is not None)

    def rollback_docs(self, lid: int, ts: int) -> None:
        lin = self._l(lid)
        for k in list(lin.versions):
            versions = lin.versions[k]
            if not versions or versions[-1].end <= ts:
                continue
            kept = [v for v in versions if v.start <= ts]
            if kept and kept[-1].end > ts:
                kept[-1].end = TS_MAX
            if kept:
                lin.versions[k] = kept
            else:
                del lin.versions[k]

    def gc_docs(self, lid: int, moving_min: int, frozen: list[int]) -> None:
        lin = self._l(lid)
        while lin.ended and lin.ended[0][0] <= moving_min:
            _end, ns, key = heapq.heappop(lin.ended)
            versions = lin.versions.get((ns, key))
            if not versions:
                continue
            kept = [v for v in versions if v.end > moving_min or any(v.start <= f < v.end for f in frozen)]
            if kept:
                lin.versions[(ns, key)] = kept
            else:
                del lin.versions[(ns, key)]

    def drop(self, lid: int) -> None:
        self._lineages.pop(lid, None)

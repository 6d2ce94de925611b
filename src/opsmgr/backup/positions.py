"""Oplog positions of the two kinds of source and their shapes in Ops Manager's API. Pure.

A position is an integer that orders a source's oplog entries:

- ``STORE``: an opsmgr backing database; ``ts`` is microseconds since the epoch (``opsmgr.store``).
- ``BSON``: a MongoDB replica set; ``ts`` is a BSON Timestamp, seconds << 32 | increment.

Ops Manager names a point in time either ``pointInTimeUTCMillis`` or ``oplogTs`` (seconds) + ``oplogInc``.
A time in milliseconds ``m`` means the position **at the end of that millisecond at the source's
resolution**: every entry whose time is at or before ``m`` is included (for a BSON source, whose entries
carry whole seconds, every entry of the second ``m`` falls in). ``oplogTs``/``oplogInc`` name a position
exactly: for a BSON source they are its two halves; for a STORE source ``oplogTs`` is whole seconds and
``oplogInc`` the microseconds within that second, which is how :func:`timestamp_json` shows its positions.

May import ``opsmgr.errors`` and ``opsmgr.timestamps`` only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from opsmgr.errors import InvalidInput
from opsmgr.timestamps import iso_utc

_INC_MASK = 0xFFFFFFFF
_US_PER_S = 1_000_000
POSITION_MAX = (1 << 63) - 1


class PositionKind(StrEnum):
    STORE = "STORE"  # microseconds since the epoch
    BSON = "BSON"  # seconds << 32 | increment


# The highest position of each kind: one that still fits a signed 64-bit column and names a date (a STORE
# position past the year 9999 cannot be shown as one; a BSON one's seconds are below 2**31).
POSITION_LIMITS = {PositionKind.STORE: 253_402_300_799_999_999, PositionKind.BSON: POSITION_MAX}


def to_millis(kind: PositionKind, pos: int) -> int:
    """The millisecond in which ``pos`` falls (for BSON: the start of its second)."""
    if kind is PositionKind.BSON:
        return (pos >> 32) * 1000
    return pos // 1000


def from_millis(kind: PositionKind, ms: int) -> int:
    """The greatest position whose time is at or before the millisecond ``ms``."""
    if kind is PositionKind.BSON:
        return ((ms // 1000) << 32) | _INC_MASK
    return ms * 1000 + 999


def millis_range(kind: PositionKind, first: int, last: int) -> tuple[int, int] | None:
    """The milliseconds ``m`` whose :func:`from_millis` lies in ``[first, last]``, or None if none does."""
    lo = to_millis(kind, first)
    if from_millis(kind, lo) < first:
        lo += 1
    hi = to_millis(kind, last)
    if from_millis(kind, hi) > last:
        # For BSON every millisecond of that second maps past ``last``: the last one that fits ends the
        # second before.
        hi = hi - 1 if kind is PositionKind.STORE else hi - 1 - (hi % 1000)
    return (lo, hi) if lo <= hi else None


def to_oplog(kind: PositionKind, pos: int) -> tuple[int, int]:
    """``(oplogTs, oplogInc)`` of a position."""
    if kind is PositionKind.BSON:
        return pos >> 32, pos & _INC_MASK
    return pos // _US_PER_S, pos % _US_PER_S


def from_oplog(kind: PositionKind, ts: int, inc: int) -> int:
    """The position named by ``oplogTs``/``oplogInc``; InvalidInput when either is out of range."""
    inc_limit = _INC_MASK if kind is PositionKind.BSON else _US_PER_S - 1
    if not 0 <= ts < (1 << 31):
        raise InvalidInput("oplogTs must be seconds since the epoch", field="oplogTs")
    if not 0 <= inc <= inc_limit:
        raise InvalidInput(f"oplogInc must be from 0 to {inc_limit}", field="oplogInc")
    if kind is PositionKind.BSON:
        return (ts << 32) | inc
    return ts * _US_PER_S + inc


def timestamp_json(kind: PositionKind, pos: int) -> dict[str, Any]:
    """A position as Ops Manager shows a BSON timestamp: ``{date, time, increment}``."""
    ts, inc = to_oplog(kind, pos)
    return {"date": iso_utc(to_millis(kind, pos)), "time": ts, "increment": inc}

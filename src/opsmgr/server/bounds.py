"""The bounds of the numbers that enter through the HTTP API, declared once: constrained types that body
models and query parameters use (so the OpenAPI document states them too), the agent backup routes' body
models, and the check that a position fits its source's kind.

What the store and the domain hold: positions are oplog timestamps kept in signed 64-bit columns, and a
position of each kind must still name a date (``backup.positions.POSITION_LIMITS``); sequence numbers are
64-bit counters; times are seconds since the epoch before the year 10000; counts are not negative. May import
``opsmgr.errors`` and ``opsmgr.backup.positions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from opsmgr.backup.positions import POSITION_LIMITS, POSITION_MAX, PositionKind
from opsmgr.errors import InvalidInput

T = TypeVar("T")
INT64_MAX = (1 << 63) - 1
EPOCH_S_MAX = 253_402_300_799  # 9999-12-31T23:59:59Z
INT32_MAX = (1 << 31) - 1

# strict: 1.5, true and "5" are not integers here, as they are not in Ops Manager's API.
Position = Annotated[int, Field(strict=True, ge=0, le=POSITION_MAX)]
# A query parameter is text: its digits are the integer.
PositionParam = Annotated[int, Field(ge=0, le=POSITION_MAX)]
SeqNumber = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
EpochSeconds = Annotated[float, Field(strict=True, ge=0, le=EPOCH_S_MAX)]
Connections = Annotated[int, Field(strict=True, ge=0, le=INT32_MAX)]

# For bodies read field by field (:func:`bounded`).
POSITION: TypeAdapter[int] = TypeAdapter(Position)
SEQUENCE: TypeAdapter[int] = TypeAdapter(SeqNumber)
EPOCH_SECONDS: TypeAdapter[float] = TypeAdapter(EpochSeconds)
CONNECTIONS: TypeAdapter[int] = TypeAdapter(Connections)


def within(kind: PositionKind, value: int, field: str) -> int:
    """``value`` when a position of ``kind`` can be it (InvalidInput naming ``field`` otherwise)."""
    limit = POSITION_LIMITS[kind]
    if value > limit:
        raise InvalidInput(f"{field} must be a {kind.value} source's position: at most {limit}", field=field)
    return value


def bounded(
    body: Mapping[str, object], name: str, kind: TypeAdapter[T], where: str | None = None
) -> T | None:
    """``body[name]`` checked against the constrained type ``kind`` (None when absent or null); InvalidInput
    naming the field (``where`` it is in the request, if not at the top) and the bound otherwise."""
    value = body.get(name)
    if value is None:
        return None
    try:
        return kind.validate_python(value)
    except ValidationError as exc:
        field = where or name
        raise InvalidInput(f"{field}: {exc.errors()[0]['msg']}", field=field) from None


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SyncStart(_Body):
    """An initial sync begins once the source's oplog reached ``position``."""

    position: Position


class SyncFinish(_Body):
    """The source's oplog had reached ``minValid`` when the last document was read."""

    minValid: Position


class GapReport(_Body):
    """The source's oplog no longer holds the entries after the tip; ``firstAvailable`` is its oldest."""

    firstAvailable: Position | None = None
    detail: str = ""

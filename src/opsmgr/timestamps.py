"""Instants on the wire, as Ops Manager writes them.

Ops Manager's API writes an instant as an ISO-8601 UTC string (``2024-05-01T12:00:00Z``, with milliseconds
when there are any): ``created``, ``updated``, ``expires``, ``finished``... Only a few fields are epoch
milliseconds (an agent API key's ``createdTime``, ``pointInTimeUTCMillis``, fields named ``...Millis``).
opsmgr's records keep epoch milliseconds (or seconds); its API views convert at the edge with these
functions, one place for the format. May import nothing of opsmgr.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(ms: int) -> str:
    """``2024-05-01T12:00:00Z`` for epoch milliseconds (``.123`` before the ``Z`` when there are any)."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    fraction = f".{ms % 1000:03d}" if ms % 1000 else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def iso_utc_or_none(ms: int | None) -> str | None:
    """:func:`iso_utc`, or None for an instant that has not happened (a job not finished yet)."""
    return None if ms is None else iso_utc(ms)


def iso_utc_seconds(seconds: float | None) -> str | None:
    """:func:`iso_utc` of epoch seconds (as a monotonic-free wall clock gives them), to the millisecond."""
    return None if seconds is None else iso_utc(round(seconds * 1000))


def epoch_ms(iso: str) -> int:
    """The epoch milliseconds of an ISO-8601 instant (``Z`` or an offset; UTC when it names none)."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)

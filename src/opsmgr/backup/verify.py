"""The seed's runbook checks of a secondary's backup of the primary's backing databases (pure): what
``opsmgr backup verify`` decides from the secondary's answers.

Each :class:`Check` passes or names what is missing:

- a completed snapshot of each store (application database, snapshot and oplog metadata stores);
- each store's point-in-time window continuous over the last ``hours`` (one range covering them) and
  advancing (its end within ``max_lag_s`` of now);
- the latest point the three restore to together within ``max_lag_s`` of now;
- the last restore drill passed, within ``drill_days``;
- the secondary's Backup Daemon healthy.

May import nothing of opsmgr.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STORES = ("app", "snapshot", "oplog")


@dataclass(frozen=True)
class Limits:
    hours: float = 24.0
    max_lag_s: float = 300.0
    drill_days: float = 7.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _age(now_ms: int, then_ms: int) -> str:
    seconds = max(now_ms - then_ms, 0) / 1000
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def _store_checks(store: Mapping[str, Any], now_ms: int, limits: Limits) -> list[Check]:
    name = str(store["name"])
    snaps = [s for s in store.get("snapshots") or [] if s.get("complete")]
    out = [
        Check(
            f"snapshot of the {name} store",
            bool(snaps),
            f"{len(snaps)} completed snapshot(s)" if snaps else "no completed snapshot",
        )
    ]
    since = now_ms - int(limits.hours * 3_600_000)
    ranges = [r for r in store.get("pitrWindow") or [] if r.get("startUTCMillis") is not None]
    covering = [
        r
        for r in ranges
        if r["startUTCMillis"] <= since and r["endUTCMillis"] >= now_ms - limits.max_lag_s * 1000
    ]
    if covering:
        out.append(Check(f"window of the {name} store", True, f"continuous over the last {limits.hours:g} h"))
    elif not ranges:
        out.append(Check(f"window of the {name} store", False, "no point-in-time window"))
    else:
        last = ranges[-1]
        why = (
            f"its end is {_age(now_ms, last['endUTCMillis'])} old: not advancing"
            if last["endUTCMillis"] < now_ms - limits.max_lag_s * 1000
            else f"it begins {_age(now_ms, last['startUTCMillis'])} ago (a hole or a late start): less than "
            f"{limits.hours:g} h"
        )
        out.append(Check(f"window of the {name} store", False, why))
    return out


def verify(
    backing: Mapping[str, Any],
    drills: Sequence[Mapping[str, Any]],
    daemon: Mapping[str, Any] | None,
    now_ms: int,
    limits: Limits,
) -> list[Check]:
    """Every check, in the runbook's order. ``drills``: newest first; ``daemon``: the secondary's
    ``/health/ready`` daemon section (None when it could not be read)."""
    stores = {s["name"]: s for s in backing.get("stores") or []}
    out: list[Check] = []
    for name in STORES:
        if name in stores:
            out += _store_checks(stores[name], now_ms, limits)
        else:
            out.append(Check(f"backup of the {name} store", False, "the store is not backed up"))
    together = backing.get("restorableTogether") or []
    end = together[-1]["endUTCMillis"] if together else None
    recent = end is not None and end >= now_ms - limits.max_lag_s * 1000
    out.append(
        Check(
            "restorable together",
            recent,
            "no point the three restore to together"
            if end is None
            else f"the latest point the three restore to together is {_age(now_ms, end)} old",
        )
    )
    out.append(_drill_check(drills, now_ms, limits))
    healthy = bool(daemon and daemon.get("healthy"))
    problems = "; ".join(str(p) for p in (daemon or {}).get("problems") or []) or "its health is unknown"
    out.append(Check("secondary's Backup Daemon", healthy, "healthy" if healthy else problems))
    return out


def _drill_check(drills: Sequence[Mapping[str, Any]], now_ms: int, limits: Limits) -> Check:
    if not drills:
        return Check("last restore drill", False, "no restore drill has run: opsmgr drill run")
    last = drills[0]
    age = _age(now_ms, int(last["started"]))
    if not last["passed"]:
        failed = next((s["name"] for s in last["steps"] if not s["passed"]), "?")
        return Check("last restore drill", False, f"the last drill ({age} ago) failed at {failed}")
    if now_ms - int(last["started"]) > limits.drill_days * 86_400_000:
        return Check(
            "last restore drill", False, f"the last drill passed {age} ago: over {limits.drill_days:g} days"
        )
    return Check("last restore drill", True, f"passed {age} ago")

"""The change document: what the server keeps of a replica set's rolling change, and how it moves.

One document per replica set in the application database's ``maintenance_leases`` collection (the lease and
the shared progress, as ``maintenance.leases`` lays it out) holds the rolling change under way, its
:class:`~opsmgr.maintenance.report.ChangeStatus`, its event timeline, the config it started from and a change
queued behind it; changes that ended are copied to ``maintenance_changes`` for the history. The functions
here read and move one such document inside the caller's transaction: a change begins, records a move,
folds a decision into its status (keeping its warnings, see ``maintenance.watch``), ends, and lets the
queued one begin. The parts of :class:`~opsmgr.maintenance.service.MaintenanceService` share them.

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.automation.protocol`` and ``opsmgr.maintenance``
modules.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.errors import Conflict
from opsmgr.maintenance.leases import ROLLING, lease_fields, owner_of, purpose_of, released
from opsmgr.maintenance.leases import lease_state as lease_state
from opsmgr.maintenance.moves import (
    WAITS,
    ArbiterPhase,
    BlockCause,
    Blocked,
    Decision,
    Done,
    Move,
    MoveName,
    Progress,
    record,
)
from opsmgr.maintenance.report import (
    ChangeState,
    ChangeStatus,
    Event,
    EventKind,
    events_for_move,
    observe,
    summarize,
)
from opsmgr.maintenance.rolling import RollingChange
from opsmgr.maintenance.watch import close_spell, keep_warnings, open_majority, with_majority
from opsmgr.store.engine import Txn, new_id
from opsmgr.store.maintenance_windows import close_for_change

log = logging.getLogger(__name__)

HISTORY = "maintenance_changes"
MAX_EVENTS = 2000

AlertFact = tuple[bool, str, str | None]  # (open, reason, member)


def doc_id(group_id: str, rs_id: str) -> str:
    return f"{group_id}:{rs_id}"


def blank(group_id: str, rs_id: str) -> dict[str, Any]:
    """The document of a replica set that never had a change nor a lease."""
    return {"_id": doc_id(group_id, rs_id), "groupId": group_id, "rsId": rs_id, "lease": None}


def alert_key(rs_id: str) -> str:
    return f"maintenance:{rs_id}:member-failed"


def replica_set(config: Mapping[str, Any], rs_id: str | None) -> dict[str, Any] | None:
    return next((dict(r) for r in config.get("replicaSets", []) if r["_id"] == rs_id), None)


def active(doc: Mapping[str, Any] | None) -> bool:
    if doc is None or not doc.get("changeId"):
        return False
    return (doc.get("status") or {}).get("state") != ChangeState.DONE.value


def state(doc: Mapping[str, Any] | None) -> str | None:
    return (doc.get("status") or {}).get("state") if doc is not None and doc.get("changeId") else None


def owner(doc: Mapping[str, Any] | None) -> str:
    """The owner of the leases the change under way in ``doc`` takes (a config's, when none is)."""
    return owner_of(RollingChange.from_json(doc["change"])) if doc is not None and active(doc) else ROLLING


def purpose(doc: Mapping[str, Any]) -> str:
    return purpose_of(RollingChange.from_json(doc["change"]))


def begin(
    doc: dict[str, Any],
    change: RollingChange,
    started_from: dict[str, Any] | None,
    version: int | None,
    now: float,
    change_id: str | None = None,
) -> None:
    """``change`` becomes the one under way in ``doc`` (``started_from``: the config it started from, its
    secrets encrypted; None for a build's member step)."""
    doc.update(
        changeId=change_id or new_id(),
        change=change.to_json(),
        progress=Progress().to_json(),
        status=ChangeStatus(change.rs_id).to_json(),
        events=[],
        lastPrimary=None,
        extras={},
        report=None,
        revision=0,
        startedFrom=started_from,
        goalVersion=version,
        createdAt=now,
        doneAt=None,
        refused=None,
        leaseDenied=None,
        warningLog=[],
        majorityLost=[],
        updatedAt=now,
        **_without_own_lease(doc, owner_of(change), forget=True),
    )


def promote(doc: dict[str, Any], now: float) -> None:
    """The change that waited for the one that just ended begins."""
    queued = doc.pop("queued", None)
    if queued:
        change = RollingChange.from_json(queued["change"])
        begin(doc, change, queued["startedFrom"], queued["goalVersion"], now, queued["changeId"])
        log.info("rolling change of %s for version %s begins", doc["rsId"], queued["goalVersion"])


def end(t: Txn, doc: dict[str, Any], now: float, reason: str) -> None:
    """The change is over (done or superseded): its lease goes, its figures and history are kept, the
    maintenance window it opened ends."""
    status = ChangeStatus.from_json(doc["rsId"], doc.get("status") or {})
    done = replace(status, state=ChangeState.DONE, reason=reason, failed_member=None, since=now)
    events = [*doc.get("events", []), Event(now, EventKind.DONE).to_json()]
    doc.update(
        status=done.to_json(),
        majorityLost=close_spell(doc.get("majorityLost") or [], now),
        events=events,
        report=summarize(Event.from_json(e) for e in events).to_json(),
        doneAt=now,
        updatedAt=now,
        **_without_own_lease(doc, owner(doc)),
    )
    t.put(HISTORY, {**history(doc), "_id": doc["changeId"]})
    close_for_change(t, str(doc["groupId"]), str(doc["changeId"]), now)
    t.notify(WORK_CHANGED, str(doc["groupId"]))


def apply_move(
    doc: dict[str, Any],
    change_id: str | None,
    move: Move,
    seq: int | None,
    now: float,
    extra: Mapping[str, Any],
) -> None:
    """Record ``move`` in ``doc``, with its events (``extra``: when it started, ``at``, and the primary's
    ``connections`` before a step-down); a move starting a unit decided on older progress is refused."""
    if change_id is not None and change_id != doc.get("changeId"):
        raise Conflict(f"rolling change {change_id} of {doc['rsId']} is no longer the one under way")
    progress = Progress.from_json(doc["progress"])
    starts_unit = bool(move.plan) and move.plan != progress.steps
    if starts_unit and seq is not None and seq != progress.seq:
        raise Conflict(
            f"{move.name.value} for {move.member} was decided on progress {seq}, which has moved on to "
            f"{progress.seq}: decide again"
        )
    at = float(extra.get("at") or now)
    events = events_for_move(move, progress, at, connections=extra.get("connections"))
    after = record(progress, move, now)
    if after is progress:
        return
    if move.name is MoveName.RELEASE_LEASE:
        left = released(lease_state(doc), move.member, owner(doc))
        if left is not None:
            doc.update(lease_fields(left))
    doc["progress"] = after.to_json()
    doc["events"] = [*doc.get("events", []), *(e.to_json() for e in events)][-MAX_EVENTS:]
    doc["updatedAt"] = now


def fold(doc: dict[str, Any], decision: Decision, now: float) -> list[AlertFact]:
    """Fold ``decision`` into the status of ``doc`` (while the set has lost its majority, the status says
    so) and keep its warnings; returns the alert facts it gives rise to."""
    seen = observe(ChangeStatus.from_json(doc["rsId"], doc.get("status") or {}), decision, now)
    lost = open_majority(doc.get("majorityLost") or [])
    doc["status"] = with_majority(seen.status, lost, doc["rsId"], now).to_json()
    if not isinstance(decision, Done) and decision.warnings:
        doc["warningLog"] = keep_warnings(
            doc.get("warningLog") or [], decision.warnings, decision.member, now
        )
    doc["events"] = [
        *doc.get("events", []),
        *(e.to_json() for e in seen.events if e.kind is not EventKind.DONE),
    ]
    return [(a.open, a.reason, a.member) for a in seen.alerts]


def denied(member: str, reason: str) -> Blocked:
    """What a denied lease says of the change: blocked before ``member`` goes out."""
    return Blocked(f"the maintenance lease for {member} is denied: {reason}", BlockCause.PREFLIGHT, member)


def finished(doc: dict[str, Any], now: float) -> bool:
    """Whether the change's progress agrees that it is done; trailing waits of the last unit, which the
    procedure treats as satisfied when it answers Done, are recorded here."""
    progress = Progress.from_json(doc["progress"])
    if progress.in_unit and all(s.move in WAITS for s in progress.steps[progress.position :]):
        for step in progress.steps[progress.position :]:
            progress = record(progress, Move(step.move, step.member, None, ""), now)
        doc["progress"] = progress.to_json()
    change = RollingChange.from_json(doc["change"])
    return (
        not progress.in_unit
        and set(change.tasks) <= set(progress.done)
        and progress.arbiter is not ArbiterPhase.ACTIVE
    )


def history(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the history keeps of a change (no config, no lease)."""
    keep = (
        "groupId",
        "rsId",
        "change",
        "progress",
        "status",
        "events",
        "report",
        "goalVersion",
        "warningLog",
        "majorityLost",
    )
    return {
        **{k: copy.deepcopy(doc.get(k)) for k in keep},
        "_id": doc["changeId"],
        "createdAt": doc.get("createdAt"),
        "doneAt": doc.get("doneAt"),
    }


def _without_own_lease(doc: Mapping[str, Any], lease_owner: str, *, forget: bool = False) -> dict[str, Any]:
    """The lease fields once ``lease_owner``'s lease goes (``forget``: its last holder too, for a new change);
    another procedure's lease (a unique index build's) stays."""
    current = lease_state(doc)
    if current.lease is not None and current.lease.owner != lease_owner:
        return {"lease": doc["lease"], "lastHolder": doc.get("lastHolder")}
    return {"lease": None, "lastHolder": None if forget else current.last_holder}

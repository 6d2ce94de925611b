"""What agents tell the server of a rolling change: the moves they carried out, and their decisions.

:meth:`Recorder.record` applies each move an agent reports with ``procedure.record`` on the server's copy of
the progress, so agents never overwrite each other's progress. :meth:`Recorder.report` folds an agent's
decision, its primary sightings and its measurements into the change's status (``report.observe``), raises
or resolves the ``MAINTENANCE_MEMBER_FAILED`` alert, keeps the events, and on Done ends the change with its
:class:`~opsmgr.maintenance.report.RollingReport`, begins the change queued behind it and hands a unique
index build's step to the build (``maintenance.index_steps``). May import ``opsmgr.errors``, ``opsmgr.store``,
``opsmgr.alerts`` and ``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opsmgr.alerts import AlertService
from opsmgr.errors import Conflict, InvalidInput
from opsmgr.maintenance import changes
from opsmgr.maintenance.changes import MAX_EVENTS, AlertFact, active, alert_key
from opsmgr.maintenance.index_steps import IndexSteps, step_end
from opsmgr.maintenance.leases import LEASES, ROLLING
from opsmgr.maintenance.members import MemberReports
from opsmgr.maintenance.moves import Decision, Done, Move, MoveName
from opsmgr.maintenance.report import ALERT_MEMBER_FAILED, Event, EventKind
from opsmgr.maintenance.wire import decision_from_json, move_from_json
from opsmgr.store.engine import Store

# While the primary's agent reports, the others' decisions (from a member cut off, say) are not folded in.
PRIMARY_VOICE_S = 5.0
LEASE_DENIAL_S = 10.0  # an agent still asking for the lease this soon after a denial is still denied
MAX_REFUSAL = 2000


class Recorder:
    """Moves and decisions of a project's rolling changes, kept in their change documents."""

    def __init__(
        self,
        store: Store,
        alerts: AlertService,
        members: MemberReports,
        steps: IndexSteps,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.members = members
        self.steps = steps
        self.clock = clock

    def record(
        self,
        group_id: str,
        rs_id: str,
        change_id: str,
        move: Mapping[str, Any],
        *,
        seq: int | None = None,
        at: float | None = None,
        connections: int | None = None,
        refused: str | None = None,
    ) -> dict[str, Any]:
        """An agent carried ``move`` out (started at ``at``; ``connections``: the primary's client
        connections just before a step-down; ``refused``: a unique index task's member refused the index,
        in its words). Returns the progress as it now stands."""
        parsed = move_from_json(move)
        with self.store.tx() as t:
            doc = t.get(LEASES, changes.doc_id(group_id, rs_id))
            if doc is None or not active(doc):
                raise Conflict(f"no rolling change of {rs_id} is under way")
            extra = {"at": at, "connections": connections}
            changes.apply_move(doc, change_id, parsed, seq, self.clock(), extra)
            if refused and parsed.name is MoveName.PERFORM_TASK and changes.owner(doc) != ROLLING:
                doc["refused"] = refused[:MAX_REFUSAL]
            t.put(LEASES, doc)
        return dict(doc["progress"])

    def report(
        self,
        group_id: str,
        rs_id: str,
        change_id: str,
        *,
        decision: Mapping[str, Any] | None = None,
        events: Sequence[Mapping[str, Any]] = (),
        extras: Mapping[str, Mapping[str, Any]] | None = None,
        from_primary: bool = False,
    ) -> dict[str, Any]:
        """Fold an agent's decision, primary sightings and measurements into the change; returns its
        status. ``from_primary``: the reporting agent runs the primary, whose view of the set prevails."""
        parsed = decision_from_json(decision) if decision is not None else None
        seen = [_event(e) for e in events]
        now = self.clock()
        alerts: list[AlertFact] = []
        with self.store.tx() as t:
            doc = t.get(LEASES, changes.doc_id(group_id, rs_id))
            if doc is None or doc.get("changeId") != change_id:
                raise Conflict(f"rolling change {change_id} of {rs_id} is not the one under way")
            if not active(doc):
                return dict(doc.get("status") or {})
            timeline = _primary_sightings(doc, seen)
            for name, measured in (extras or {}).items():
                doc.setdefault("extras", {})[str(name)] = {**dict(measured), "at": now}
            parsed = _heard(doc, parsed, now, from_primary)
            doc["events"] = timeline
            if parsed is not None:
                alerts += changes.fold(doc, parsed, now)
            doc["events"] = doc["events"][-MAX_EVENTS:]
            ended = None
            if isinstance(parsed, Done):
                ended = step_end(group_id, doc)
                changes.end(t, doc, now, parsed.note)
            if alerts:
                doc["alertOpen"] = alerts[-1][0]
            status = dict(doc["status"])
            if ended is not None:
                changes.promote(doc, now)
            doc["updatedAt"] = now
            t.put(LEASES, doc)
        self._alert(group_id, rs_id, doc, alerts)
        if ended is not None:
            self.steps.done(ended)
        return status

    def _alert(self, group_id: str, rs_id: str, doc: Mapping[str, Any], facts: list[AlertFact]) -> None:
        for opened, reason, member in facts:
            if opened:
                self.alerts.raise_alert(
                    group_id,
                    ALERT_MEMBER_FAILED,
                    alert_key(rs_id),
                    reason,
                    replicaSetName=rs_id,
                    processName=member,
                    hostnameAndPort=self.members.host_of(group_id, doc, member),
                )
            else:
                self.alerts.resolve(group_id, alert_key(rs_id))

    def settle_alerts(self) -> int:
        """Close the member-failed alerts of changes that ended without a decision closing them (superseded
        by a later config, or their replica set dropped); periodic work. Returns how many were closed."""
        closed = 0
        for doc in self.store.find(LEASES, alertOpen=True):
            if active(doc):
                continue
            self.alerts.resolve(doc["groupId"], alert_key(doc["rsId"]))
            with self.store.tx() as t:
                current = t.get(LEASES, doc["_id"])
                if current is not None and not active(current):
                    t.put(LEASES, {**current, "alertOpen": False})
            closed += 1
        return closed


def _primary_sightings(doc: dict[str, Any], seen: list[Event]) -> list[dict[str, Any]]:
    """The change's timeline with the primaries (or their absence) an agent saw that it did not have; a
    sighting no later than the last one kept, or of the same member, adds nothing."""
    timeline = list(doc.get("events", []))
    last = doc.get("lastPrimary")
    for e in sorted(seen, key=lambda e: e.t):
        if e.kind not in (EventKind.PRIMARY, EventKind.NO_PRIMARY):
            continue
        if last is not None and (e.t <= last["t"] or e.member == last.get("member")):
            continue
        timeline.append(e.to_json())
        last = {"t": e.t, "member": e.member}
    doc["lastPrimary"] = last
    return timeline


def _heard(doc: dict[str, Any], parsed: Decision | None, now: float, from_primary: bool) -> Decision | None:
    """The decision the change takes from this report: Done only when the progress agrees, nothing but Done
    from another agent while the primary's speaks, and a lease asked for again soon after its denial is
    still the denial."""
    if isinstance(parsed, Done) and not changes.finished(doc, now):
        parsed = None
    if from_primary:
        doc["primaryReportAt"] = now
    elif not isinstance(parsed, Done) and now - float(doc.get("primaryReportAt") or 0) < PRIMARY_VOICE_S:
        parsed = None
    denial = doc.get("leaseDenied")
    if (
        isinstance(parsed, Move)
        and parsed.name is MoveName.ACQUIRE_LEASE
        and denial is not None
        and denial["member"] == parsed.member
        and now - float(denial["at"]) < LEASE_DENIAL_S
    ):
        return changes.denied(parsed.member, str(denial["reason"]))
    return parsed


def _event(raw: Mapping[str, Any]) -> Event:
    try:
        return Event.from_json(raw)
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"event is malformed: {exc}", field="events") from None

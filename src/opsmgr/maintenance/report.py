"""What a rolling change looks like from outside: its state, its alerts, and its figures.

- :func:`observe` folds each decision of ``maintenance.procedure`` into a :class:`ChangeStatus`, the state
  machine RUNNING / BLOCKED / FAILED / RESUMED / DONE. A member that does not come back makes the change
  FAILED (the procedure keeps the others untouched) and opens an :class:`Alert` with the reason; the first
  decision that is no longer that failure closes it and the change is RESUMED, then RUNNING again.
- :func:`summarize` turns a timeline of :class:`Event` (from :func:`events_for_move`,
  :func:`events_between` and :func:`observe`) into a :class:`RollingReport`: total time, each member's time
  out, elections (planned ones are the step-downs), and per step-down the client connections it dropped and
  how long the set had no writable primary.
- :func:`status_view` is the ``maintenance`` entry of a replica set in ``automationStatus``, and
  :func:`change_view` a change as ``GET /groups/{id}/maintenance`` lists it, with what its record kept
  (warnings, majority lost: ``maintenance.watch``).

Pure. May import ``opsmgr.maintenance`` modules and ``opsmgr.timestamps``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from opsmgr.maintenance.moves import BlockCause, Blocked, Decision, Done, Move, MoveName, Progress
from opsmgr.maintenance.rolling import RollingChange
from opsmgr.maintenance.snapshot import RsSnapshot
from opsmgr.timestamps import iso_utc_seconds

ALERT_MEMBER_FAILED = "MAINTENANCE_MEMBER_FAILED"
# Steps of one member's cycle, to estimate how much of a change is left (see ``change_view``).
CYCLE_STEPS = {"member": 6, "primary": 9, "leaving": 4}


class ChangeState(StrEnum):
    QUEUED = "QUEUED"  # registered while another change of the set is under way: it begins when that ends
    RUNNING = "RUNNING"
    BLOCKED = "BLOCKED"
    FAILED = "FAILED"
    RESUMED = "RESUMED"
    DONE = "DONE"


class EventKind(StrEnum):
    MEMBER_OUT = "memberOut"
    MEMBER_BACK = "memberBack"
    STEP_DOWN = "stepDown"
    PRIMARY = "primary"  # a primary is seen (``member``), after none or another one
    NO_PRIMARY = "noPrimary"
    FAILED = "failed"
    RECOVERED = "recovered"
    DONE = "done"


@dataclass(frozen=True)
class Event:
    t: float
    kind: EventKind
    member: str | None = None
    connections: int | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "kind": self.kind.value,
            "member": self.member,
            "connections": self.connections,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Event:
        return cls(
            float(raw["t"]),
            EventKind(raw["kind"]),
            raw.get("member"),
            raw.get("connections"),
            str(raw.get("detail", "")),
        )


@dataclass(frozen=True)
class Alert:
    """An alert fact for the server: ``open`` raises it, a later fact with ``open`` False closes it."""

    kind: str
    rs_id: str
    member: str | None
    reason: str
    open: bool


@dataclass(frozen=True)
class ChangeStatus:
    rs_id: str
    state: ChangeState = ChangeState.RUNNING
    reason: str | None = None
    member: str | None = None
    failed_member: str | None = None
    since: float | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "member": self.member,
            "failedMember": self.failed_member,
            "since": self.since,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, rs_id: str, raw: Mapping[str, Any]) -> ChangeStatus:
        return cls(
            rs_id,
            ChangeState(raw.get("state", ChangeState.RUNNING.value)),
            raw.get("reason"),
            raw.get("member"),
            raw.get("failedMember"),
            raw.get("since"),
            tuple(raw.get("warnings", ())),
        )


@dataclass(frozen=True)
class Observation:
    status: ChangeStatus
    alerts: tuple[Alert, ...] = ()
    events: tuple[Event, ...] = ()


def observe(status: ChangeStatus, decision: Decision, now: float) -> Observation:
    """The status after the procedure decided ``decision`` at ``now``, with the alert facts and events that
    the transition produces."""

    def moved(state: ChangeState, reason: str | None, member: str | None, **kw: Any) -> ChangeStatus:
        since = status.since if state is status.state and status.since is not None else now
        return replace(status, state=state, reason=reason, member=member, since=since, **kw)

    failed = status.failed_member
    if isinstance(decision, Blocked) and decision.cause is BlockCause.FAILURE:
        if status.state is ChangeState.FAILED and failed == decision.member:
            return Observation(moved(ChangeState.FAILED, decision.reason, decision.member))
        alert = Alert(ALERT_MEMBER_FAILED, status.rs_id, decision.member, decision.reason, open=True)
        event = Event(now, EventKind.FAILED, decision.member, detail=decision.reason)
        new = moved(ChangeState.FAILED, decision.reason, decision.member, failed_member=decision.member)
        return Observation(new, (alert,), (event,))
    closing: tuple[Alert, ...] = ()
    events: tuple[Event, ...] = ()
    if status.state is ChangeState.FAILED:
        reason = f"{failed} is healthy again: the rolling change resumes"
        closing = (Alert(ALERT_MEMBER_FAILED, status.rs_id, failed, reason, open=False),)
        events = (Event(now, EventKind.RECOVERED, failed),)
    if isinstance(decision, Done):
        new = moved(ChangeState.DONE, decision.note, None, failed_member=None, warnings=())
        return Observation(new, closing, (*events, Event(now, EventKind.DONE)))
    if closing:
        new = moved(ChangeState.RESUMED, closing[0].reason, failed, failed_member=None)
        return Observation(new, closing, events)
    if isinstance(decision, Blocked):
        new = moved(ChangeState.BLOCKED, decision.reason, decision.member, warnings=decision.warnings)
        return Observation(new)
    return Observation(moved(ChangeState.RUNNING, decision.note, decision.member, warnings=decision.warnings))


def events_for_move(
    move: Move, progress: Progress, now: float, *, connections: int | None = None
) -> list[Event]:
    """The events of carrying out ``move`` (``progress`` as it was before); ``connections``: the client
    connections of the primary just before a step-down."""
    if move.waiting:
        return []
    if move.name is MoveName.STEP_DOWN:
        return [Event(now, EventKind.STEP_DOWN, move.member, connections=connections)]
    going_out = move.name in (MoveName.RESTART_STANDALONE, MoveName.REMOVE_FROM_SET, MoveName.SHUTDOWN)
    if going_out and progress.out_since is None:
        return [Event(now, EventKind.MEMBER_OUT, move.member)]
    if move.name is MoveName.RELEASE_LEASE:
        return [Event(now, EventKind.MEMBER_BACK, move.member)]
    return []


def events_between(before: RsSnapshot | None, after: RsSnapshot) -> list[Event]:
    """Primary changes between two consecutive snapshots of a set."""
    was = before.primary() if before is not None else None
    now = after.primary()
    if now is None:
        return [Event(after.now, EventKind.NO_PRIMARY)] if was is not None or before is None else []
    if was is None or was.name != now.name:
        return [Event(after.now, EventKind.PRIMARY, now.name)]
    return []


@dataclass(frozen=True)
class StepDownReport:
    member: str
    at: float
    connections_dropped: int | None
    no_writable_primary_s: float | None  # None while no new primary has been seen
    new_primary: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "at": iso_utc_seconds(self.at),
            "connectionsDropped": self.connections_dropped,
            "noWritablePrimarySecs": self.no_writable_primary_s,
            "newPrimary": self.new_primary,
        }


@dataclass(frozen=True)
class RollingReport:
    total_s: float
    time_out: dict[str, float] = field(default_factory=dict)
    elections: int = 0
    planned_elections: int = 0
    step_downs: tuple[StepDownReport, ...] = ()
    no_primary_s: float = 0.0
    failures: int = 0
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "totalSecs": self.total_s,
            "memberSecsOut": self.time_out,
            "elections": self.elections,
            "plannedElections": self.planned_elections,
            "stepDowns": [s.to_json() for s in self.step_downs],
            "noPrimarySecs": self.no_primary_s,
            "failures": self.failures,
            "done": self.done,
        }


def _landed(step_down: StepDownReport, primary_seen: Event) -> StepDownReport:
    """The step-down's figures once a primary is seen after it (the first one only counts)."""
    if step_down.new_primary is not None:
        return step_down
    wait = primary_seen.t - step_down.at
    return replace(step_down, no_writable_primary_s=wait, new_primary=primary_seen.member)


def summarize(events: Iterable[Event]) -> RollingReport:
    """The figures of one rolling change from its timeline. An election is a primary seen after a time
    without one, or a different primary; the first primary seen is where the timeline starts, not one."""
    timeline = sorted(events, key=lambda e: e.t)
    if not timeline:
        return RollingReport(0.0)
    start, end = timeline[0].t, timeline[-1].t
    out_since: dict[str, float] = {}
    time_out: dict[str, float] = {}
    step_downs: list[StepDownReport] = []
    elections = failures = 0
    primary: str | None = None
    seen_primary = False
    no_primary_since: float | None = None
    no_primary_s = 0.0
    done = False
    for e in timeline:
        if e.kind is EventKind.MEMBER_OUT and e.member is not None:
            out_since.setdefault(e.member, e.t)
        elif e.kind is EventKind.MEMBER_BACK and e.member in out_since:
            time_out[e.member] = time_out.get(e.member, 0.0) + e.t - out_since.pop(e.member)
        elif e.kind in (EventKind.STEP_DOWN, EventKind.NO_PRIMARY):
            if e.kind is EventKind.STEP_DOWN:
                step_downs.append(StepDownReport(str(e.member), e.t, e.connections, None, None))
            if no_primary_since is None:
                no_primary_since = e.t
            primary = None
        elif e.kind is EventKind.PRIMARY:
            if seen_primary and (primary is None or primary != e.member):
                elections += 1
            if no_primary_since is not None:
                no_primary_s += e.t - no_primary_since
                no_primary_since = None
            step_downs = [_landed(s, e) for s in step_downs]
            primary, seen_primary = e.member, True
        elif e.kind is EventKind.FAILED:
            failures += 1
        elif e.kind is EventKind.DONE:
            done = True
    if no_primary_since is not None:
        no_primary_s += end - no_primary_since
    return RollingReport(
        total_s=end - start,
        time_out=time_out,
        elections=elections,
        planned_elections=len(step_downs),
        step_downs=tuple(step_downs),
        no_primary_s=no_primary_s,
        failures=failures,
        done=done,
    )


def status_view(
    change: RollingChange,
    progress: Progress,
    status: ChangeStatus,
    *,
    lease: Mapping[str, Any] | None = None,
    events: Iterable[Event] = (),
) -> dict[str, Any]:
    """The ``maintenance`` entry of one replica set in ``GET /groups/{id}/automationStatus``."""
    current = progress.current()
    members = []
    for name, tasks in change.tasks.items():
        phase = "done" if name in progress.done else "pending"
        step = None
        if current is not None and any(s.member == name for s in progress.steps):
            phase, step = "inProgress", current.move.value
        members.append({"name": name, "tasks": sorted(t.value for t in tasks), "phase": phase, "step": step})
    return {
        "replicaSet": change.rs_id,
        "previousName": change.old_rs_id if change.old_rs_id != change.rs_id else None,
        "offline": change.offline,
        "tasks": sorted(t.value for t in change.all_tasks),
        "reasons": list(change.reasons),
        **status.to_json(),
        "currentStep": current.move.value if current is not None else None,
        "members": members,
        "lease": dict(lease) if lease is not None else None,
        "report": summarize(events).to_json(),
    }


def change_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One rolling change as the public API lists it: state, reason, steps done of the (estimated) total,
    and, once done, the figures of its report."""
    change = RollingChange.from_json(doc["change"])
    progress = Progress.from_json(doc["progress"])
    status = ChangeStatus.from_json(doc["rsId"], doc.get("status") or {})
    done_state = status.state is ChangeState.DONE
    pending = [m for m in change.tasks if m not in progress.done and m != progress.member]
    # seq counts the moves recorded; members not begun yet are estimated by the kind of cycle they need.
    remaining = len(progress.steps) - progress.position
    remaining += sum(CYCLE_STEPS["leaving" if change.leaving(m) else "member"] for m in pending)
    if progress.step_downs == 0 and pending and not change.offline:
        remaining += CYCLE_STEPS["primary"] - CYCLE_STEPS["member"]
    steps_done = progress.seq
    report = doc.get("report") if done_state else None
    current = progress.current()
    return {
        "id": doc["_id"],
        "replicaSet": doc["rsId"],
        "previousName": change.old_rs_id if change.old_rs_id != change.rs_id else None,
        "goalVersion": doc.get("goalVersion"),
        "state": status.state.value,
        "reason": status.reason,
        **_kept(doc, status),
        "tasks": {m: sorted(t.value for t in tasks) for m, tasks in change.tasks.items()},
        "reasons": list(change.reasons),
        "progress": {
            "stepsDone": steps_done,
            "stepsTotal": steps_done + (0 if done_state else remaining),
            "membersDone": list(progress.done),
            "membersTotal": len(change.tasks),
            "currentMember": progress.member,
            "currentStep": current.move.value if current is not None else None,
        },
        # Stored as epoch seconds; written as ISO-8601 strings, as Ops Manager writes its resources' instants.
        "created": iso_utc_seconds(doc.get("createdAt")),
        "finished": iso_utc_seconds(doc.get("doneAt")),
        "report": _report_figures(report) if report else None,
    }


def _kept(doc: Mapping[str, Any], status: ChangeStatus) -> dict[str, Any]:
    """What the change's record kept (``maintenance.watch``): ``warnings``, every warning its steps gave
    (the current decision's too), in the order first seen, with ``warningsSeen`` saying when and for whom,
    and ``majorityLost``, the spells its replica set had lost the majority of its votes."""
    log = list(doc.get("warningLog") or [])
    texts = [str(w["warning"]) for w in log]
    texts += [w for w in status.warnings if w not in texts]
    return {
        "warnings": texts,
        "warningsSeen": [
            {
                "warning": w["warning"],
                "firstSeen": iso_utc_seconds(w.get("firstSeen")),
                "member": w.get("member"),
            }
            for w in log
        ],
        "majorityLost": [
            {
                "since": iso_utc_seconds(m.get("since")),
                "until": iso_utc_seconds(m.get("until")),
                "durationSecs": m.get("durationSecs"),
                "healthyVotes": m.get("healthyVotes"),
                "votes": m.get("votes"),
                "down": list(m.get("down") or []),
            }
            for m in doc.get("majorityLost") or []
        ],
    }


def queued_view(rs_id: str, queued: Mapping[str, Any], waits_for: str) -> dict[str, Any]:
    """A config's change that waits for the change under way (``waits_for``: what that one is) to end."""
    status = ChangeStatus(
        rs_id,
        ChangeState.QUEUED,
        f"{waits_for}: this change begins when it ends (one change per replica set at a time)",
    )
    return change_view(
        {
            "_id": queued["changeId"],
            "rsId": rs_id,
            "change": queued["change"],
            "progress": Progress().to_json(),
            "status": status.to_json(),
            "goalVersion": queued.get("goalVersion"),
            "createdAt": queued.get("createdAt"),
        }
    )


def _report_figures(report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "totalSecs": report.get("totalSecs"),
        "memberSecsOut": report.get("memberSecsOut", {}),
        "elections": report.get("elections"),
        "plannedElections": report.get("plannedElections"),
        "noPrimarySecs": report.get("noPrimarySecs"),
        "failures": report.get("failures"),
        "stepDowns": [
            {
                "member": s.get("member"),
                "connectionsDropped": s.get("connectionsDropped"),
                "noWritablePrimarySecs": s.get("noWritablePrimarySecs"),
                "newPrimary": s.get("newPrimary"),
            }
            for s in report.get("stepDowns", [])
        ],
    }

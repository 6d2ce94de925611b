"""The rolling change's state machine and alerts, its figures, and its automationStatus entry."""

from __future__ import annotations

import pytest

from opsmgr.maintenance.moves import (
    BlockCause,
    Blocked,
    Decision,
    Done,
    Move,
    MoveName,
    PlannedStep,
    Progress,
    Unit,
)
from opsmgr.maintenance.report import (
    ALERT_MEMBER_FAILED,
    ChangeState,
    ChangeStatus,
    Event,
    EventKind,
    events_between,
    observe,
    status_view,
    summarize,
)
from opsmgr.maintenance.rolling import RollingChange, Task
from tests.maintenance.fake_rs import FakeMember, FakeSet, Fault, play
from tests.maintenance.helpers import P, S, psa

RUN = Move(MoveName.RESTART_STANDALONE, "rs0_0", "rs0_0", "restart rs0_0 standalone")
WAIT = Blocked("rs0_1 is DOWN", BlockCause.PREFLIGHT, "rs0_0")
FAIL = Blocked("rs0_0 did not come back", BlockCause.FAILURE, "rs0_0")
DONE = Done("complete")

R, B, F, RE, D = (
    ChangeState.RUNNING,
    ChangeState.BLOCKED,
    ChangeState.FAILED,
    ChangeState.RESUMED,
    ChangeState.DONE,
)


@pytest.mark.parametrize(
    ("decisions", "states", "alerts"),
    [
        ([RUN, WAIT, RUN, DONE], [R, B, R, D], []),
        ([RUN, FAIL, FAIL, RUN, RUN, DONE], [R, F, F, RE, R, D], [True, False]),
        ([FAIL, WAIT, WAIT], [F, RE, B], [True, False]),
        ([FAIL, DONE], [F, D], [True, False]),
    ],
    ids=["blocked and on", "failed, resumed", "failed then blocked", "failed then done"],
)
def test_change_state_machine(
    decisions: list[Decision], states: list[ChangeState], alerts: list[bool]
) -> None:
    status = ChangeStatus("rs0")
    seen_states, seen_alerts = [], []
    for t, decision in enumerate(decisions):
        observation = observe(status, decision, float(t))
        status = observation.status
        seen_states.append(status.state)
        seen_alerts += observation.alerts
    assert seen_states == states
    assert [a.open for a in seen_alerts] == alerts
    assert all(a.kind == ALERT_MEMBER_FAILED and a.member == "rs0_0" for a in seen_alerts)
    if alerts:
        assert "did not come back" in seen_alerts[0].reason and "healthy again" in seen_alerts[1].reason


def test_status_since_moves_only_on_a_state_change() -> None:
    status = observe(ChangeStatus("rs0"), RUN, 5.0).status
    assert status.since == 5.0
    status = observe(status, RUN, 9.0).status
    assert status.since == 5.0 and observe(status, WAIT, 12.0).status.since == 12.0
    assert ChangeStatus.from_json("rs0", status.to_json()) == status


def test_summary_of_a_timeline() -> None:
    events = [
        Event(0, EventKind.PRIMARY, "a"),
        Event(10, EventKind.MEMBER_OUT, "b"),
        Event(40, EventKind.MEMBER_BACK, "b"),
        Event(50, EventKind.STEP_DOWN, "a", connections=25),
        Event(55, EventKind.NO_PRIMARY),
        Event(62, EventKind.PRIMARY, "c"),
        Event(70, EventKind.MEMBER_OUT, "a"),
        Event(100, EventKind.MEMBER_BACK, "a"),
        Event(110, EventKind.DONE),
    ]
    report = summarize(events)
    assert report.total_s == 110 and report.done
    assert report.time_out == {"b": 30, "a": 30}
    assert (report.elections, report.planned_elections, report.no_primary_s) == (1, 1, 12)
    (step_down,) = report.step_downs
    assert (step_down.connections_dropped, step_down.no_writable_primary_s, step_down.new_primary) == (
        25,
        12,
        "c",
    )
    assert [Event.from_json(e.to_json()) for e in events] == events


def test_an_election_after_a_fault_is_not_planned() -> None:
    report = summarize(
        [Event(0, EventKind.PRIMARY, "a"), Event(10, EventKind.NO_PRIMARY), Event(30, EventKind.PRIMARY, "b")]
    )
    assert (report.elections, report.planned_elections, report.no_primary_s) == (1, 0, 20)
    assert summarize([]).total_s == 0


def test_primary_changes_between_snapshots() -> None:
    assert [e.kind for e in events_between(None, psa())] == [EventKind.PRIMARY]
    assert events_between(psa(), psa()) == []
    assert [e.kind for e in events_between(psa(), psa(S, S, S))] == [EventKind.NO_PRIMARY]
    moved = events_between(psa(S, S, S), psa(P, S, S))
    assert [(e.kind, e.member) for e in moved] == [(EventKind.PRIMARY, "rs0_0")]


def _three() -> FakeSet:
    return FakeSet("rs0", [FakeMember(f"rs0_{i}") for i in range(3)], clients=25)


VERSION = RollingChange("rs0", "rs0", tasks={f"rs0_{i}": frozenset({Task.CHANGE_VERSION}) for i in range(3)})


def test_figures_of_a_rolling_change_on_the_fake_set() -> None:
    trace = play(_three(), VERSION)
    report = summarize(trace.events)
    assert report.done and report.elections == report.planned_elections == 1
    (step_down,) = report.step_downs
    assert step_down.member == "rs0_2" and step_down.connections_dropped == 25
    assert step_down.no_writable_primary_s == 20.0  # the fake takes two ticks to elect
    assert set(report.time_out) == {"rs0_0", "rs0_1", "rs0_2"} and all(
        t > 0 for t in report.time_out.values()
    )
    assert report.total_s >= sum(report.time_out.values())
    assert trace.states == [R, D] and trace.alerts == []


def test_a_failure_raises_and_clears_an_alert() -> None:
    trace = play(_three(), VERSION, faults=(Fault(4, 0, 900),))
    assert trace.done
    assert trace.states[:4] == [R, F, RE, R] and trace.states[-1] is D
    assert [(a.open, a.member) for a in trace.alerts] == [(True, "rs0_0"), (False, "rs0_0")]
    assert summarize(trace.events).failures == 1


def test_status_view_for_automation_status() -> None:
    plan = tuple(PlannedStep(m, "rs0_1") for m in (MoveName.ACQUIRE_LEASE, MoveName.RESTART_STANDALONE))
    progress = Progress(unit=Unit.MEMBER, member="rs0_1", steps=plan, position=1, done=("rs0_0",))
    status = observe(ChangeStatus("rs0"), RUN, 1.0).status
    lease = {"holder": "rs0_1", "expiresInSecs": 100.0, "expiredHolder": None, "lastHolder": "rs0_1"}
    view = status_view(VERSION, progress, status, lease=lease)
    assert view["replicaSet"] == "rs0" and view["state"] == "RUNNING" and view["tasks"] == ["changeVersion"]
    assert view["currentStep"] == "RestartStandalone" and view["lease"]["holder"] == "rs0_1"
    phases = {m["name"]: (m["phase"], m["step"]) for m in view["members"]}
    assert phases == {
        "rs0_0": ("done", None),
        "rs0_1": ("inProgress", "RestartStandalone"),
        "rs0_2": ("pending", None),
    }
    assert view["report"]["elections"] == 0

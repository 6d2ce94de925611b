"""The rolling procedure played against the fake replica set, scenario by scenario, and its decisions taken
one at a time where a scenario would hide them."""

from __future__ import annotations

from opsmgr.maintenance.moves import (
    ArbiterPhase,
    BlockCause,
    Blocked,
    Done,
    Move,
    MoveName,
    PlannedStep,
    Progress,
    Unit,
    temporary_arbiter_name,
)
from opsmgr.maintenance.preflight import Check
from opsmgr.maintenance.procedure import member_order, next_move
from opsmgr.maintenance.rolling import ArbiterSpec, MaintenanceOptions, RollingChange, Task
from opsmgr.maintenance.snapshot import Policy, maintenance_port
from tests.maintenance.fake_rs import FakeMember, FakeSet, Fault, play
from tests.maintenance.helpers import D, P, S, psa, snap, view

CYCLE = [
    "AcquireMaintenanceLease",
    "RestartStandalone",
    "PerformTask",
    "RestartReplSet",
    "ReleaseMaintenanceLease",
]
PRIMARY_CYCLE = [CYCLE[0], "StepDown", *CYCLE[1:]]
ARBITER = MaintenanceOptions(temporary_arbiter=ArbiterSpec("h9.example.net", 27099))


def fake(n: int = 3, **priorities: float) -> FakeSet:
    return FakeSet(
        "rs0", [FakeMember(f"rs0_{i}", priority=priorities.get(f"rs0_{i}", 1.0)) for i in range(n)]
    )


def version_change(*names: str, task: Task = Task.CHANGE_VERSION) -> RollingChange:
    return RollingChange("rs0", "rs0", tasks={n: frozenset({task}) for n in names})


ALL3 = ("rs0_0", "rs0_1", "rs0_2")


def test_three_members_secondaries_first_then_one_step_down() -> None:
    rs = fake()
    assert rs.primary == "rs0_2"
    trace = play(rs, version_change(*ALL3))
    assert trace.done and trace.violations == []
    assert trace.names() == CYCLE + CYCLE + PRIMARY_CYCLE
    assert [m.member for m in trace.moves if m.name is MoveName.PERFORM_TASK] == list(ALL3)
    assert trace.progress.step_downs == 1 and rs.elections == 1
    assert trace.progress.done == ALL3
    waits = {d.name for d in trace.decisions if isinstance(d, Move) and d.waiting}
    assert {MoveName.WAIT_SECONDARY_CAUGHT_UP, MoveName.WAIT_ELECTION} <= waits
    step_down = next(m for m in trace.moves if m.name is MoveName.STEP_DOWN)
    assert step_down.params["secondaryCatchUpPeriodSecs"] == Policy().secondary_catch_up_period_secs
    assert step_down.actor == "rs0_2"


def test_each_move_names_the_actor_and_the_tasks() -> None:
    trace = play(fake(), version_change(*ALL3))
    task = next(m for m in trace.moves if m.name is MoveName.PERFORM_TASK)
    assert task.tasks == (Task.CHANGE_VERSION,) and task.actor == task.member == "rs0_0"
    assert "changeVersion" in task.note
    standalone = next(m for m in trace.moves if m.name is MoveName.RESTART_STANDALONE)
    assert standalone.params["maintenancePortOffset"] == Policy().maintenance_port_offset
    assert maintenance_port(27017) == 37017 and maintenance_port(60000) == 50000


def test_members_without_tasks_are_not_touched_and_no_step_down_is_needed() -> None:
    rs = fake()
    trace = play(rs, version_change("rs0_1", task=Task.RESTART))
    assert trace.done and trace.names() == CYCLE
    assert trace.progress.step_downs == 0 and rs.elections == 0


def test_the_step_down_hands_the_primary_to_the_highest_priority_member() -> None:
    rs = fake(rs0_0=1, rs0_1=2, rs0_2=3)
    assert rs.primary == "rs0_2"
    trace = play(rs, version_change(*ALL3))
    assert trace.done and trace.violations == []
    step_down = next(m for m in trace.moves if m.name is MoveName.STEP_DOWN)
    assert step_down.params["preferredPrimary"] == "rs0_1"
    assert rs.primary == "rs0_1"  # no priority takeover in the fake: the handoff target stays primary
    assert [m.member for m in trace.moves if m.name is MoveName.ACQUIRE_LEASE] == list(ALL3)


def _at_step_down_wait() -> Progress:
    cycle = tuple(
        PlannedStep(m, "rs0_2")
        for m in (
            MoveName.ACQUIRE_LEASE,
            MoveName.WAIT_PREFERRED_PRIMARY_CAUGHT_UP,
            MoveName.STEP_DOWN,
            MoveName.WAIT_ELECTION,
            MoveName.RESTART_STANDALONE,
        )
    )
    return Progress(
        unit=Unit.MEMBER, member="rs0_2", steps=cycle, position=1, since=0.0, done=("rs0_0", "rs0_1")
    )


def test_the_step_down_waits_for_the_preferred_primary() -> None:
    change = version_change(*ALL3)
    behind = snap(
        view("rs0_0", priority=1), view("rs0_1", priority=2, behind_s=30), view("rs0_2", P, priority=3)
    )
    waiting = next_move(behind, change, _at_step_down_wait())
    assert isinstance(waiting, Move) and waiting.waiting
    assert waiting.name is MoveName.WAIT_PREFERRED_PRIMARY_CAUGHT_UP and "rs0_1" in waiting.note
    down = snap(view("rs0_0", priority=1), view("rs0_1", D, priority=2), view("rs0_2", P, priority=3))
    blocked = next_move(down, change, _at_step_down_wait())
    assert isinstance(blocked, Blocked) and blocked.check is Check.PREFERRED_PRIMARY
    assert "preferred primary rs0_1" in blocked.reason
    ready = snap(view("rs0_0", priority=1), view("rs0_1", priority=2), view("rs0_2", P, priority=3))
    go = next_move(ready, change, _at_step_down_wait())
    assert isinstance(go, Move) and go.name is MoveName.STEP_DOWN


def test_no_step_down_when_a_fault_already_moved_the_primary() -> None:
    moved = snap(view("rs0_0"), view("rs0_1", P), view("rs0_2"))
    decision = next_move(moved, version_change(*ALL3), _at_step_down_wait())
    assert isinstance(decision, Move) and decision.name is MoveName.RESTART_STANDALONE


def test_a_member_that_does_not_come_back_stops_the_change_until_it_recovers() -> None:
    rs = fake()
    policy = Policy(member_timeout_s=300)
    # Step 3 restarts rs0_0 in replSet mode; it then stays unreachable for 500 s.
    trace = play(rs, version_change(*ALL3), policy=policy, faults=(Fault(4, 0, 500),))
    assert trace.done and trace.violations == []
    failures = [b for b in trace.blocked() if b.cause is BlockCause.FAILURE]
    assert failures and failures[0].member == "rs0_0"
    assert "did not come back" in failures[0].reason and "resumes when rs0_0 is healthy" in failures[0].reason
    # Nothing else happened meanwhile: rs0_0's release directly follows its restart.
    names = [(m.name.value, m.member) for m in trace.moves]
    i = names.index(("RestartReplSet", "rs0_0"))
    assert names[i + 1] == ("ReleaseMaintenanceLease", "rs0_0")


def test_another_member_down_makes_maintenance_wait() -> None:
    decision = next_move(psa(S, D, P), version_change(*ALL3), Progress())
    assert isinstance(decision, Blocked) and decision.check is Check.FAULT_TOLERANCE
    assert decision.member == "rs0_0" and "rs0_1" in decision.reason


def test_no_primary_means_wait() -> None:
    decision = next_move(psa(S, S, S), version_change(*ALL3), Progress())
    assert isinstance(decision, Blocked) and decision.cause is BlockCause.WAITING


def test_oplog_too_short_blocks_before_the_member_goes_down() -> None:
    short = snap(*(view(f"rs0_{i}", P if i == 2 else S, window_s=120) for i in range(3)))
    decision = next_move(short, version_change(*ALL3), Progress())
    assert isinstance(decision, Blocked) and decision.check is Check.OPLOG_WINDOW


def test_a_sole_electable_primary_is_blocked_unless_downtime_is_accepted() -> None:
    s = snap(view("rs0_0", priority=0, hidden=True), view("rs0_1", P), view("rs0_2", priority=0))
    change = version_change("rs0_1")
    blocked = next_move(s, change, Progress())
    assert isinstance(blocked, Blocked) and "no other member" in blocked.reason
    go = next_move(s, change, Progress(), options=MaintenanceOptions(accept_downtime=True))
    assert isinstance(go, Move) and go.name is MoveName.ACQUIRE_LEASE
    assert [p.move for p in go.plan][:2] == [MoveName.ACQUIRE_LEASE, MoveName.RESTART_STANDALONE]


def test_a_leaving_primary_goes_last_and_does_not_come_back() -> None:
    rs = fake(4)
    change = RollingChange(
        "rs0",
        "rs0",
        tasks={
            **{f"rs0_{i}": frozenset({Task.CHANGE_VERSION}) for i in range(3)},
            "rs0_3": frozenset({Task.REMOVE_PROCESS, Task.DECOMMISSION_HOST}),
        },
    )
    assert rs.primary == "rs0_3"
    trace = play(rs, change)
    assert trace.done and trace.violations == []
    leave = [
        "AcquireMaintenanceLease",
        "StepDown",
        "RemoveFromReplicaSet",
        "Shutdown",
        "ReleaseMaintenanceLease",
    ]
    assert trace.names() == CYCLE * 3 + leave
    assert rs.left == ["rs0_3"] and "rs0_3" not in rs.performed
    assert trace.progress.step_downs == 1


def test_a_dead_leaving_member_is_removed_by_the_primary() -> None:
    rs = fake(4, rs0_0=2)
    rs.crash("rs0_3", 1e9)
    change = RollingChange(
        "rs0",
        "rs0",
        tasks={
            "rs0_3": frozenset({Task.DECOMMISSION_HOST, Task.REMOVE_PROCESS}),
            "rs0_1": frozenset({Task.RESTART}),
        },
    )
    trace = play(rs, change)
    assert trace.done and trace.violations == []
    assert trace.names() == [
        "AcquireMaintenanceLease",
        "RemoveFromReplicaSet",
        "ReleaseMaintenanceLease",
        *CYCLE,
    ]
    assert {m.actor for m in trace.moves[:3]} == {rs.primary}


def test_a_temporary_arbiter_takes_each_vote_while_its_member_is_out() -> None:
    rs = fake()
    trace = play(rs, version_change(*ALL3), options=ARBITER)
    assert trace.done and trace.violations == []
    names = trace.names()
    assert names[:2] == ["StartTemporaryArbiter", "AddTemporaryArbiter"]
    assert names[-2:] == ["RemoveTemporaryArbiter", "StopTemporaryArbiter"]
    assert names.count("TransferVoteToArbiter") == names.count("RestoreVote") == 3
    assert temporary_arbiter_name("rs0") not in rs.members and trace.progress.arbiter is ArbiterPhase.REMOVED
    add = trace.moves[1]
    assert add.actor == "rs0_2" and add.params == {
        "name": "rs0_maintenance_arbiter",
        "hostname": "h9.example.net",
        "port": 27099,
    }
    assert all(m.votes == 1 and m.priority == 1 for m in rs.members.values())


def test_with_the_temporary_arbiter_one_more_failure_keeps_the_primary() -> None:
    # Step 5 is rs0_0's PerformTask (after the arbiter set-up, the lease and the vote transfer).
    with_arbiter = fake()
    trace = play(with_arbiter, version_change(*ALL3), options=ARBITER, faults=(Fault(5, 1, 200),))
    assert trace.done and trace.violations == [] and with_arbiter.elections == 1
    without = fake()
    trace = play(without, version_change(*ALL3), faults=(Fault(2, 1, 200),))
    assert trace.done and trace.violations == [] and without.elections > 1


def test_the_arbiter_is_not_used_where_it_does_not_help() -> None:
    trace = play(fake(5), version_change(*(f"rs0_{i}" for i in range(5))), options=ARBITER)
    assert trace.done and "StartTemporaryArbiter" not in trace.names()


def test_a_rename_is_one_offline_plan() -> None:
    change = version_change(*ALL3, task=Task.RENAME_REPLICA_SET)
    assert change.offline
    blocked = next_move(psa(), change, Progress())
    assert isinstance(blocked, Blocked) and "acceptDowntime" in blocked.reason
    rs = fake()
    trace = play(rs, change, options=MaintenanceOptions(accept_downtime=True))
    assert trace.done
    per_member = ["RestartStandalone", "PerformTask", "Shutdown"]
    assert trace.names() == per_member * 3 + ["RestartReplSet"] * 3
    assert [m.member for m in trace.moves[:9:3]] == list(ALL3)  # secondaries first, the primary last
    assert rs.primary is not None and rs.performed == list(ALL3)
    assert not any(m.standalone or m.stopped for m in rs.members.values())


def test_index_builds_travel_with_the_task() -> None:
    entry = {"dbName": "shop", "collectionName": "orders", "rsName": "rs0", "key": [["c", 1]], "options": {}}
    change = RollingChange(
        "rs0", "rs0", tasks={"rs0_0": frozenset({Task.BUILD_INDEX})}, index_builds=(entry,)
    )
    trace = play(fake(), change)
    task = next(m for m in trace.moves if m.name is MoveName.PERFORM_TASK)
    assert task.params == {"indexBuilds": [entry]}


def test_member_order() -> None:
    s = snap(
        view("a", priority=2),
        view("b", P, priority=3),
        view("c", priority=0, hidden=True),
        view("d", priority=1),
        view("e", D),
    )
    tasks = {n: frozenset({Task.RESTART}) for n in "abcd"} | {"e": frozenset({Task.REMOVE_PROCESS})}
    assert member_order(s, RollingChange("rs0", tasks=tasks)) == ["e", "c", "d", "a", "b"]


def test_nothing_to_roll_is_done() -> None:
    assert isinstance(next_move(psa(), RollingChange("rs0"), Progress()), Done)

"""Table tests of the planner: (observed, goal, host) -> moves per process. No processes, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from opsmgr.agent.plan import LocalProcess, Move, Snapshot, plan
from opsmgr.drivers.base import MemberState, RunMode
from tests.agent.agent_helpers import (
    S2,
    D,
    P,
    S,
    addr,
    goal_config,
    host_of,
    member,
    rs_config,
    rs_status,
    running,
    snapshot,
    stopped,
)

HEALTHY3 = {0: P, 1: S, 2: S}


@dataclass
class Case:
    id: str
    goal: dict[str, Any]
    observed: Snapshot
    host: int
    expected: dict[str, list[str]]  # process name -> move names
    blocked: str | None = None  # a fragment of the first process's blocked reason


def moves(*names: str) -> list[str]:
    return [*names, "Goal"]


CASES = [
    Case(
        "fresh initiator",
        goal_config(),
        snapshot((0, LocalProcess(stopped(0)))),
        0,
        {"rs0_0": moves("Start", "RsInit", "WaitPrimary", "WaitAllRsMembersUp")},
    ),
    Case(
        "fresh other member",
        goal_config(),
        snapshot(),
        1,
        {"rs0_1": moves("Start", "WaitRsInit", "WaitPrimary", "WaitHealthy")},
    ),
    Case(
        "initiator running, set not initiated",
        goal_config(),
        snapshot((0, member(0, None))),
        0,
        {"rs0_0": moves("RsInit", "WaitPrimary", "WaitAllRsMembersUp")},
    ),
    Case(
        "other member waits for initiation",
        goal_config(),
        snapshot((1, member(1, None))),
        1,
        {"rs0_1": moves("WaitRsInit", "WaitPrimary", "WaitHealthy")},
        blocked="rs0_0 to initiate rs0",
    ),
    Case(
        "disabled first member: the next one initiates",
        goal_config(disabled=(0,)),
        snapshot((1, member(1, None))),
        1,
        {"rs0_1": moves("RsInit", "WaitPrimary", "WaitAllRsMembersUp")},
    ),
    Case(
        "a set seen initiated is never initiated again",
        goal_config(),
        snapshot((0, member(0, None)), initiated=True),
        0,
        {"rs0_0": moves("WaitRsInit", "WaitHealthy")},
        blocked="primary of rs0 to add",
    ),
    Case(
        "initiated, no primary yet",
        goal_config(),
        snapshot((1, member(1, {0: S, 1: S, 2: S}, rs_config([0, 1, 2])))),
        1,
        {"rs0_1": moves("WaitPrimary")},
        blocked="elect a primary",
    ),
    Case(
        "primary at goal",
        goal_config(),
        snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves()},
    ),
    Case(
        "secondary at goal",
        goal_config(),
        snapshot((1, member(1, HEALTHY3, rs_config([0, 1, 2])))),
        1,
        {"rs0_1": moves()},
    ),
    Case(
        "secondary in initial sync",
        goal_config(),
        snapshot((1, member(1, {0: P, 1: S2, 2: S}, rs_config([0, 1, 2])))),
        1,
        {"rs0_1": moves("WaitHealthy")},
        blocked="STARTUP2",
    ),
    Case(
        "primary waits for a member that is down",
        goal_config(),
        snapshot((0, member(0, {0: P, 1: S, 2: D}, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("WaitAllRsMembersUp")},
        blocked=f"{addr(2)} is DOWN",
    ),
    Case(
        "add a member",
        goal_config([0, 1, 2, 3]),
        snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("RsReconfig", "WaitAllRsMembersUp")},
    ),
    Case(
        "add two voting members: one per reconfig",
        goal_config([0, 1, 2, 3, 4]),
        snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("RsReconfig", "WaitAllRsMembersUp", "RsReconfig", "WaitAllRsMembersUp")},
    ),
    Case(
        "add a member while one is down: wait first",
        goal_config([0, 1, 2, 3]),
        snapshot((0, member(0, {0: P, 1: S, 2: D}, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("WaitAllRsMembersUp", "RsReconfig", "WaitAllRsMembersUp")},
        blocked="is DOWN",
    ),
    Case(
        "a secondary waits for the primary to reconfigure",
        goal_config([0, 1, 2, 3]),
        snapshot((1, member(1, HEALTHY3, rs_config([0, 1, 2])))),
        1,
        {"rs0_1": moves("WaitPrimary")},
        blocked=f"add {addr(3)}",
    ),
    Case(
        "new member not yet added",
        goal_config([0, 1, 2, 3]),
        snapshot((3, member(3, None))),
        3,
        {"rs0_3": moves("WaitRsInit", "WaitPrimary", "WaitHealthy")},
    ),
    Case(
        "remove a member",
        goal_config([0, 1]),
        snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("RsReconfig", "WaitAllRsMembersUp")},
    ),
    Case(
        "a removed process waits to be removed, then stops",
        goal_config([0, 1]),
        snapshot((2, member(2, HEALTHY3, rs_config([0, 1, 2])))),
        2,
        {"rs0_2": moves("WaitPrimary", "Stop")},
        blocked="remove rs0_2",
    ),
    Case(
        "a removed process out of the set stops",
        goal_config([0, 1]),
        snapshot((2, member(2, {0: P, 1: S, 2: MemberState.REMOVED}, rs_config([0, 1])))),
        2,
        {"rs0_2": moves("Stop")},
    ),
    Case(
        "a stopped process no longer in the config needs nothing",
        goal_config([0, 1]),
        snapshot((2, LocalProcess(stopped(2)))),
        2,
        {"rs0_2": moves()},
    ),
    Case(
        "a whole set dropped from the config stops",
        goal_config([]),
        snapshot((1, member(1, HEALTHY3, rs_config([0, 1, 2])))),
        1,
        {"rs0_1": moves("Stop")},
    ),
    Case(
        "change priorities in one reconfig",
        goal_config(priorities={0: 2, 1: 3, 2: 0.5}),
        snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("RsReconfig", "WaitAllRsMembersUp", "WaitPrimary")},
    ),
    Case(
        "the primary waits for a higher-priority member to take over",
        goal_config(priorities={1: 3}),
        snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2], priorities={1: 3})))),
        0,
        {"rs0_0": moves("WaitPrimary")},
        blocked=f"waiting for {addr(1)} (priority 3) to take over as primary of rs0",
    ),
    Case(
        "a higher-priority member that is down cannot take over",
        goal_config(priorities={1: 3}),
        snapshot((0, member(0, {0: P, 1: D, 2: S}, rs_config([0, 1, 2], priorities={1: 3})))),
        0,
        {"rs0_0": moves("WaitAllRsMembersUp")},
    ),
    Case(
        "make the primary hidden: step down, the next primary does it",
        goal_config(hidden=(0,)),
        snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("StepDown")},
    ),
    Case(
        "remove votes of two members: two reconfigs",
        goal_config([0, 1, 2, 3, 4], votes={3: 0, 4: 0}),
        snapshot((0, member(0, {**HEALTHY3, 3: S, 4: S}, rs_config([0, 1, 2, 3, 4])))),
        0,
        {"rs0_0": moves("RsReconfig", "WaitAllRsMembersUp", "RsReconfig", "WaitAllRsMembersUp")},
    ),
    Case(
        "disable a secondary",
        goal_config(disabled=(1,)),
        snapshot((1, member(1, HEALTHY3, rs_config([0, 1, 2])))),
        1,
        {"rs0_1": moves("Stop")},
    ),
    Case(
        "disable the primary: step down first",
        goal_config(disabled=(0,)),
        snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("StepDown", "Stop")},
    ),
    Case(
        "a disabled member that is down is not waited for",
        goal_config(disabled=(2,)),
        snapshot((0, member(0, {0: P, 1: S, 2: D}, rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves()},
    ),
    Case(
        "re-enable a member",
        goal_config(),
        snapshot((1, LocalProcess(stopped(1))), initiated=True),
        1,
        {"rs0_1": moves("Start", "WaitHealthy")},
    ),
    Case(
        "a standalone member restarts in replSet mode",
        goal_config(),
        snapshot((1, LocalProcess(running(1, mode=RunMode.STANDALONE)))),
        1,
        {"rs0_1": moves("Stop", "Start", "WaitRsInit", "WaitPrimary", "WaitHealthy")},
    ),
    Case(
        "a version change waits for rolling maintenance",
        goal_config(proc_version="8.0.1"),
        snapshot((1, member(1, HEALTHY3, rs_config([0, 1, 2])))),
        1,
        {"rs0_1": moves("ChangeVersion")},
        blocked="rolling maintenance",
    ),
    Case(
        "a member of another set is not initiated into this one",
        goal_config(),
        snapshot((0, LocalProcess(running(0), rs_status(0, HEALTHY3, set_name="old"), rs_config([0, 1, 2])))),
        0,
        {"rs0_0": moves("RollingChangeArgs")},
        blocked="from replica set old to rs0",
    ),
    Case(
        "a standalone process",
        goal_config([], extra_processes=(5,)),
        snapshot(),
        5,
        {"rs0_5": moves("Start")},
    ),
    Case(
        "host names compare case-insensitively",
        goal_config([], extra_processes=(5,)),
        snapshot((5, LocalProcess(running(5, mode=RunMode.STANDALONE)))),
        5,
        {"rs0_5": moves()},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_table(case: Case) -> None:
    hostname = host_of(case.host).upper() if "case-insensitively" in case.id else host_of(case.host)
    plans = plan(case.observed, case.goal, hostname)
    assert {p.name: p.moves() for p in plans} == case.expected
    first = plans[0]
    if case.blocked is not None:
        assert first.blocked_reason is not None and case.blocked in first.blocked_reason
    if first.current.move in (Move.START, Move.STOP, Move.RS_INIT, Move.RS_RECONFIG, Move.STEP_DOWN):
        assert first.blocked_reason is None


def test_rs_init_names_every_enabled_member() -> None:
    p = plan(snapshot((0, member(0, None))), goal_config([0, 1, 2, 3], disabled=(3,)), host_of(0))[0]
    config = p.current.rs_config
    assert p.current.move is Move.RS_INIT and config is not None
    assert config["_id"] == "rs0" and config["version"] == 1
    assert [m["host"] for m in config["members"]] == [addr(0), addr(1), addr(2)]


def test_start_carries_the_process_spec() -> None:
    spec = plan(snapshot(), goal_config(), host_of(1))[0].current.spec
    assert spec is not None
    assert (spec.name, spec.hostname, spec.port, spec.repl_set_name, spec.dbpath, spec.version) == (
        "rs0_1",
        host_of(1),
        27017,
        "rs0",
        "/data/rs0_1",
        "7.0.5",
    )


def test_first_reconfig_adds_one_voting_member_and_bumps_the_version() -> None:
    observed = snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2], version=4))))
    step = plan(observed, goal_config([0, 1, 2, 3, 4]), host_of(0))[0].current
    assert step.move is Move.RS_RECONFIG and step.rs_config is not None
    assert step.rs_config["version"] == 5
    assert [m["host"] for m in step.rs_config["members"]] == [addr(0), addr(1), addr(2), addr(3)]
    assert step.rs_config["settings"] == {"electionTimeoutMillis": 10000}  # kept from the current config


def test_priority_changes_are_batched() -> None:
    observed = snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2]))))
    step = plan(observed, goal_config(priorities={0: 2, 1: 3, 2: 0.5}), host_of(0))[0].current
    assert step.rs_config is not None
    assert [m["priority"] for m in step.rs_config["members"]] == [2.0, 3.0, 0.5]


def test_plan_is_stable_for_the_same_observation() -> None:
    observed = snapshot((0, member(0, HEALTHY3, rs_config([0, 1, 2]))))
    goal = goal_config([0, 1, 2, 3])
    assert plan(observed, goal, host_of(0)) == plan(observed, goal, host_of(0))

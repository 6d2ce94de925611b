"""The rolling procedure's bookkeeping (``maintenance.moves``): progress follows the plan a unit's first move
carries, a retry or a wait changes nothing, a step-down a fault forced is counted, and a finished unit marks
its member done with the time it was out."""

from __future__ import annotations

from opsmgr.maintenance.moves import Move, MoveName, PlannedStep, Progress, Unit, record
from opsmgr.maintenance.procedure import next_move
from opsmgr.maintenance.rolling import RollingChange, Task
from tests.maintenance.helpers import psa

ALL3 = ("rs0_0", "rs0_1", "rs0_2")


def test_record_keeps_to_the_plan() -> None:
    change = RollingChange("rs0", "rs0", tasks={n: frozenset({Task.CHANGE_VERSION}) for n in ALL3})
    first = next_move(psa(), change, Progress())
    assert isinstance(first, Move) and first.unit is Unit.MEMBER and first.plan
    progress = record(Progress(), first, 10.0)
    assert progress.member == "rs0_0" and progress.position == 1 and progress.seq == 1
    assert record(progress, first, 11.0) == progress  # a retry of a recorded move changes nothing
    wait = Move(MoveName.WAIT_ELECTION, "rs0_0", None, "", waiting=True)
    assert record(progress, wait, 12.0) == progress
    assert Progress.from_json(progress.to_json()) == progress


def test_a_finished_unit_marks_its_member_done_with_the_time_it_was_out() -> None:
    names = (
        MoveName.ACQUIRE_LEASE,
        MoveName.RESTART_STANDALONE,
        MoveName.RESTART_REPLSET,
        MoveName.RELEASE_LEASE,
    )
    plan = tuple(PlannedStep(name, "rs0_0") for name in names)
    first = Move(plan[0].move, "rs0_0", "rs0_0", "", unit=Unit.MEMBER, plan=plan)
    progress = record(Progress(), first, 1.0)
    stray = Move(MoveName.STEP_DOWN, "rs0_0", "rs0_0", "")  # not in the plan: a fault made it primary
    progress = record(progress, stray, 1.5)
    assert progress.step_downs == 1 and progress.position == 1
    for t, step in zip((2.0, 5.0, 6.0), plan[1:], strict=True):
        progress = record(progress, Move(step.move, "rs0_0", "rs0_0", ""), t)
    assert not progress.in_unit and progress.done == ("rs0_0",)
    assert progress.out_times == (("rs0_0", 4.0),), "out from its standalone restart to the end of its unit"

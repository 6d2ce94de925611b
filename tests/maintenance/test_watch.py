"""The decisions that keep a rolling change visible (``maintenance.watch``): warnings kept once each, the
majority of a set under a change (with the temporary arbiter's vote), its lost spells, the status shown
meanwhile, the temporary arbiter's host; and the 3-member warning once a temporary arbiter is configured or
in place (``maintenance.preflight.remedy``)."""

from __future__ import annotations

import pytest

from opsmgr.maintenance.leases import UNREPORTED, MemberHealth
from opsmgr.maintenance.moves import ArbiterPhase, MoveName, PlannedStep, Progress, Unit
from opsmgr.maintenance.preflight import ARBITER_REMEDY, fault_tolerance
from opsmgr.maintenance.report import ChangeState, ChangeStatus
from opsmgr.maintenance.rolling import ArbiterSpec, MaintenanceOptions, temporary_arbiter_name
from opsmgr.maintenance.watch import (
    MAJORITY_LOST,
    MAX_WARNINGS,
    Majority,
    arbiter_host,
    arbiter_present,
    close_spell,
    keep_warnings,
    majority_of,
    track_majority,
    voting_members,
    with_majority,
)
from tests.maintenance.helpers import A, P, S, psa, snap, view

ARBITER = temporary_arbiter_name("rs0")
WITH_ARBITER = MaintenanceOptions(temporary_arbiter=ArbiterSpec("h9.example.net", 27099))


def test_warnings_are_kept_once_each_with_when_and_for_whom_first_seen() -> None:
    kept = keep_warnings([], ("w1", "w2", "w1"), "rs0_0", 10.0)
    kept = keep_warnings(kept, ("w2", "w3"), "rs0_1", 20.0)
    assert [(k["warning"], k["firstSeen"], k["member"]) for k in kept] == [
        ("w1", 10.0, "rs0_0"),
        ("w2", 10.0, "rs0_0"),
        ("w3", 20.0, "rs0_1"),
    ]
    many = keep_warnings([], tuple(f"w{i}" for i in range(MAX_WARNINGS + 5)), None, 0.0)
    assert len(many) == MAX_WARNINGS


def _cycle_with_transfer(member: str, position: int) -> Progress:
    moves = (
        MoveName.ACQUIRE_LEASE,
        MoveName.TRANSFER_VOTE,
        MoveName.RESTART_STANDALONE,
        MoveName.RESTORE_VOTE,
        MoveName.RELEASE_LEASE,
    )
    steps = tuple(PlannedStep(m, member) for m in moves)
    return Progress(Unit.MEMBER, member, steps, position, arbiter=ArbiterPhase.ACTIVE)


@pytest.mark.parametrize(
    ("position", "member_votes"),
    [(1, 1), (2, 0), (3, 0), (4, 1)],
    ids=["before the transfer", "vote handed over", "still out", "vote restored"],
)
def test_votes_follow_the_temporary_arbiter_and_the_vote_handed_to_it(
    position: int, member_votes: int
) -> None:
    votes = {"rs0_0": 1, "rs0_1": 1, "rs0_2": 1}
    now = voting_members(votes, _cycle_with_transfer("rs0_0", position), "rs0")
    assert now == {"rs0_0": member_votes, "rs0_1": 1, "rs0_2": 1, ARBITER: 1}
    assert voting_members(votes, Progress(), "rs0") == votes, "no arbiter: the configured votes"


def _health(*states: str, fresh: bool = True) -> list[MemberHealth]:
    return [
        MemberHealth(f"rs0_{i}", s in ("PRIMARY", "SECONDARY"), s, 1, s == "PRIMARY", fresh)
        for i, s in enumerate(states)
    ]


def test_majority_of_a_three_member_set() -> None:
    votes = {"rs0_0": 1, "rs0_1": 1, "rs0_2": 1}
    one_out = majority_of(_health("DOWN", "SECONDARY", "PRIMARY"), votes)
    assert one_out == Majority(2, 3, ("rs0_0",)) and not one_out.lost
    two_out = majority_of(_health("DOWN", "DOWN", "SECONDARY"), votes)
    assert two_out is not None and two_out.lost and two_out.needed == 2
    assert two_out.reason("rs0").startswith(MAJORITY_LOST) and "rs0_0, rs0_1" in two_out.reason("rs0")
    assert majority_of(_health("DOWN", "DOWN", "DOWN", fresh=False), votes) is None, "nothing known"


def test_a_member_no_agent_ever_reported_leaves_the_majority_unknown() -> None:
    """The first agent of a set reporting while the others have not yet (a change just begun, a server just
    started) is no evidence that the others are down: no MAINTENANCE_MAJORITY_LOST on it."""
    votes = {"rs0_0": 1, "rs0_1": 1, "rs0_2": 1}
    unreported = [MemberHealth(f"rs0_{i}", False, UNREPORTED, 1, False, False) for i in (1, 2)]
    first_in = _health("SECONDARY") + unreported
    assert majority_of(first_in, votes) is None


def test_the_temporary_arbiter_holds_the_majority_with_a_vote_handed_over() -> None:
    # rs0_0 is out with its vote handed over and rs0_1 fails: rs0_2 and the arbiter are 2 of 3 votes.
    votes = voting_members({"rs0_0": 1, "rs0_1": 1, "rs0_2": 1}, _cycle_with_transfer("rs0_0", 3), "rs0")
    majority = majority_of(_health("DOWN", "DOWN", "PRIMARY"), votes)
    assert majority == Majority(2, 3, ("rs0_1",)) and not majority.lost


def test_spells_open_grow_and_close_with_their_duration() -> None:
    lost = Majority(1, 3, ("rs0_0",))
    first = track_majority([], lost, 100.0)
    assert first.opened and first.open and first.entries[0]["until"] is None
    worse = track_majority(first.entries, Majority(0, 3, ("rs0_0", "rs0_1")), 110.0)
    assert not worse.opened and worse.entries[0]["healthyVotes"] == 0
    assert worse.entries[0]["down"] == ["rs0_0", "rs0_1"]
    assert track_majority(worse.entries, None, 120.0).open, "nothing known: the spell goes on"
    back = track_majority(worse.entries, Majority(3, 3, ()), 135.0)
    assert back.closed and not back.open
    assert (back.entries[0]["since"], back.entries[0]["until"], back.entries[0]["durationSecs"]) == (
        100.0,
        135.0,
        35.0,
    )
    assert not track_majority(back.entries, Majority(3, 3, ()), 140.0).closed
    assert close_spell(first.entries, 150.0)[0]["durationSecs"] == 50.0


def test_a_lost_majority_is_what_the_change_reads_instead_of_running() -> None:
    lost = Majority(1, 3, ("rs0_0", "rs0_1"))
    running = ChangeStatus("rs0", ChangeState.RUNNING, "restart rs0_0", "rs0_0", since=1.0)
    blocked = with_majority(running, lost, "rs0", 5.0)
    assert blocked.state is ChangeState.BLOCKED and (blocked.reason or "").startswith(MAJORITY_LOST)
    assert blocked.since == 5.0 and with_majority(blocked, lost, "rs0", 9.0).since == 5.0
    failed = ChangeStatus("rs0", ChangeState.FAILED, "rs0_0 did not come back", failed_member="rs0_0")
    assert with_majority(failed, lost, "rs0", 5.0) == failed, "FAILED keeps its state and alert"
    back = with_majority(blocked, None, "rs0", 40.0)
    assert back.state is ChangeState.RUNNING and "is back" in (back.reason or "")
    other = ChangeStatus("rs0", ChangeState.BLOCKED, "waiting before taking rs0_0 down")
    assert with_majority(other, None, "rs0", 40.0) == other, "another block stays"


def test_the_temporary_arbiter_exists_from_its_start_to_its_stop() -> None:
    setup = (
        PlannedStep(MoveName.START_TEMPORARY_ARBITER, ARBITER),
        PlannedStep(MoveName.ADD_TEMPORARY_ARBITER, ARBITER),
    )
    teardown = (
        PlannedStep(MoveName.REMOVE_TEMPORARY_ARBITER, ARBITER),
        PlannedStep(MoveName.STOP_TEMPORARY_ARBITER, ARBITER),
    )
    assert not arbiter_present(Progress())
    assert not arbiter_present(Progress(Unit.SETUP, None, setup, 0))
    assert arbiter_present(Progress(Unit.SETUP, None, setup, 1)), "started, not added yet"
    assert arbiter_present(Progress(arbiter=ArbiterPhase.ACTIVE))
    assert arbiter_present(Progress(Unit.TEARDOWN, None, teardown, 1, arbiter=ArbiterPhase.REMOVED))
    assert not arbiter_present(Progress(Unit.TEARDOWN, arbiter=ArbiterPhase.REMOVED)), "stopped"


def test_the_temporary_arbiters_host_says_whose_it_is() -> None:
    host = arbiter_host("g1", "rs0", "c1", "h9.example.net", 27099, Progress(arbiter=ArbiterPhase.ACTIVE))
    assert (host["typeName"], host["replicaStateName"], host["replicaSetName"]) == (
        "REPLICA_ARBITER",
        "ARBITER",
        "rs0",
    )
    assert (host["hostname"], host["port"], host["processName"]) == ("h9.example.net", 27099, ARBITER)
    assert host["opsmgr"]["temporary"] is True and host["opsmgr"]["temporaryFor"] == "c1"
    assert len(host["id"]) == 32


def test_the_three_member_warning_says_the_temporary_arbiter_is_in_place() -> None:
    with_arbiter = snap(
        view("rs0_0"), view("rs0_1"), view("rs0_2", P), view(ARBITER, A, arbiter=True, priority=0)
    )
    (warning,) = fault_tolerance(with_arbiter, "rs0_0", options=WITH_ARBITER).warnings
    assert "one more failure loses the majority" in warning
    assert "temporary arbiter h9.example.net:27099 is in place" in warning
    assert "remedies" not in warning and "5-member" not in warning


def test_the_three_member_warning_with_an_arbiter_configured_but_not_in_the_set() -> None:
    (warning,) = fault_tolerance(psa(S, S, P), "rs0_0", options=WITH_ARBITER).warnings
    assert "temporary arbiter h9.example.net:27099 is configured" in warning and "remedies" not in warning
    (without,) = fault_tolerance(psa(S, S, P), "rs0_0").warnings
    assert without.endswith(ARBITER_REMEDY), "without one, the remedies"
    (leaving,) = fault_tolerance(psa(S, S, P), "rs0_0", leaving=True, options=WITH_ARBITER).warnings
    assert leaving.endswith(ARBITER_REMEDY), "a leaving member hands over no vote"

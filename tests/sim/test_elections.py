"""Elections, step-downs, priorities, majority loss and client connections in the simulated world."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.drivers.base import CommandConflict, CommandInvalid, MemberState
from opsmgr.sim.model import SimParams
from tests.sim.cluster import Cluster, make_cluster


def elections(c: Cluster) -> list[dict[str, Any]]:
    return [e for e in c.view().events if e["kind"] == "election"]


def test_initiate_elects_the_initiator_and_syncs_the_others() -> None:
    c = make_cluster(3)
    view = c.view()
    assert view.primary == c.addr(0)
    assert view.term == 1
    assert [m.state for m in view.members] == [
        MemberState.PRIMARY,
        MemberState.SECONDARY,
        MemberState.SECONDARY,
    ]
    status = c.driver(1).rs_status(c.name(1))
    assert status is not None and status.my_state is MemberState.SECONDARY
    assert status.primary() is not None and status.primary().host == c.addr(0)
    assert [e["kind"] for e in view.events].count("initial sync done") == 2


def test_a_crashed_primary_is_replaced_after_the_election_timeout() -> None:
    c = make_cluster(3)
    c.set_load(rate=50, clients=7)
    c.run(5)
    assert c.view().connections == 7
    c.world.kill(c.host(0), c.name(0))
    c.run(9.9)
    assert c.view().primary is None, "no election before electionTimeoutMillis"
    c.run(1.0)
    view = c.view()
    assert view.primary in (c.addr(1), c.addr(2))
    assert view.term == 2
    assert view.connections_dropped == 7 and view.connections == 7
    # 10 s of election timeout plus the election itself, without a writable primary
    assert 10.0 <= view.no_primary_s <= 10.0 + c.world.params.election_s + 0.01
    assert elections(c)[-1]["reason"] == "election timeout"


def test_election_timeout_comes_from_the_config_settings() -> None:
    c = make_cluster([{}, {}, {}])
    cfg = c.driver(0).rs_config(c.name(0))
    assert cfg is not None and cfg["settings"]["electionTimeoutMillis"] == 10_000
    c.driver(0).reconfig(c.name(0), {"settings": {"electionTimeoutMillis": 3000}})
    c.world.kill(c.host(0), c.name(0))
    c.run(3.0 + c.world.params.election_s + 0.01)
    assert c.view().primary is not None


def test_the_highest_priority_electable_member_wins() -> None:
    c = make_cluster([{"priority": 1}, {"priority": 2}, {"priority": 3}])
    # member 2 takes over by priority once caught up, after an election timeout
    c.run_until(lambda: c.primary() == 2, within_s=30)
    assert elections(c)[-1]["reason"] == "priority takeover"
    c.world.kill(c.host(2), c.name(2))
    c.run(11)
    assert c.primary() == 1


def test_hidden_arbiter_and_priority_zero_members_never_become_primary() -> None:
    c = make_cluster(
        [
            {},
            {"priority": 0, "hidden": True},
            {"arbiterOnly": True},
            {"priority": 0, "votes": 0},
            {"priority": 0},
        ]
    )
    assert c.state(2) is MemberState.ARBITER
    c.world.kill(c.host(0), c.name(0))
    c.run(60)
    view = c.view()
    assert view.primary is None
    assert [m.state for m in view.members[1:]] == [
        MemberState.SECONDARY,
        MemberState.ARBITER,
        MemberState.SECONDARY,
        MemberState.SECONDARY,
    ]


def test_losing_the_majority_steps_the_primary_down_and_nobody_is_elected() -> None:
    c = make_cluster(3)
    c.world.kill(c.host(1), c.name(1))
    c.world.kill(c.host(2), c.name(2))
    c.run(9)
    assert c.primary() == 0, "a primary keeps its role until electionTimeoutMillis without a majority"
    c.run(2)
    assert c.view().primary is None
    assert c.state(0) is MemberState.SECONDARY
    c.run(60)
    assert c.view().primary is None
    c.start(1)
    c.run_until(lambda: c.view().primary is not None, within_s=30)


def test_an_arbiter_completes_the_majority() -> None:
    c = make_cluster([{}, {}, {"arbiterOnly": True}])
    c.world.kill(c.host(0), c.name(0))
    c.run(11)
    assert c.primary() == 1
    votes = {v["host"] for v in elections(c)[-1]["votes"]}
    assert votes == {c.addr(1), c.addr(2)}


def test_step_down_hands_off_to_the_caught_up_member_at_once() -> None:
    c = make_cluster([{"priority": 1}, {"priority": 1}, {"priority": 2}, {"priority": 0.5}, {"priority": 1}])
    c.run_until(lambda: c.primary() == 2, within_s=30)
    c.set_load(rate=100, clients=12)
    c.run(3)
    before = c.view()
    c.driver(2).step_down(c.name(2), step_down_secs=60, catch_up_secs=10)
    c.run(c.world.params.election_s)
    after = c.view()
    assert after.primary == c.addr(0), "handoff goes to the highest priority, then the lowest index"
    assert after.term == before.term + 1
    assert after.connections_dropped - before.connections_dropped == 12
    assert after.no_primary_s - before.no_primary_s == pytest.approx(c.world.params.election_s, abs=0.01)
    assert elections(c)[-1]["reason"] == "election handoff"
    # the stepped-down member cannot be re-elected for stepDownSecs, even with the higher priority
    c.run(50)
    assert c.primary() == 0
    c.run(25)
    assert c.primary() == 2, "priority takeover once stepDownSecs are over"


def test_step_down_waits_for_a_lagging_secondary_to_catch_up() -> None:
    c = make_cluster(3)
    c.set_load(rate=200)
    for i in (1, 2):
        c.world.stall_replication(c.host(i), c.name(i), rate=0)
    c.run(5)  # 1000 entries behind
    c.world.stall_replication(c.host(1), c.name(1), rate=400)
    start = c.clock.now()
    c.driver(0).step_down(c.name(0), step_down_secs=60, catch_up_secs=10)
    waited = c.clock.now() - start
    assert 2.0 <= waited <= 3.0, "1000 entries at 400/s, writes blocked meanwhile"
    c.run(1)
    assert c.primary() == 1


def test_step_down_fails_when_no_electable_secondary_catches_up() -> None:
    c = make_cluster(3)
    c.set_load(rate=200)
    for i in (1, 2):
        c.world.stall_replication(c.host(i), c.name(i), rate=0)
    c.run(2)
    start = c.clock.now()
    with pytest.raises(CommandConflict, match="No electable secondaries caught up") as raised:
        c.driver(0).step_down(c.name(0), step_down_secs=60, catch_up_secs=4)
    assert raised.value.code_name == "ExceededTimeLimit"
    assert c.clock.now() - start == pytest.approx(4, abs=0.1)
    assert c.primary() == 0
    writes = c.view().writes
    c.run(1)
    assert c.view().writes > writes, "writes resume once the step-down gave up"


def test_step_down_refusals() -> None:
    c = make_cluster(3)
    with pytest.raises(CommandConflict, match="not primary so can't step down") as raised:
        c.driver(1).step_down(c.name(1))
    assert raised.value.code == 10107
    with pytest.raises(CommandInvalid, match="longer than secondaryCatchUpPeriodSecs"):
        c.driver(0).step_down(c.name(0), step_down_secs=5, catch_up_secs=10)


def test_freeze_keeps_a_member_from_standing() -> None:
    c = make_cluster([{"priority": 1}, {"priority": 5}, {"priority": 1}])
    c.run_until(lambda: c.primary() == 1, within_s=30)
    c.driver(0).freeze(c.name(0), 120)
    c.world.kill(c.host(1), c.name(1))
    c.run(11)
    assert c.primary() == 2
    with pytest.raises(CommandConflict, match="cannot freeze node when primary"):
        c.driver(2).freeze(c.name(2), 10)


def test_a_graceful_stop_of_the_primary_steps_down_first() -> None:
    c = make_cluster(3)
    c.set_load(rate=50, clients=3)
    c.run(2)
    c.driver(0).stop(c.name(0))
    c.run(c.world.params.election_s)
    view = c.view()
    assert view.primary in (c.addr(1), c.addr(2))
    assert view.members[0].state is MemberState.DOWN
    assert elections(c)[-1]["reason"] == "election handoff"


def test_a_graceful_stop_of_a_primary_without_caught_up_secondary_is_refused() -> None:
    c = make_cluster(3)
    c.set_load(rate=50)
    for i in (1, 2):
        c.world.stall_replication(c.host(i), c.name(i), rate=0)
    c.run(2)
    with pytest.raises(CommandConflict, match="No electable secondaries caught up"):
        c.driver(0).stop(c.name(0))
    assert c.driver(0).observe(c.name(0)).running
    c.driver(0).stop(c.name(0), force=True)
    assert not c.driver(0).observe(c.name(0)).running


def test_terms_only_grow_and_each_election_had_a_majority() -> None:
    c = make_cluster(5, params=SimParams(seed=3))
    for _ in range(2):
        primary = c.primary()
        assert primary is not None
        c.world.kill(c.host(primary), c.name(primary))
        c.run(12)
    terms = [e["term"] for e in elections(c)]
    assert terms == sorted(set(terms))
    assert all(len(e["votes"]) >= e["majority"] == 3 for e in elections(c))

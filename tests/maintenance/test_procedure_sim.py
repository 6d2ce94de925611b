"""The rolling procedure end to end on the simulated world (elections with handoff and priority takeover,
replication lag, client connections, an oplog per member), through the sim driver."""

from __future__ import annotations

import pytest

from opsmgr.drivers.base import MemberState
from opsmgr.maintenance.moves import BlockCause, MoveName
from opsmgr.maintenance.report import summarize
from opsmgr.maintenance.rolling import ArbiterSpec, MaintenanceOptions, RollingChange, Task
from opsmgr.maintenance.snapshot import Policy
from tests.maintenance.sim_play import ARBITER_HOST, SimPlay
from tests.sim.cluster import Cluster, make_cluster

NEW = "7.0.15"


def version_change(c: Cluster) -> RollingChange:
    return RollingChange(
        c.set_name,
        c.set_name,
        tasks={c.name(i): frozenset({Task.CHANGE_VERSION}) for i in range(len(c.members))},
    )


def loaded(members: list[dict[str, float]] | int) -> Cluster:
    c = make_cluster(members)
    c.set_load(rate=200, clients=12)
    c.run(5)
    return c


@pytest.mark.parametrize("n", [3, 5, 7])
def test_a_version_change_rolls_with_one_election(n: int) -> None:
    c = loaded(n)
    before = c.view()
    play = SimPlay(c, version_change(c), NEW)
    assert play.run()
    after = c.view()
    assert after.elections - before.elections == 1
    assert after.connections_dropped - before.connections_dropped == 12
    assert play.down_at_once == 1
    assert all(p.version == NEW for p in c.world.processes() if p.running)
    assert all(m.state in (MemberState.PRIMARY, MemberState.SECONDARY) for m in after.members)
    report = summarize(play.events)
    assert report.elections == report.planned_elections == 1
    (step_down,) = report.step_downs
    assert step_down.connections_dropped == 12 and step_down.no_writable_primary_s is not None
    assert step_down.no_writable_primary_s < 5
    assert set(report.time_out) == {c.name(i) for i in range(n)}


def test_priorities_hand_the_primary_over_and_takeover_brings_it_back() -> None:
    c = loaded([{"priority": 1}, {"priority": 2}, {"priority": 3}])
    c.run_until(lambda: c.primary() == 2)
    before = c.view().elections
    play = SimPlay(c, version_change(c), NEW)
    assert play.run()
    step_down = next(m for m in play.moves if m.name is MoveName.STEP_DOWN)
    assert step_down.member == c.name(2) and step_down.params["preferredPrimary"] == c.name(1)
    primaries = [e.member for e in summarize(play.events).step_downs]
    assert primaries == [c.name(2)]
    # MongoDB's priority takeover gives the primary back to the highest priority member once it caught up:
    # the one planned election, plus the takeover the config asks for.
    c.run_until(lambda: c.primary() == 2)
    assert c.view().elections - before == 2


def test_a_temporary_arbiter_keeps_the_majority_through_one_more_failure() -> None:
    c = loaded(3)
    options = MaintenanceOptions(temporary_arbiter=ArbiterSpec(ARBITER_HOST, 27017))
    play = SimPlay(c, version_change(c), NEW, options=options)
    before = c.view()
    victim = next(c.name(i) for i in range(3) if c.primary() != i)
    killed: list[float] = []

    def kill_while_one_is_out(p: SimPlay) -> None:
        out = [v for v in c.world.processes() if v.running and v.mode == "standalone" and v.name != victim]
        if out and not killed:
            c.world.kill(c.host(p.index(victim)), victim)
            killed.append(c.clock.now())

    assert not play.run(within_s=120, fault=kill_while_one_is_out)
    assert killed, "a member went out for maintenance"
    view = c.view()
    assert view.primary == before.primary and view.elections == before.elections
    assert any(b.check is not None and b.check.value == "faultTolerance" for b in play.blocked())
    c.start(play.index(victim))
    assert play.run()
    assert play.down_at_once == 1 and c.view().elections - before.elections == 1
    assert all(p.hostname != ARBITER_HOST for p in c.world.processes() if p.running)
    assert {m["host"] for m in c.driver(0).rs_config(c.name(0))["members"]} == {c.addr(i) for i in range(3)}


def test_a_member_that_fails_to_come_back_stops_the_change() -> None:
    c = loaded(3)
    play = SimPlay(c, version_change(c), NEW, policy=Policy(member_timeout_s=60))
    first = c.name(0) if c.primary() != 0 else c.name(1)
    c.world.fail_start(c.host(play.index(first)), first)
    assert not play.run(within_s=120)
    failures = [b for b in play.blocked() if b.cause is BlockCause.FAILURE]
    assert failures and failures[-1].member == first and failures[-1].retry is not None
    assert "stops here with the other members untouched" in failures[-1].reason
    assert {m.member for m in play.moves} == {first}
    assert c.view().primary is not None
    c.world.heal()
    assert play.run()
    assert all(p.version == NEW for p in c.world.processes() if p.running)

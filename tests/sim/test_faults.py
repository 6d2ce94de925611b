"""Network partitions (``sim.faults``): a cut-off primary, a cut-off secondary, rollback of unreplicated
writes, healing."""

from __future__ import annotations

from opsmgr.drivers.base import MemberState
from tests.sim.cluster import make_cluster


def test_a_cut_off_primary_is_replaced_and_steps_down_on_its_side() -> None:
    c = make_cluster(3)
    c.set_load(rate=50, clients=4)
    c.run(2)
    c.world.cut_host(c.host(0))
    assert c.view().connections_dropped == 4, "clients lose the primary they can no longer reach"
    writes = c.view().writes
    c.run(5)
    assert c.view().writes == writes, "nobody can write while the only primary is unreachable"
    mine = c.driver(0).rs_status(c.name(0))
    assert mine is not None and mine.my_state is MemberState.PRIMARY
    assert [m.health for m in mine.members] == [True, False, False]
    c.run(4.9)
    mine = c.driver(0).rs_status(c.name(0))
    assert mine is not None and mine.my_state is MemberState.PRIMARY and mine.term == 1
    c.run(0.2)
    mine = c.driver(0).rs_status(c.name(0))
    assert mine is not None and mine.my_state is MemberState.SECONDARY, (
        "no majority for electionTimeoutMillis"
    )
    c.run(0.3)
    new = c.view().primary
    assert new in (c.addr(1), c.addr(2))
    theirs = c.driver(1).rs_status(c.name(1))
    mine = c.driver(0).rs_status(c.name(0))
    assert theirs is not None and mine is not None
    assert theirs.term == 2 and theirs.members[0].state is MemberState.DOWN
    assert mine.term == 1 and mine.primary() is None, "the cut-off side never hears of term 2"
    c.world.reconnect_host(c.host(0))
    c.run(2)
    view = c.view()
    assert view.primary == new and view.term == 2
    assert view.members[0].state is MemberState.SECONDARY and view.members[0].lag_s == 0


def test_a_cut_off_secondary_cannot_win_and_the_set_keeps_its_primary() -> None:
    c = make_cluster(3)
    c.world.cut_host(c.host(2))
    c.run(60)
    view = c.view()
    assert view.primary == c.addr(0) and view.term == 1 and view.elections == 1
    mine = c.driver(2).rs_status(c.name(2))
    assert mine is not None and mine.my_state is MemberState.SECONDARY and mine.primary() is None
    c.world.heal()
    c.run(1)
    assert c.view().members[2].state is MemberState.SECONDARY
    assert c.view().term == 1


def test_writes_the_new_primary_never_received_are_rolled_back_everywhere() -> None:
    c = make_cluster(3)
    c.set_load(rate=50, keys=1000)
    c.run(2)
    for i in (1, 2):
        c.world.stall_replication(c.host(i), c.name(i), rate=0)
    c.run(3)  # about 150 writes only the primary has
    c.world.cut_host(c.host(0))
    c.run(10.3)
    view = c.view()
    assert view.primary in (c.addr(1), c.addr(2))
    assert 140 <= view.rolled_back_ops <= 160
    assert next(e for e in view.events if e["kind"] == "rollback")["hosts"] == [c.addr(0)]
    c.world.heal()
    c.set_load(rate=0)
    c.run(12)
    assert c.view().members[0].state is MemberState.SECONDARY
    dumps = [c.driver(i).dump(c.name(i)) for i in range(3)]
    assert dumps[0] == dumps[1] == dumps[2]

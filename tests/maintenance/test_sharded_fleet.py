"""A sharded cluster's rolling change played end to end on the sim, in simulated time: the agents' executors
through the sim driver, the server's maintenance service in process (``tests.maintenance.sharded_fleet``), a
write load through the routers. What is asserted is what the world shows while it happens: the balancer off
whenever a member is out, the config servers first, then the shards (one at a time, or two with
``parallelShards`` 2), the members standalone without their cluster role, the mongos last and one at a
time, one planned election per set, a shard that cannot go on holding the cluster (mongos and balancer
included) until it recovers; and the records of the cluster and of each set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmgr.maintenance.sharded import ShardedPolicy
from opsmgr.sim.model import WriteLoad
from tests.maintenance.sharded_fleet import CLUSTER_KEY, HOSTS, Sample, ShardedFleet

LOAD = WriteLoad(rate=50, namespaces=("app.users",), keys=500)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[ShardedFleet]:
    f = ShardedFleet(tmp_path, write_load=LOAD)
    try:
        f.deploy()
        yield f
    finally:
        f.close()


def _first(samples: list[Sample], rs: str) -> float:
    return next(s.t for s in samples if rs in s.sets_out)


def _last(samples: list[Sample], rs: str) -> float:
    return max(s.t for s in samples if rs in s.sets_out)


def test_a_version_change_rolls_the_cluster_in_order(fleet: ShardedFleet) -> None:
    records = fleet.play(fleet.config("7.0.6"))
    samples = fleet.samples
    assert all(not s.balancer_on for s in samples if s.sets_out), "a member was out with the balancer on"
    assert max(len(s.sets_out) for s in samples) == 1
    assert max(n for s in samples for n in s.out.values()) == 1, "one member of a set out at a time"
    order = [_first(samples, rs) for rs in fleet.sets]
    assert order == sorted(order)
    for before, after in zip(fleet.sets, fleet.sets[1:], strict=False):
        assert _last(samples, before) < _first(samples, after)
    assert not [n for s in samples for n in s.kept_role], "a standalone member kept its cluster role"
    upgraded = [next(s.t for s in samples if s.mongos[m] == "7.0.6") for m in fleet.mongos]
    assert _last(samples, fleet.sets[-1]) < upgraded[0] < upgraded[1]
    assert samples[-1].balancer_on, "the balancer is back on"
    assert samples[-1].writes > samples[0].writes, "the load went on through the routers"

    cluster = records[CLUSTER_KEY]
    assert cluster["replicaSets"] == list(fleet.sets) and cluster["balancerWas"] == "full"
    assert cluster["report"]["mongosRestarted"] == list(fleet.mongos)
    for rs in fleet.sets:
        assert records[rs]["cluster"] == "cluster0"
        assert records[rs]["report"]["plannedElections"] == 1, records[rs]["report"]
    versions = {
        fleet.drivers[h].observe(p["name"]).version
        for h in HOSTS
        for p in fleet.goal["processes"]
        if p["hostname"] == h
    }
    assert versions == {"7.0.6"}


def test_parallel_shards_rolls_two_shards_at_once(tmp_path: Path) -> None:
    f = ShardedFleet(tmp_path, sharded=ShardedPolicy(parallel_shards=2))
    try:
        f.deploy()
        f.play(f.config("7.0.6"))
        shards_out = [s.sets_out - {"csrs"} for s in f.samples]
        assert max(len(o) for o in shards_out) == 2, "two shards were out at once"
        assert all("csrs" not in s.sets_out or len(s.sets_out) == 1 for s in f.samples)
        assert max(n for s in f.samples for n in s.out.values()) == 1
    finally:
        f.close()


def test_a_balancer_that_was_off_stays_off(tmp_path: Path) -> None:
    f = ShardedFleet(tmp_path, shards=1, routers=1)
    try:
        f.deploy()
        f.drivers[HOSTS[0]].set_balancer("mongos0", running=False)
        records = f.play(f.config("7.0.6"))
        assert records[CLUSTER_KEY]["balancerWas"] == "off"
        assert not f.samples[-1].balancer_on
    finally:
        f.close()


def test_a_shard_that_cannot_go_on_holds_the_cluster_until_it_recovers(fleet: ShardedFleet) -> None:
    """A member of sh1 is down (its restarts fail): sh1's change stops at that member with the others of sh1
    untouched (its own procedure and checks), the config servers and sh0 are done meanwhile, the mongos wait
    and the balancer stays off; healed, all goes on."""
    fleet.world.fail_start(HOSTS[1], "sh1_1")
    fleet.world.kill(HOSTS[1], "sh1_1")
    fleet.samples.clear()
    fleet.put(fleet.config("7.0.6"))
    assert fleet.run_until(lambda: fleet.records()["sh0"]["state"] == "DONE", 600)
    fleet.run_until(lambda: False, 60)
    records = fleet.records()
    assert records["csrs"]["state"] == "DONE" and records["sh1"]["state"] != "DONE"
    assert "sh1_1" in str(records["sh1"]["reason"]) and records["sh1"]["progress"]["membersDone"] == []
    assert all(s.out["sh1"] <= 1 for s in fleet.samples), "no other member of sh1 went down"
    cluster = records[CLUSTER_KEY]
    assert cluster["state"] == "RUNNING" and "sh1" in str(cluster["reason"])
    last = fleet.samples[-1]
    assert not last.balancer_on and set(last.mongos.values()) == {"7.0.5"}

    fleet.world.heal()
    assert fleet.run_until(fleet.finished, 900), fleet.records()
    assert fleet.samples[-1].balancer_on and set(fleet.samples[-1].mongos.values()) == {"7.0.6"}

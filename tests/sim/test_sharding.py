"""Sharded clusters in the sim: routers, shards, the chunk map on the config servers, the balancer's
migrations, routing through mongos, and what a shard that is down does to reads, writes and counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opsmgr.drivers.base import (
    CommandConflict,
    CommandInvalid,
    ProcessUnreachable,
    RemoveShardState,
    RunMode,
    ShardedCollection,
)
from opsmgr.drivers.sim import SimDriver
from opsmgr.sim.clock import FakeClock
from opsmgr.sim.model import SimParams, WriteLoad
from opsmgr.sim.world import SimWorld
from tests.sim.sharded import CSRS, Sharded, make_sharded

NS = "app.orders"


def fill(s: Sharded, n: int, ns: str = NS) -> None:
    d, r = s.router()
    for i in range(n):
        s.world.mongos_write(d.hostname, r, ns, "i", {"_id": i, "v": i})


def count(s: Sharded, ns: str = NS, i: int = 0) -> tuple[int, tuple[str, ...]]:
    d, r = s.router(i)
    c = s.world.mongos_count(d.hostname, r, ns)
    return c.count, c.unreachable


def shard_ids(s: Sharded, rs: str) -> set[tuple[str, int]]:
    """(namespace, _id) of the user documents on the set's primary."""
    primary = s.primary(rs)
    assert primary is not None
    host = primary.split(":")[0]
    name = f"{rs}_{host.split('-')[1].split('.')[0]}"
    return {(ns, doc["_id"]) for ns, doc in s.world.dump(host, name) if not ns.startswith("config.")}


def test_a_router_observes_as_a_mongos_and_names_its_cluster() -> None:
    s = make_sharded(1)
    d, r = s.router()
    seen = d.observe(r)
    assert seen.running and seen.process_type == "mongos" and seen.mode is RunMode.STANDALONE
    assert [c.name for c in s.world.sharded_clusters()] == [CSRS]
    with pytest.raises(CommandInvalid, match="configDB"):
        bad = s.router_spec(5)
        d.start(
            type(bad)(**{**bad.__dict__, "args": {"net": {"port": 27017}}, "hostname": d.hostname, "port": 1})
        )
    member = s.driver(s.host("sh0", 0))
    with pytest.raises(CommandConflict, match="not a mongos"):
        member.list_shards("sh0_0")
    s.world.kill(d.hostname, r)
    with pytest.raises(ProcessUnreachable):
        d.list_shards(r)


def test_add_shard_refusals_and_idempotence() -> None:
    s = make_sharded(1)
    d, r = s.router()
    d.add_shard(r, "sh0", s.connection("sh0"))  # the same shard again: nothing happens
    assert [x.id for x in d.list_shards(r)] == ["sh0"]
    with pytest.raises(CommandConflict, match="already shard sh0"):
        d.add_shard(r, "other", s.connection("sh0"))
    with pytest.raises(CommandConflict, match="no initiated replica set sh1"):
        d.add_shard(r, "sh1", s.connection("sh1"))  # not started
    s.start_set("sh1", "configsvr")  # started without the shard role
    with pytest.raises(CommandConflict, match="shardsvr"):
        d.add_shard(r, "sh1", s.connection("sh1"))
    with pytest.raises(CommandConflict, match="already exists"):
        d.add_shard(r, "sh0", s.connection("sh1"))
    with pytest.raises(CommandInvalid):
        d.add_shard(r, "x", "no-slash")
    assert [x.id for x in d.list_shards(r)] == ["sh0"]


def test_sharded_writes_are_routed_counted_and_balanced_without_a_document_on_two_shards() -> None:
    s = make_sharded(1)
    d, r = s.router()
    d.shard_collection(r, NS, {"_id": "hashed"})
    d.shard_collection(r, NS, {"_id": "hashed"})  # same key: no-op
    with pytest.raises(CommandConflict, match="already sharded"):
        d.shard_collection(r, NS, {"v": 1})
    with pytest.raises(CommandInvalid):
        d.shard_collection(r, "app.bad", {"v": -1})
    assert d.sharded_collections(r) == [ShardedCollection(NS, {"_id": "hashed"}, False)]
    fill(s, 300)
    assert s.view().chunks[NS] == {"sh0": 16}
    s.add_shard(1)
    s.run_until(s.balanced)
    v = s.view()
    assert v.chunks[NS] == {"sh0": 8, "sh1": 8} and v.migrations == 8 and v.migration is None
    docs = {x.id: x.documents for x in v.shards}
    assert docs["sh0"] and docs["sh1"] and docs["sh0"] + docs["sh1"] == 300
    assert count(s) == (300, ())
    on0, on1 = shard_ids(s, "sh0"), shard_ids(s, "sh1")
    assert not on0 & on1 and len(on0 | on1) == 300
    assert s.world.mongos_find(d.hostname, r, NS, 7) == {"_id": 7, "v": 7}


def test_a_shard_that_is_down_makes_its_chunks_documents_unreachable() -> None:
    s = make_sharded(2)
    d, r = s.router()
    d.shard_collection(r, NS, {"_id": 1})
    fill(s, 200)
    s.run_until(s.balanced)
    on1 = {i for _ns, i in shard_ids(s, "sh1")}
    s.stop_set("sh1")
    n, unreachable = count(s)
    assert (n, unreachable) == (200 - len(on1), ("sh1",))
    lost = min(on1)
    with pytest.raises(CommandConflict, match="shard sh1 has no reachable primary") as refused:
        s.world.mongos_find(d.hostname, r, NS, lost)
    assert refused.value.code == 133
    failed = s.view().writes_failed
    with pytest.raises(CommandConflict, match="sh1"):
        s.world.mongos_write(d.hostname, r, NS, "u", {"_id": lost, "v": 0})
    assert s.view().writes_failed == failed + 1
    kept = min({i for _ns, i in shard_ids(s, "sh0")})
    assert s.world.mongos_find(d.hostname, r, NS, kept) is not None


def test_without_a_config_primary_routers_route_with_the_last_map_but_change_no_metadata() -> None:
    s = make_sharded(2)
    d, r = s.router()
    d.shard_collection(r, NS, {"_id": 1})
    fill(s, 50)
    s.stop_set(CSRS)
    s.clock.advance(30)
    assert count(s) == (50, ())
    s.world.mongos_write(d.hostname, r, NS, "i", {"_id": 1000})
    assert [x.id for x in d.list_shards(r)] == ["sh0", "sh1"]
    with pytest.raises(CommandConflict, match="config server replica set cfg has no primary"):
        d.shard_collection(r, "app.other", {"_id": 1})
    with pytest.raises(CommandConflict, match="no primary"):
        d.set_balancer(r, running=False)


def test_remove_shard_drains_its_chunks_moves_its_databases_and_completes() -> None:
    s = make_sharded(2)
    d, r = s.router()
    d.shard_collection(r, NS, {"_id": 1})
    fill(s, 120)
    s.world.mongos_write(d.hostname, r, "app.plain", "i", {"_id": "x"})  # unsharded: on app's primary, sh0
    s.run_until(s.balanced)
    first = d.remove_shard(r, "sh0")
    assert (
        first.state is RemoveShardState.STARTED
        and first.remaining_chunks == 8
        and first.dbs_to_move == ("app",)
    )
    assert d.list_shards(r)[0].draining
    assert d.remove_shard(r, "sh0").state is RemoveShardState.ONGOING
    s.run_until(lambda: s.view().chunks[NS] == {"sh0": 0, "sh1": 16})
    done = d.remove_shard(r, "sh0")
    assert done.state is RemoveShardState.COMPLETED and done.remaining_chunks == 0
    assert [x.id for x in d.list_shards(r)] == ["sh1"]
    assert count(s) == (120, ()) and count(s, "app.plain") == (1, ())
    assert shard_ids(s, "sh0") == set()
    with pytest.raises(CommandConflict, match="last shard"):
        d.remove_shard(r, "sh1")
    with pytest.raises(CommandConflict, match="does not exist"):
        d.remove_shard(r, "sh0")


def test_the_balancer_stops_and_starts_and_a_stop_waits_for_the_migration_under_way() -> None:
    s = make_sharded(1, params=SimParams(noop_interval_s=0, migration_s=5.0))
    d, r = s.router()
    d.shard_collection(r, NS, {"_id": 1})
    s.add_shard(1)
    s.clock.advance(1)
    status = d.balancer_status(r)
    assert status.mode == "full" and status.in_round
    before = s.clock.now()
    d.set_balancer(r, running=False)
    assert s.clock.now() > before, "the stop waited for the migration to commit"
    status = d.balancer_status(r)
    assert status.mode == "off" and not status.in_round
    moved = s.view().migrations
    s.clock.advance(120)
    assert s.view().migrations == moved == 1
    d.set_balancer(r, running=True)
    s.run_until(s.balanced)
    assert s.view().chunks[NS] == {"sh0": 8, "sh1": 8}


def test_a_migration_aborts_when_its_recipient_has_no_primary() -> None:
    s = make_sharded(1, params=SimParams(noop_interval_s=0, migration_s=5.0))
    d, r = s.router()
    d.shard_collection(r, NS, {"_id": 1})
    fill(s, 40)
    s.add_shard(1)
    s.clock.advance(1)
    assert s.view().migration is not None
    s.stop_set("sh1")
    s.clock.advance(10)
    v = s.view()
    assert v.migrations_aborted == 1 and v.migrations == 0 and v.chunks[NS] == {"sh0": 16, "sh1": 0}
    aborted = [e for e in v.events if e["kind"] == "migration aborted"]
    assert len(aborted) == 1 and aborted[0]["reason"] == "recipient sh1 has no primary"
    assert count(s) == (40, ())


def test_restoring_the_config_servers_restores_the_chunk_map() -> None:
    s = make_sharded(2)
    d, r = s.router()
    d.set_balancer(r, running=False)
    d.shard_collection(r, NS, {"_id": 1})
    fill(s, 100)
    primary = s.primary(CSRS)
    assert primary is not None
    t0 = s.world.dump(primary.split(":")[0], f"cfg_{primary.split('-')[1][0]}")
    assert {ns for ns, _doc in t0} >= {"config.shards", "config.chunks", "config.collections"}
    d.set_balancer(r, running=True)
    s.run_until(s.balanced)
    assert count(s) == (100, ())
    moved = len(shard_ids(s, "sh1"))
    for i in range(s.members):
        s.driver(s.host(CSRS, i)).stop(f"cfg_{i}", force=True)
        s.world.load(s.host(CSRS, i), f"cfg_{i}", t0)
    for i in range(s.members):
        s.driver(s.host(CSRS, i)).start(s.member_spec(CSRS, i, "configsvr"))
    s.run_until(lambda: s.primary(CSRS) is not None)
    s.clock.advance(1)
    assert s.view().chunks[NS] == {"sh0": 16, "sh1": 0}
    assert count(s)[0] == 100 - moved, (
        "the migrated documents are on sh1, which the restored map does not route to"
    )


def test_a_write_load_through_the_routers_counts_the_writes_that_failed() -> None:
    s = make_sharded(2, routers=2)
    d, r = s.router()
    d.shard_collection(r, NS, {"_id": "hashed"})
    s.run_until(s.balanced)
    s.world.set_cluster_write_load(CSRS, WriteLoad(rate=100, namespaces=(NS,), keys=500))
    s.clock.advance(10)
    s.world.kill(d.hostname, r)  # the other router still serves
    s.clock.advance(10)
    v = s.view()
    assert v.writes >= 1900 and v.writes_failed == 0
    routed = [s.router(i)[0].server_sample(f"mongos_{i}")["OPCOUNTER_INSERT"] for i in (1,)]
    assert routed[0] > 0, "the router that served counts the inserts it routed"
    s.stop_set("sh1")
    s.clock.advance(10)
    v = s.view()
    assert 300 <= v.writes_failed <= 700, v.writes_failed
    assert v.write_load.rate == 100
    n, unreachable = count(s, i=1)
    assert unreachable == ("sh1",) and n > 0


def test_two_worlds_on_one_file_share_the_cluster(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "world.sqlite"
    s = make_sharded(
        2, world=SimWorld.open(path, clock=clock, params=SimParams(noop_interval_s=0)), clock=clock
    )
    other = SimWorld.open(path, clock=clock)
    try:
        d = SimDriver(other, "mongos-0.sim")
        d.shard_collection("mongos_0", NS, {"_id": 1})
        fill(s, 30)
        s.run_until(s.balanced)
        assert [x.id for x in d.list_shards("mongos_0")] == ["sh0", "sh1"]
        assert other.mongos_count("mongos-0.sim", "mongos_0", NS).count == 30
        assert other.sharded_cluster(CSRS).chunks[NS] == {"sh0": 8, "sh1": 8}
    finally:
        other.close()
        s.world.close()


AGENT = """
import sys
from opsmgr.drivers.sim import SimDriver
from opsmgr.sim.world import SimWorld
from tests.sim.sharded import Sharded

world = SimWorld.open(sys.argv[1])
s = Sharded(world=world, clock=world.clock)
d = SimDriver(world, "mongos-1.sim")
d.start(s.router_spec(1))
d.add_shard("mongos_1", "sh1", s.connection("sh1"))
d.shard_collection("mongos_1", "app.orders", {"_id": 1})
print(len(d.list_shards("mongos_1")), world.mongos_count("mongos-1.sim", "mongos_1", "app.orders").count)
world.close()
"""


def test_an_agent_process_on_the_shared_world_file_starts_a_router_and_sends_it_commands(
    tmp_path: Path,
) -> None:
    path = tmp_path / "world.sqlite"
    world = SimWorld.open(path, params=SimParams(noop_interval_s=0))
    s = Sharded(world=world, clock=world.clock)
    try:
        s.start_set(CSRS, "configsvr")
        s.start_router(0)
        s.add_shard(0)
        s.start_set("sh1", "shardsvr")
        fill(s, 5, "app.orders")
        out = subprocess.run(
            [sys.executable, "-c", AGENT, str(path)], capture_output=True, text=True, timeout=120, check=True
        )
        assert out.stdout.split() == ["2", "5"]
        assert [x.id for x in s.view().shards] == ["sh0", "sh1"]
        assert s.world.processes("mongos-1.sim")[0].process_type == "mongos"
        assert {rs.cluster for rs in s.world.replica_sets()} == {CSRS}
    finally:
        world.close()


def test_a_new_clusters_router_lists_no_shards_then_adds_the_first() -> None:
    s = make_sharded(0)
    d, r = s.router()
    assert d.list_shards(r) == [] and d.sharded_collections(r) == []
    assert d.balancer_status(r).mode == "full"
    s.add_shard(0)
    assert [x.id for x in d.list_shards(r)] == ["sh0"]


def test_a_router_started_before_its_config_servers_answers_once_they_have_a_primary() -> None:
    clock = FakeClock()
    s = Sharded(world=SimWorld.in_memory(clock=clock, params=SimParams(noop_interval_s=0)), clock=clock)
    s.start_router(0)
    d, r = s.router()
    with pytest.raises(CommandConflict, match="never reached") as refused:
        d.list_shards(r)
    assert refused.value.code == 133
    s.start_set(CSRS, "configsvr")
    assert d.list_shards(r) == []
    s.add_shard(0)
    assert [x.id for x in d.list_shards(r)] == ["sh0"]


def test_every_chunk_bound_fits_a_64_bit_integer() -> None:
    """The config servers' documents are backed up over strict JSON: a bound past 2**63 - 1 was refused."""
    from opsmgr.sim.shardmodel import initial_chunks

    chunks = initial_chunks("app.users", "sh0", 16)
    assert max(c["max"] for c in chunks) < 2**63
    assert [c["min"] for c in chunks[1:]] == [c["max"] for c in chunks[:-1]]

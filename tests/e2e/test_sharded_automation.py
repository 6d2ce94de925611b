"""Sharded cluster automation end to end: a real server, one real ``opsmgr agent`` process per simulated host
(sharing a sim world file), and one PUT of an automation config in Ops Manager's shapes (``sharding[]``,
``mongos`` processes with ``cluster``, members with ``clusterRole``).

Three hosts each run a member of the config server replica set and of every shard; the first two run a
mongos each. From nothing the agents bring the cluster to goal: config servers, shards, then the mongos,
whose coordinator adds the shards and shards the collection. Then a third shard and a second mongos are
added, the first shard drained and removed (``draining[]``), and finally its processes and the second mongos
leave the config and are stopped. What the cluster holds is read through a mongos of the sim world, as a
client would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.drivers.sim import SimDriver
from opsmgr.errors import OpsmgrError
from opsmgr.sim.model import SimParams
from opsmgr.sim.world import SimWorld
from tests.agent.sharded_helpers import sharded_config
from tests.deployments import Deployment
from tests.procs import ServerProcess, wait_for
from tests.sharded_support import agents_on_world, wait_goal
from tests.sim.sharded import make_sharded

pytestmark = pytest.mark.e2e

HOSTS = [f"shard{i}.e2e.sim" for i in range(3)]
USERS = {"_id": "app.users", "key": [["uid", 1]], "unique": False}
# A quick balancer: few chunks, retried every half second, so that a drain takes seconds.
PARAMS = SimParams(balancer_round_s=0.5, migration_s=0.1, initial_chunks=4)

Cluster = tuple[Deployment, SimWorld]


@pytest.fixture
def cluster(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    with agents_on_world(server, owner, tmp_path, request.node.name, HOSTS, PARAMS) as pair:
        yield pair


def config(shards: range, *, routers: int = 1, draining: tuple[str, ...] = ()) -> dict[str, Any]:
    """The cluster with shards ``sh{k}`` for ``k`` in ``shards`` (their members on every host)."""
    full = sharded_config(shards.stop, routers=routers, hosts=HOSTS, collections=[USERS], draining=draining)
    gone = {f"sh{k}" for k in range(shards.start)}
    full["processes"] = [p for p in full["processes"] if p["name"].rpartition("_")[0] not in gone]
    full["replicaSets"] = [rs for rs in full["replicaSets"] if rs["_id"] not in gone]
    full["sharding"][0]["shards"] = [s for s in full["sharding"][0]["shards"] if s["_id"] not in gone]
    return full


def shards(world: SimWorld) -> dict[str, bool]:
    """Shard id -> draining, as mongos0 (on the first host) lists them."""
    return {s.id: s.draining for s in SimDriver(world, HOSTS[0]).list_shards("mongos0")}


def running(world: SimWorld, host: str, name: str) -> bool:
    return SimDriver(world, host).observe(name).running


def fresh_cluster_lists_no_shards() -> bool:
    """Whether the sim answers ``listShards`` of a cluster that has no shard yet with an empty list, as
    MongoDB does. The agents wait for that answer (WaitForConfigServer) before their first AddShard."""
    router, name = make_sharded(shards=0, members=1).router()
    try:
        return router.list_shards(name) == []
    except OpsmgrError:
        return False


def test_agents_bring_up_a_sharded_cluster_then_add_a_shard_and_drain_one(cluster: Cluster) -> None:
    if not fresh_cluster_lists_no_shards():
        pytest.skip(
            "the sim's mongos answers listShards only once the config servers hold a shard (a ClusterRec "
            "whose cache is [] reads as never refreshed): a new cluster never gets its first AddShard"
        )
    d, world = cluster
    version = d.put(config(range(2)))
    wait_goal(d, version)
    assert shards(world) == {"sh0": False, "sh1": False}
    assert [c.ns for c in SimDriver(world, HOSTS[0]).sharded_collections("mongos0")] == ["app.users"]
    status = {p["name"]: p for p in d.status()["processes"]}
    assert {"mongos0", "csrs_0", "sh0_2", "sh1_1"} <= set(status)
    assert all(p["plan"] == [] and p["errorText"] is None for p in status.values())
    assert (HOSTS[0], 28017) in {(h["hostname"], h["port"]) for h in d.hosts()}, "a mongos is reported too"

    version = d.put(config(range(3), routers=2))
    wait_goal(d, version)
    assert shards(world) == {"sh0": False, "sh1": False, "sh2": False}
    names = [s.id for s in SimDriver(world, HOSTS[1]).list_shards("mongos1")]
    assert sorted(names) == ["sh0", "sh1", "sh2"], "the new mongos routes for the same cluster"

    version = d.put(config(range(3), routers=2, draining=("sh0",)))
    wait_goal(d, version)
    assert shards(world) == {"sh1": False, "sh2": False}, "sh0 is drained and removed"

    version = d.put(config(range(1, 3)))
    wait_goal(d, version)
    leaving = [(host, f"sh0_{i}") for i, host in enumerate(HOSTS)] + [(HOSTS[1], "mongos1")]
    wait_for(
        lambda: not any(running(world, host, name) for host, name in leaving),
        30,
        what="the processes no longer in the config stopped",
    )
    assert shards(world) == {"sh1": False, "sh2": False}

"""A sharded cluster's moves sent through a mongos, and what a cycle reads through one: against a scripted
sharding driver (no processes)."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.agent.cluster_moves import run_cluster_move
from opsmgr.agent.moves import Move, Step
from opsmgr.agent.observe import read_snapshot, status_observed
from opsmgr.drivers.base import (
    BalancerState,
    DriverError,
    ProcessObservation,
    ProcessUnreachable,
    RemoveShardProgress,
    RemoveShardState,
    RunMode,
    ShardedCollection,
    ShardInfo,
)


class Router:
    """The driver of a host running one mongos ``mongos0`` (only what the tests need of a Driver)."""

    def __init__(self, *, config_servers_up: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.up = config_servers_up
        self.progress = [
            RemoveShardProgress(RemoveShardState.STARTED, 4),
            RemoveShardProgress(RemoveShardState.ONGOING, 1, ("app",)),
            RemoveShardProgress(RemoveShardState.COMPLETED, 0),
        ]

    def observe(self, name: str) -> ProcessObservation:
        return ProcessObservation(name, True, RunMode.STANDALONE, 27017, "7.0.5", {})

    def _config(self) -> None:
        if not self.up:
            raise ProcessUnreachable("no primary in the config server replica set csrs")

    def rs_status(self, name: str) -> None:
        raise AssertionError("a mongos has no replica set to ask about")

    rs_config = oplog_window = rs_status

    def connections(self, name: str) -> int:
        return 7

    def server_sample(self, name: str) -> dict[str, float]:
        return {"OPCOUNTER_QUERY": 3.0}

    def list_shards(self, name: str) -> list[ShardInfo]:
        self._config()
        return [ShardInfo("sh0", "sh0/a:1")]

    def sharded_collections(self, name: str) -> list[ShardedCollection]:
        self._config()
        return [ShardedCollection("app.users", {"uid": 1})]

    def add_shard(self, name: str, shard_id: str, connection: str) -> None:
        self.calls.append(("add_shard", name, shard_id, connection))

    def remove_shard(self, name: str, shard_id: str) -> RemoveShardProgress:
        self.calls.append(("remove_shard", name, shard_id))
        return self.progress.pop(0)

    def shard_collection(self, name: str, ns: str, key: dict[str, Any], *, unique: bool = False) -> None:
        self.calls.append(("shard_collection", name, ns, key, unique))

    def balancer_status(self, name: str) -> BalancerState:
        return BalancerState("full", False)

    def set_balancer(self, name: str, *, running: bool) -> None:
        self.calls.append(("set_balancer", name, running))


def test_the_cluster_moves_become_the_sharding_commands() -> None:
    router = Router()
    add = Step(Move.ADD_SHARD, "add shard sh1", command={"addShard": "sh1/b:1,c:1", "name": "sh1"})
    assert run_cluster_move(router, "mongos0", add) == "add shard sh1"
    coll = Step(
        Move.SHARD_COLLECTION,
        "shard app.users",
        command={"shardCollection": "app.users", "key": {"uid": 1}, "unique": True},
    )
    run_cluster_move(router, "mongos0", coll)
    assert router.calls == [
        ("add_shard", "mongos0", "sh1", "sh1/b:1,c:1"),
        ("shard_collection", "mongos0", "app.users", {"uid": 1}, True),
    ]


def test_each_remove_shard_reports_the_draining_until_the_shard_is_removed() -> None:
    router = Router()
    remove = Step(Move.REMOVE_SHARD, "drain shard sh2", command={"removeShard": "sh2"})
    said = [run_cluster_move(router, "mongos0", remove) for _ in range(3)]
    assert said == [
        "drain shard sh2: draining started, 4 chunks left",
        "drain shard sh2: draining ongoing, 1 chunk left, databases to move: app",
        "drain shard sh2: shard sh2 removed",
    ]
    assert router.calls == [("remove_shard", "mongos0", "sh2")] * 3


def test_a_driver_without_sharding_refuses_the_move_by_name() -> None:
    class Plain:
        pass

    step = Step(Move.ADD_SHARD, "add", command={"addShard": "x/y:1", "name": "x"})
    with pytest.raises(DriverError, match="cannot send AddShard to mongos0"):
        run_cluster_move(Plain(), "mongos0", step)


def test_a_cycle_reads_the_cluster_through_a_running_mongos_and_asks_it_no_replica_set_question() -> None:
    snap = read_snapshot(Router(), ["mongos0"], frozenset(), True, frozenset({"mongos0"}))  # type: ignore[arg-type]
    local = snap.processes["mongos0"]
    assert local.router is not None
    assert local.router.shards == (ShardInfo("sh0", "sh0/a:1"),)
    assert local.router.collections == (ShardedCollection("app.users", {"uid": 1}),)
    assert local.rs_status is None and local.connections == 7
    observed = status_observed(local, "router0")
    assert observed["running"] is True and observed["replicaSetName"] is None
    assert observed["measurements"] == {"OPCOUNTER_QUERY": 3.0, "CONNECTIONS": 7.0}


def test_a_mongos_whose_config_servers_cannot_answer_shows_no_cluster() -> None:
    router = Router(config_servers_up=False)
    snap = read_snapshot(router, ["mongos0"], frozenset(), False, frozenset({"mongos0"}))  # type: ignore[arg-type]
    view = snap.processes["mongos0"].router
    assert view is not None and view.shards is None and view.collections is None

"""The sharding sub-planner: (observed, goal, host) -> the moves of mongos processes and of their cluster, and
the mongos spec and config server set config it asks for. No processes, no I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from opsmgr.agent.moves import Move
from opsmgr.agent.plan import LocalProcess, ProcessPlan, Snapshot, plan
from opsmgr.agent.sharding import RouterView, mongos_spec, shard_key
from opsmgr.automation.config import processes_by_name
from opsmgr.drivers.base import (
    MemberState,
    MemberStatus,
    ProcessObservation,
    RsStatus,
    RunMode,
    ShardedCollection,
    ShardInfo,
)
from tests.agent.sharded_helpers import CSRS, sharded_config

CONFIG_DB = "csrs/cfg0:27017,cfg1:27017,cfg2:27017"
USERS = {"_id": "app.users", "key": [["uid", 1]], "unique": True}
EVENTS = {"_id": "app.events", "key": [["device", "hashed"]]}


def shard(k: int, *, draining: bool = False) -> ShardInfo:
    return ShardInfo(f"sh{k}", f"sh{k}/sh{k}-0:27017,sh{k}-1:27017,sh{k}-2:27017", draining)


def router_running(goal: dict[str, Any], name: str, view: RouterView | None, **args: Any) -> LocalProcess:
    spec = mongos_spec(processes_by_name(goal)[name], goal)
    obs = ProcessObservation(name, True, RunMode.STANDALONE, spec.port, spec.version, {**spec.args, **args})
    return LocalProcess(obs, router=view)


def plans_for(goal: dict[str, Any], host: str, **processes: LocalProcess) -> dict[str, ProcessPlan]:
    return {p.name: p for p in plan(Snapshot(processes), goal, host)}


def moves_of(p: ProcessPlan) -> list[str]:
    return p.moves()[:-1]


def test_a_mongos_spec_names_its_config_servers_and_no_replica_set() -> None:
    goal = sharded_config()
    spec = mongos_spec(processes_by_name(goal)["mongos0"], goal)
    assert spec.process_type == "mongos"
    assert spec.repl_set_name is None
    assert spec.args["sharding"] == {"configDB": CONFIG_DB}
    assert spec.log_path == "/log/mongos0.log"
    # A disabled config server is left out of the seed list (it cannot answer).
    goal["processes"][1]["disabled"] = True
    assert (
        mongos_spec(goal["processes"][-1], goal).args["sharding"]["configDB"] == "csrs/cfg0:27017,cfg2:27017"
    )


def test_the_config_server_set_is_initiated_as_one_and_shards_keep_their_role() -> None:
    goal = sharded_config()
    fresh = ProcessObservation("csrs_0", True, RunMode.REPLSET, 27017, "7.0.5", {})
    init = plans_for(goal, "cfg0", csrs_0=LocalProcess(fresh))["csrs_0"].current
    assert init.move is Move.RS_INIT
    assert init.rs_config is not None and init.rs_config["configsvr"] is True
    shard_init = plans_for(goal, "sh0-0", sh0_0=LocalProcess(replace(fresh, name="sh0_0")))["sh0_0"].current
    assert shard_init.move is Move.RS_INIT
    assert shard_init.rs_config is not None and "configsvr" not in shard_init.rs_config
    start = plans_for(goal, "sh0-0")["sh0_0"].current
    assert start.spec is not None and start.spec.args["sharding"] == {"clusterRole": "shardsvr"}


def test_a_mongos_is_started_as_a_router() -> None:
    goal = sharded_config()
    p = plans_for(goal, "router0")["mongos0"]
    assert moves_of(p) == ["Start"]
    assert p.current.spec is not None and p.current.spec.process_type == "mongos"


def _csrs_member(i: int, state: MemberState | None) -> LocalProcess:
    obs = ProcessObservation(f"csrs_{i}", True, RunMode.REPLSET, 27017 + i, "7.0.5", {})
    if state is None:
        return LocalProcess(obs)
    members = (MemberStatus(f"box:{27017 + i}", state, True, 1 << 32, self=True),)
    return LocalProcess(obs, rs_status=RsStatus(CSRS, state, 1, members, 1))


def test_a_mongos_beside_its_config_servers_waits_for_their_primary_before_it_starts() -> None:
    goal = sharded_config(hosts=["box"])
    waiting = {f"csrs_{i}": _csrs_member(i, MemberState.SECONDARY) for i in range(3)}
    p = plans_for(goal, "box", **waiting)["mongos0"]
    assert moves_of(p) == ["WaitForConfigServer"]
    assert (
        p.blocked_reason is not None and "csrs" in p.blocked_reason and "before starting" in p.blocked_reason
    )
    ready = {**waiting, "csrs_1": _csrs_member(1, MemberState.PRIMARY)}
    assert moves_of(plans_for(goal, "box", **ready)["mongos0"]) == ["Start"]


def test_a_running_mongos_without_an_answer_from_its_config_servers_waits() -> None:
    goal = sharded_config()
    for view in (None, RouterView(None, None), RouterView((), None)):
        p = plans_for(goal, "router0", mongos0=router_running(goal, "mongos0", view))["mongos0"]
        assert moves_of(p) == ["WaitForConfigServer"]
        assert p.current.blocked


def test_the_coordinator_adds_the_shards_then_shards_the_collections() -> None:
    goal = sharded_config(collections=[USERS, EVENTS], routers=2)
    view = RouterView((shard(0),), (ShardedCollection("app.events", {"device": "hashed"}),))
    p = plans_for(goal, "router0", mongos0=router_running(goal, "mongos0", view))["mongos0"]
    assert moves_of(p) == ["AddShard", "ShardCollection"]
    add, coll = p.steps[0], p.steps[1]
    assert add.command == {"addShard": "sh1/sh1-0:27017,sh1-1:27017,sh1-2:27017", "name": "sh1"}
    assert not add.blocked
    assert coll.command == {"shardCollection": "app.users", "key": {"uid": 1}, "unique": True}


def test_other_mongos_wait_for_the_coordinator_until_the_cluster_is_at_goal() -> None:
    goal = sharded_config(collections=[USERS], routers=2)
    view = RouterView((shard(0),), ())
    p = plans_for(goal, "router1", mongos1=router_running(goal, "mongos1", view))["mongos1"]
    assert moves_of(p) == ["WaitClusterCoordinator"]
    assert p.blocked_reason is not None
    assert "mongos0" in p.blocked_reason and "add shard sh1" in p.blocked_reason
    done = RouterView((shard(0), shard(1)), (ShardedCollection("app.users", {"uid": 1}, True),))
    for name, host in (("mongos0", "router0"), ("mongos1", "router1")):
        assert plans_for(goal, host, **{name: router_running(goal, name, done)})[name].at_goal


def test_a_disabled_first_mongos_hands_the_cluster_to_the_next() -> None:
    goal = sharded_config(routers=2)
    goal["processes"][-2]["disabled"] = True
    p = plans_for(goal, "router1", mongos1=router_running(goal, "mongos1", RouterView((shard(0),), ())))
    assert moves_of(p["mongos1"]) == ["AddShard"]


@pytest.mark.parametrize("how", ["draining", "dropped from shards[]"])
def test_a_shard_leaving_is_drained_then_the_cluster_is_at_goal(how: str) -> None:
    if how == "draining":
        goal = sharded_config(shards=3, draining=("sh2",))
    else:
        goal = sharded_config(shards=3)
        goal["sharding"][0]["shards"].pop()
    view = RouterView((shard(0), shard(1), shard(2, draining=True)), ())
    p = plans_for(goal, "router0", mongos0=router_running(goal, "mongos0", view))["mongos0"]
    assert moves_of(p) == ["RemoveShard"]
    assert p.current.command == {"removeShard": "sh2"} and not p.current.blocked
    gone = RouterView((shard(0), shard(1)), ())
    assert plans_for(goal, "router0", mongos0=router_running(goal, "mongos0", gone))["mongos0"].at_goal


def test_the_last_shard_is_never_removed() -> None:
    goal = sharded_config(shards=1, draining=("sh0",))
    view = RouterView((shard(0),), ())
    p = plans_for(goal, "router0", mongos0=router_running(goal, "mongos0", view))["mongos0"]
    assert moves_of(p) == ["RemoveShard"]
    assert p.current.blocked and p.current.command is None
    assert p.blocked_reason is not None and "last shard" in p.blocked_reason


def test_a_new_config_server_seed_list_does_not_restart_a_mongos_but_new_options_do() -> None:
    goal = sharded_config()
    seed = router_running(goal, "mongos0", RouterView((shard(0), shard(1)), ()))
    moved = replace(
        seed,
        observation=replace(
            seed.observation, args={**seed.observation.args, "sharding": {"configDB": "csrs/old:27017"}}
        ),
    )
    assert plans_for(goal, "router0", mongos0=moved)["mongos0"].at_goal
    other = router_running(goal, "mongos0", seed.router, setParameter={"a": 1}, net={"port": 27017, "x": 1})
    assert moves_of(plans_for(goal, "router0", mongos0=other)["mongos0"]) == ["Stop", "Start"]


def test_shard_keys_read_as_ops_manager_writes_them() -> None:
    assert shard_key([["a", 1], ["b", "hashed"]]) == {"a": 1, "b": "hashed"}
    assert shard_key({"a": 1}) == {"a": 1}
    for bad in ([], [["a"]], "a", None, [[1, 1]]):
        assert shard_key(bad) is None
    goal = sharded_config()
    goal["sharding"][0]["collections"] = [{"_id": "app.bad", "key": [["a"]]}]
    view = RouterView((shard(0), shard(1)), ())
    p = plans_for(goal, "router0", mongos0=router_running(goal, "mongos0", view))["mongos0"]
    assert moves_of(p) == ["ShardCollection"] and p.current.blocked


def test_a_stopped_mongos_no_longer_in_the_config_is_stopped() -> None:
    goal = sharded_config()
    old = router_running(goal, "mongos0", RouterView((), ()))
    goal["processes"] = [p for p in goal["processes"] if p["name"] != "mongos0"]
    p = plans_for(goal, "router0", mongos0=old)["mongos0"]
    assert moves_of(p) == ["Stop"]

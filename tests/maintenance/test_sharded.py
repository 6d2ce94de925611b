"""The decisions of a sharded cluster's rolling maintenance, without any process: what a config change
covers, which replica set may go next, the balancer's mode, the cluster's own steps, and a shard member's
standalone options."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.maintenance.moves import (
    Blocked,
    ClusterMove,
    ClusterMoveName,
    ClusterProgress,
    Done,
    record_cluster,
)
from opsmgr.maintenance.rolling import Task, process_tasks, rolling_changes
from opsmgr.maintenance.sharded import (
    ClusterChange,
    ShardedPolicy,
    balancer_should_run,
    cluster_changes,
    gate,
    layout_of_set,
    layouts,
    next_cluster_move,
    turn,
)
from opsmgr.maintenance.snapshot import standalone_args
from opsmgr.maintenance.wire import cluster_key, cluster_name
from tests.maintenance.sharded_configs import (
    CLUSTER,
    CONFIG_RS,
    MONGOS,
    SHARDS,
    edited,
    set_version,
    sharded_config,
)

ALL_SETS = (CONFIG_RS, *SHARDS)
NONE: frozenset[str] = frozenset()


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, ClusterChange]:
    return cluster_changes(old, new, rolling_changes(old, new))


def _upgrade() -> ClusterChange:
    base = sharded_config()
    return _changes(base, edited(base, set_version("7.0.6")))[CLUSTER]


def _stopped(was: str = "full") -> ClusterProgress:
    return ClusterProgress(balancer_was=was, seq=1)


# --- the layout and what a change covers --------------------------------------------------------------------


def test_layout_names_the_config_servers_the_shards_in_order_and_the_mongos() -> None:
    [layout] = layouts(sharded_config())
    assert (layout.name, layout.config_rs, layout.shards, layout.mongos) == (
        CLUSTER,
        CONFIG_RS,
        SHARDS,
        MONGOS,
    )
    assert layout_of_set(sharded_config(), "shB") == layout
    assert layout_of_set(sharded_config(), "elsewhere") is None


def test_a_version_change_covers_every_set_config_servers_first_and_every_mongos() -> None:
    change = _upgrade()
    assert change.sets == ALL_SETS
    assert change.mongos == {m: frozenset({Task.CHANGE_VERSION}) for m in MONGOS}
    assert "mongos0: version 7.0.5 -> 7.0.6" in change.reasons
    assert ClusterChange.from_json(change.to_json()) == change


def test_an_args_change_of_one_shard_covers_that_shard_only() -> None:
    base = sharded_config()

    def edit(c: dict[str, Any]) -> None:
        for p in c["processes"]:
            if p["name"].startswith("shB_"):
                p["args2_6"]["operationProfiling"] = {"mode": "slowOp"}

    change = _changes(base, edited(base, edit))[CLUSTER]
    assert (change.sets, change.mongos) == (("shB",), {})


def test_a_mongos_args_change_restarts_that_mongos_only_and_a_runtime_parameter_restarts_none() -> None:
    base = sharded_config()

    def edit(c: dict[str, Any]) -> None:
        c["processes"][-1]["args2_6"]["net"]["maxIncomingConnections"] = 500
        c["processes"][-2]["args2_6"]["setParameter"] = {"logLevel": 1}

    change = _changes(base, edited(base, edit))[CLUSTER]
    assert (change.sets, change.mongos) == ((), {"mongos1": frozenset({Task.CHANGE_ARGS})})
    before, after = base["processes"][-2], edited(base, edit)["processes"][-2]
    assert process_tasks(base, edited(base, edit), before, after) == (frozenset(), ())


def test_no_change_and_a_new_cluster_roll_nothing() -> None:
    base = sharded_config()
    assert _changes(base, base) == {}
    bare = {"processes": [], "replicaSets": []}
    assert _changes(bare, sharded_config()) == {}


# --- which set may go next ----------------------------------------------------------------------------------


def test_nothing_goes_down_before_the_balancer_is_stopped() -> None:
    change = _upgrade()
    for rs in ALL_SETS:
        reason = gate(change, ClusterProgress(), rs, NONE, NONE, ShardedPolicy())
        assert reason is not None and "balancer" in reason


def test_config_servers_first_then_the_shards_one_at_a_time_in_order() -> None:
    change, progress, policy = _upgrade(), _stopped(), ShardedPolicy()
    assert turn(change, NONE, NONE, policy) == (CONFIG_RS,)
    waiting = gate(change, progress, "shA", NONE, NONE, policy)
    assert waiting is not None and "config server replica set cfg" in waiting
    done = frozenset({CONFIG_RS})
    assert turn(change, done, NONE, policy) == ("shA",)
    blocked = gate(change, progress, "shB", done, frozenset({"shA"}), policy)
    assert blocked is not None and "shA under way" in blocked and "parallelShards=1" in blocked
    assert gate(change, progress, "shB", done | {"shA"}, NONE, policy) is None
    assert turn(change, frozenset(ALL_SETS), NONE, policy) == ()


def test_parallel_shards_lets_n_shards_go_at_once() -> None:
    change, policy = _upgrade(), ShardedPolicy(parallel_shards=2)
    done = frozenset({CONFIG_RS})
    assert turn(change, done, NONE, policy) == ("shA", "shB")
    assert turn(change, done | {"shA"}, frozenset({"shB"}), policy) == ("shB", "shC")


def test_a_set_already_begun_keeps_its_turn() -> None:
    """A later config can put the config servers back in the change: a shard under way is not stopped."""
    change = _upgrade()
    assert turn(change, NONE, frozenset({"shC"}), ShardedPolicy()) == (CONFIG_RS, "shC")


def test_a_set_outside_the_change_or_done_never_waits() -> None:
    change = _changes(sharded_config(), edited(sharded_config(), set_version("7.0.6", where=_in("shB"))))
    [only] = change.values()
    assert gate(only, ClusterProgress(), "shA", NONE, NONE, ShardedPolicy()) is None
    assert gate(only, ClusterProgress(), "shB", frozenset({"shB"}), NONE, ShardedPolicy()) is None


def _in(rs: str) -> Any:
    return lambda p: p["name"].startswith(f"{rs}_")


# --- the cluster's own steps --------------------------------------------------------------------------------


def test_the_whole_cluster_sequence() -> None:
    change, progress = _upgrade(), ClusterProgress()
    first = next_cluster_move(change, progress, NONE, MONGOS)
    assert isinstance(first, ClusterMove) and first.name is ClusterMoveName.STOP_BALANCER
    assert first.actor == "mongos0" and first.params == {"running": False}
    progress = record_cluster(progress, ClusterMove(first.name, first.actor, "", {"balancerWas": "full"}))
    assert balancer_should_run(change, progress, NONE) is False
    waiting = next_cluster_move(change, progress, frozenset({CONFIG_RS}), MONGOS)
    assert isinstance(waiting, Blocked) and "shA, shB, shC" in waiting.reason
    done = frozenset(ALL_SETS)
    for name in MONGOS:
        step = next_cluster_move(change, progress, done, MONGOS)
        assert isinstance(step, ClusterMove) and (step.name, step.actor) == (
            ClusterMoveName.RESTART_MONGOS,
            name,
        )
        progress = record_cluster(progress, step)
    assert balancer_should_run(change, progress, done) is True
    last = next_cluster_move(change, progress, done, ("mongos1",))
    assert isinstance(last, ClusterMove) and last.name is ClusterMoveName.RESTORE_BALANCER
    assert (last.actor, last.params) == ("mongos1", {"running": True})
    progress = record_cluster(progress, last)
    assert progress.restored and progress.seq == 4
    assert isinstance(next_cluster_move(change, progress, done, MONGOS), Done)
    assert ClusterProgress.from_json(progress.to_json()) == progress


def test_a_balancer_that_was_off_stays_off() -> None:
    change, done = _upgrade(), frozenset(ALL_SETS)
    progress = ClusterProgress(balancer_was="off", mongos_done=MONGOS, seq=3)
    last = next_cluster_move(change, progress, done, MONGOS)
    assert isinstance(last, ClusterMove) and last.params == {"running": False}


def test_no_running_mongos_blocks_the_balancer_steps() -> None:
    decision = next_cluster_move(_upgrade(), ClusterProgress(), NONE, ())
    assert isinstance(decision, Blocked) and "waiting for a mongos of sh0 to run" in decision.reason


def test_a_step_repeated_changes_nothing() -> None:
    stop = ClusterMove(ClusterMoveName.STOP_BALANCER, "mongos0", "", {"balancerWas": "full"})
    once = record_cluster(ClusterProgress(), stop)
    again = ClusterMove(ClusterMoveName.STOP_BALANCER, "mongos1", "", {"balancerWas": "off"})
    assert record_cluster(once, again) is once and once.balancer_was == "full"
    restart = ClusterMove(ClusterMoveName.RESTART_MONGOS, "mongos0", "")
    twice = record_cluster(record_cluster(once, restart), restart)
    assert twice.mongos_done == ("mongos0",) and twice.seq == 2
    assert ClusterMove.from_json(restart.to_json()) == restart


# --- a shard member's standalone restart --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["shardsvr", "configsvr"])
def test_a_shard_or_config_server_member_restarts_standalone_without_its_role(role: str) -> None:
    args = {"net": {"port": 27017}, "sharding": {"clusterRole": role}, "setParameter": {"logLevel": 1}}
    out = standalone_args(args)
    assert "sharding" not in out
    assert out["setParameter"] == {
        "logLevel": 1,
        "skipShardingConfigurationChecks": True,
        "disableLogicalSessionCacheRefresh": True,
    }
    assert args["sharding"] == {"clusterRole": role}  # not mutated
    kept = standalone_args({"sharding": {"clusterRole": role, "archiveMovedChunks": False}})
    assert kept["sharding"] == {"archiveMovedChunks": False}


def test_a_plain_member_restarts_standalone_as_it_is() -> None:
    args = {"net": {"port": 27017}, "replication": {"replSetName": "rs0"}}
    assert standalone_args(args) == args


def test_route_keys() -> None:
    assert cluster_name(cluster_key("sh0")) == "sh0"
    assert cluster_name("rs0") is None


def test_the_next_mongos_waits_for_the_last_one_to_run_again() -> None:
    change, done = _upgrade(), frozenset(ALL_SETS)
    progress = ClusterProgress(balancer_was="full", mongos_done=("mongos0",), seq=2)
    waiting = next_cluster_move(change, progress, done, ("mongos1",))
    assert isinstance(waiting, Blocked) and "mongos0 to run again" in waiting.reason
    step = next_cluster_move(change, progress, done, MONGOS)
    assert isinstance(step, ClusterMove) and step.actor == "mongos1"

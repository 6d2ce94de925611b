"""A sharded cluster's rolling change through the maintenance service over a real application database,
without any process: registered with its sets' changes by the config PUT, the balancer stopped before any
member goes down (leases refused until then), the config servers first, the shards one at a time, the mongos
one at a time, the balancer set back, and the records of the cluster and of each set."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opsmgr.automation.status import StatusReport
from opsmgr.errors import Conflict, InvalidInput
from opsmgr.maintenance.leases import Deny, Grant
from opsmgr.maintenance.moves import ClusterMoveName, Move, MoveName, PlannedStep, Progress, Unit
from opsmgr.maintenance.wire import move_to_json
from tests.maintenance.service_world import G, World
from tests.maintenance.sharded_configs import (
    CONFIG_RS,
    MONGOS,
    SHARDS,
    edited,
    host,
    set_version,
    sharded_config,
)

KEY = "cluster:sh0"
_CYCLE = (
    MoveName.ACQUIRE_LEASE,
    MoveName.RESTART_STANDALONE,
    MoveName.PERFORM_TASK,
    MoveName.RESTART_REPLSET,
    MoveName.RELEASE_LEASE,
)


def _report(w: World, rs: str) -> None:
    """Each member's agent reports it healthy (the last one primary)."""
    for i in range(3):
        name = f"{rs}_{i}"
        observed = {"running": True, "replicaStateName": "PRIMARY" if i == 2 else "SECONDARY"}
        report = StatusReport.model_validate({"processes": [{"name": name, "observed": observed}]})
        w.automation.record_status(G, host(name), report)


def _move(name: MoveName, member: str, *, first: bool = False) -> dict[str, Any]:
    plan = tuple(PlannedStep(m, member) for m in _CYCLE) if first else ()
    return move_to_json(Move(name, member, member, "", unit=Unit.MEMBER if first else None, plan=plan))


def _finish(w: World, rs: str) -> None:
    """Every member's cycle carried out through the service, as the agents would, then Done."""
    _report(w, rs)
    for i in range(3):
        member = f"{rs}_{i}"
        doc = w.service.active_doc(G, rs)
        assert doc is not None
        seq = Progress.from_json(doc["progress"]).seq
        first = _move(MoveName.ACQUIRE_LEASE, member, first=True)
        granted = w.service.acquire(G, rs, member, change_id=doc["changeId"], move=first, seq=seq)
        assert isinstance(granted, Grant), granted
        for name in _CYCLE[1:]:
            w.clock.t += 1
            w.service.record(G, rs, doc["changeId"], _move(name, member))
    status = w.service.report(G, rs, doc["changeId"], decision={"kind": "done", "note": "done"})
    assert status["state"] == "DONE", status


def _step(w: World, expected: ClusterMoveName, actor: str, **params: Any) -> None:
    """The cluster's view asks for ``expected`` by ``actor``'s agent, which carries it out and reports it."""
    view = w.service.agent_view(G, KEY)
    decision = view["decision"]
    wanted = ("move", expected.value, actor)
    assert (decision["kind"], decision["name"], decision["actor"]) == wanted, decision
    move = {**decision, "params": {**decision["params"], **params}}
    w.clock.t += 1
    w.service.record(G, KEY, view["changeId"], move)


def _waiting(w: World, rs: str) -> str | None:
    return w.service.agent_view(G, rs)["cluster"]["waitingFor"]  # type: ignore[no-any-return]


@pytest.fixture
def upgrading(w: World) -> World:
    base = sharded_config()
    w.put(base)
    w.put(edited(base, set_version("7.0.6")))
    return w


def test_the_cluster_change_orders_its_sets_and_restores_the_balancer(upgrading: World) -> None:
    w = upgrading
    [cluster] = [c for c in w.service.changes(G) if c["type"] == "SHARDED_CLUSTER"]
    assert cluster["replicaSets"] == [CONFIG_RS, *SHARDS] and cluster["state"] == "RUNNING"
    assert set(cluster["tasks"]) == set(MONGOS) and cluster["replicaSet"] == KEY
    sets = [c for c in w.service.changes(G) if c.get("type") != "SHARDED_CLUSTER"]
    assert sorted(c["replicaSet"] for c in sets) == sorted([CONFIG_RS, *SHARDS])
    assert {c["cluster"] for c in sets} == {"sh0"}

    # Nothing goes down before the balancer is stopped: the set waits, and its lease is refused.
    _report(w, CONFIG_RS)
    assert "balancer of sh0" in str(_waiting(w, CONFIG_RS))
    denied = w.service.acquire(G, CONFIG_RS, "cfg_0")
    assert isinstance(denied, Deny) and "balancer of sh0" in denied.reason
    assert w.service.active_hosts(G)[KEY] == frozenset({host(m) for m in MONGOS})

    _step(w, ClusterMoveName.STOP_BALANCER, "mongos0", balancerWas="full")
    assert _waiting(w, CONFIG_RS) is None
    assert "config server replica set cfg" in str(_waiting(w, "shA"))
    _report(w, "shB")
    assert isinstance(w.service.acquire(G, "shB", "shB_0"), Deny)
    _finish(w, CONFIG_RS)
    [record] = [c for c in w.service.changes(G) if c["type"] == "SHARDED_CLUSTER"]
    assert record["progress"]["replicaSetsDone"] == [CONFIG_RS]
    assert record["reason"] == "sh0: the balancer is stopped; rolling shA, shB, shC"

    for i, shard in enumerate(SHARDS):
        assert _waiting(w, shard) is None
        assert all(f"{shard} under way" in str(_waiting(w, s)) for s in SHARDS[i + 1 :])
        _finish(w, shard)
    for name in MONGOS:
        _step(w, ClusterMoveName.RESTART_MONGOS, name)
    _step(w, ClusterMoveName.RESTORE_BALANCER, "mongos0")

    view = w.service.agent_view(G, KEY)
    assert view["active"] is False
    [done] = [c for c in w.service.changes(G) if c["type"] == "SHARDED_CLUSTER"]
    assert done["state"] == "DONE" and done["balancerWas"] == "full"
    assert done["report"]["mongosRestarted"] == list(MONGOS) and done["report"]["balancerOffSecs"] > 0
    assert w.service.change(G, done["id"])["cluster"] == "sh0"
    assert KEY not in w.service.active_hosts(G)


def test_a_step_out_of_turn_is_refused(upgrading: World) -> None:
    w = upgrading
    change_id = w.service.agent_view(G, KEY)["changeId"]
    early = {"name": "RestartMongos", "actor": "mongos1", "params": {}}
    with pytest.raises(Conflict, match="not the next step"):
        w.service.record(G, KEY, change_id, early)
    with pytest.raises(Conflict, match="not the one under way"):
        w.service.record(G, KEY, "another", {"name": "StopBalancer", "actor": "mongos0"})
    with pytest.raises(InvalidInput):
        w.service.record(G, KEY, change_id, {"name": "Explode", "actor": "mongos0"})
    _step(w, ClusterMoveName.STOP_BALANCER, "mongos0", balancerWas="off")
    # A stop repeated (its report lost and retried) changes nothing, not even the mode it read.
    w.service.record(G, KEY, change_id, {"name": "StopBalancer", "actor": "mongos1", "params": {}})
    assert w.service.agent_view(G, KEY)["progress"]["balancerWas"] == "off"


def test_a_later_config_that_undoes_the_change_still_sets_the_balancer_back(upgrading: World) -> None:
    w = upgrading
    _step(w, ClusterMoveName.STOP_BALANCER, "mongos0", balancerWas="full")
    w.put(sharded_config())  # back to 7.0.5: nothing rolls any more
    view = w.service.agent_view(G, KEY)
    assert view["active"] and view["change"]["replicaSets"] == [] and view["change"]["mongos"] == {}
    assert view["decision"]["name"] == "RestoreBalancer" and view["decision"]["params"] == {"running": True}


def test_a_config_that_drops_the_cluster_ends_its_change(upgrading: World) -> None:
    w = upgrading
    plain = copy.deepcopy(sharded_config(version="7.0.6"))
    plain["sharding"] = []
    plain["processes"] = [p for p in plain["processes"] if p["processType"] != "mongos"]
    for p in plain["processes"]:
        p["args2_6"].pop("sharding", None)
    w.put(plain)
    assert w.service.agent_view(G, KEY)["active"] is False


def test_an_unchanged_cluster_registers_nothing(w: World) -> None:
    base = sharded_config()
    w.put(base)
    mongos_only = edited(base, set_version("7.0.6", where=lambda p: p["processType"] == "mongos"))
    w.put(mongos_only)
    [cluster] = [c for c in w.service.changes(G) if c["type"] == "SHARDED_CLUSTER"]
    assert cluster["replicaSets"] == [] and set(cluster["tasks"]) == set(MONGOS)


def test_a_set_rolled_back_by_a_later_config_stays_in_the_clusters_change(w: World) -> None:
    """shA's args change is done; a later config undoes it, so shA rolls again although it no longer differs
    from where the cluster's change started: the balancer stays off until that roll is done too."""
    base = sharded_config()

    def profile(c: dict[str, Any]) -> None:
        for p in c["processes"]:
            if p["name"].startswith("shA_"):
                p["args2_6"]["operationProfiling"] = {"mode": "slowOp"}

    w.put(base)
    w.put(edited(base, profile))
    _step(w, ClusterMoveName.STOP_BALANCER, "mongos0", balancerWas="full")
    _finish(w, "shA")
    w.put(base)
    view = w.service.agent_view(G, KEY)
    assert view["change"]["replicaSets"] == ["shA"]
    assert view["decision"]["kind"] == "blocked" and "shA" in view["decision"]["reason"]
    assert _waiting(w, "shA") is None
    _finish(w, "shA")
    _step(w, ClusterMoveName.RESTORE_BALANCER, "mongos0")
    assert w.service.agent_view(G, KEY)["active"] is False

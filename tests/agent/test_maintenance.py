"""The agent's maintenance executor against the sim driver, with the server's maintenance service behind a
fake client (``tests.agent.rolling_fleet``), in simulated time: each task's moves become the right driver
calls, at most one member is out at a time, one planned election, failures stop and resume, the temporary
arbiter comes and goes, leaving members are removed and shut down; plus the planner's side (processes handed
to the executor, runtime parameters set without a restart)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.agent.plan import LocalProcess, Move, Snapshot, plan, process_spec, runtime_parameters
from opsmgr.alerts import AlertStatus
from opsmgr.drivers.base import ProcessObservation, RunMode
from opsmgr.maintenance.snapshot import Policy
from tests.agent.rolling_fleet import RollingFleet


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[RollingFleet]:
    f = RollingFleet(tmp_path)
    try:
        f.deploy()
        yield f
    finally:
        f.close()


def _versions(f: RollingFleet) -> dict[str, tuple[str | None, RunMode | None]]:
    out = {}
    for p in f.goal["processes"]:
        obs = f.drivers[p["hostname"]].observe(p["name"])
        out[p["name"]] = (obs.version, obs.mode)
    return out


def _upgrade(config: dict[str, Any]) -> None:
    for p in config["processes"]:
        p["version"] = "7.0.6"


def test_a_version_change_rolls_one_member_at_a_time_with_one_election(fleet: RollingFleet) -> None:
    elections = fleet.view().elections
    warnings: set[str] = set()

    def done() -> bool:
        for entry in fleet.server.service.status_views("g0"):
            warnings.update(entry["warnings"])
        return (fleet.change() or {}).get("state") == "DONE"

    fleet.samples.clear()
    fleet.put(_upgrade)
    assert fleet.run_until(done, 900)
    change = fleet.change()
    assert change is not None
    # A 3-member set: one more failure while a member is out loses the majority; the remedies are named.
    assert any("temporary arbiter" in w and "5-member" in w for w in warnings), warnings
    assert max(s.out for s in fleet.samples) == 1
    assert all(s.majority for s in fleet.samples)
    assert fleet.view().elections - elections == 1
    assert change["report"]["plannedElections"] == 1 and change["report"]["elections"] == 1
    assert set(_versions(fleet).values()) == {("7.0.6", RunMode.REPLSET)}
    sentences = [o.sentence or "" for _, _, o in fleet.outcomes]
    assert any("RestartStandalone h0.sim:27017 (version 7.0.5 -> 7.0.6)" in s for s in sentences)
    shown = {step for _, _, o in fleet.outcomes for a in o.annotations.values() for step in a["plan"]}
    assert {"AcquireMaintenanceLease", "RestartStandalone", "PerformTask", "StepDown"} <= shown


def test_a_member_that_does_not_start_stops_the_change_until_it_is_healed(tmp_path: Path) -> None:
    f = RollingFleet(tmp_path, policy=Policy(default_out_s=30.0, member_timeout_s=20.0))
    try:
        f.deploy()
        primary = f.view().primary
        victim = next(p for p in f.goal["processes"] if f"{p['hostname']}:27017" != primary)
        f.world.fail_start(victim["hostname"], victim["name"])
        f.put(_upgrade)
        assert f.run_until(lambda: (c := f.change()) is not None and c["state"] == "FAILED", 120)
        assert victim["name"] in f.change()["reason"]  # type: ignore[index]
        (alert,) = f.server.alerts.of_group("g0", AlertStatus.OPEN)
        assert alert["processName"] == victim["name"]
        others = {n: v for n, v in _versions(f).items() if n != victim["name"]}
        assert set(others.values()) == {("7.0.5", RunMode.REPLSET)}, "the others are untouched"
        f.world.heal()
        assert f.run_until(lambda: f.change()["state"] == "DONE", 300)  # type: ignore[index]
        assert f.server.alerts.of_group("g0", AlertStatus.OPEN) == []
        assert set(_versions(f).values()) == {("7.0.6", RunMode.REPLSET)}
    finally:
        f.close()


def test_a_temporary_arbiter_holds_the_majority_and_is_removed_after(tmp_path: Path) -> None:
    f = RollingFleet(tmp_path, extra_hosts=("arb.sim",))
    try:
        f.deploy()

        def with_arbiter(config: dict[str, Any]) -> None:
            _upgrade(config)
            config["replicaSets"][0]["maintenance"] = {
                "temporaryArbiter": {"hostname": "arb.sim", "port": 27020}
            }

        seen_arbiter = []
        change = f.play(with_arbiter)
        seen_arbiter = [s for s in f.samples if s.out == 1]
        assert seen_arbiter and all(s.majority for s in f.samples)
        assert len(f.view().members) == 3, "the arbiter is removed from the set"
        assert not f.drivers["arb.sim"].observe("rs0_maintenance_arbiter").running
        assert change["report"]["plannedElections"] == 1
    finally:
        f.close()


def test_a_non_unique_index_is_built_on_every_member_while_standalone(fleet: RollingFleet) -> None:
    def index(config: dict[str, Any]) -> None:
        config["indexConfigs"] = [
            {"rsName": "rs0", "dbName": "app", "collectionName": "orders", "key": [["sku", 1]], "options": {}}
        ]

    change = fleet.play(index)
    assert set().union(*map(set, change["tasks"].values())) == {"buildIndex"}
    for p in fleet.goal["processes"]:
        keys = [ix["key"] for ix in fleet.drivers[p["hostname"]].list_indexes(p["name"], "app.orders")]
        assert {"sku": 1} in keys, p["name"]


def test_a_decommissioned_host_leaves_the_set_and_its_process_stops(tmp_path: Path) -> None:
    f = RollingFleet(tmp_path, members=4)
    try:
        f.deploy()
        leaving = f.goal["processes"][3]

        def drop(config: dict[str, Any]) -> None:
            config["processes"] = config["processes"][:3]
            config["replicaSets"][0]["members"] = config["replicaSets"][0]["members"][:3]

        change = f.play(drop)
        assert sorted(change["tasks"][leaving["name"]]) == ["decommissionHost", "removeProcess"]
        assert not f.drivers[leaving["hostname"]].observe(leaving["name"]).running
        assert len(f.view().members) == 3 and f.view().primary is not None
    finally:
        f.close()


# --- the planner's side -------------------------------------------------------------------------------------


def _running(spec_args: dict[str, Any], version: str = "7.0.5") -> LocalProcess:
    return LocalProcess(ProcessObservation("rs0_0", True, RunMode.REPLSET, 27017, version, spec_args))


def test_processes_of_a_set_under_maintenance_are_the_executors() -> None:
    from tests.configs import replica_set_config

    goal = replica_set_config(["h0.sim"])
    goal["version"] = 2
    spec = process_spec(goal["processes"][0])
    snap = Snapshot(
        {"rs0_0": _running(spec.args, "7.0.2")}, maintenance={"rs0_0": "rolling maintenance of rs0"}
    )
    (p,) = plan(snap, goal, "h0.sim")
    assert p.current.move is Move.ROLLING_MAINTENANCE and p.current.blocked
    (without,) = plan(Snapshot({"rs0_0": _running(spec.args, "7.0.2")}), goal, "h0.sim")
    waiting = next(s for s in without.steps if s.move is Move.CHANGE_VERSION)
    assert waiting.blocked and "rolling maintenance" in waiting.note


def test_runtime_parameters_are_set_without_a_restart() -> None:
    from tests.configs import replica_set_config

    goal = replica_set_config(["h0.sim"])
    spec = process_spec(goal["processes"][0])
    wanted = copy.deepcopy(spec.args)
    wanted["setParameter"] = {"logLevel": 2}
    assert runtime_parameters(spec.args, wanted) == {"logLevel": 2}
    assert runtime_parameters({**wanted, "setParameter": {"logLevel": 1, "x": 1}}, wanted) is None
    assert runtime_parameters(spec.args, {**wanted, "setParameter": {"enableFlowControl": False}}) is None
    goal["processes"][0]["args2_6"]["setParameter"] = {"logLevel": 2}
    (p,) = plan(Snapshot({"rs0_0": _running(spec.args)}), goal, "h0.sim")
    assert p.current.move is Move.SET_PARAMETER and p.current.parameters == {"logLevel": 2}


def test_a_member_that_crashes_while_waiting_its_turn_is_started_again(fleet: RollingFleet) -> None:
    fleet.put(_upgrade)
    assert fleet.run_until(
        lambda: len((fleet.change() or {}).get("progress", {}).get("membersDone", [])) == 1, 120
    )
    change = fleet.change()
    assert change is not None
    primary = fleet.view().primary
    waiting = next(
        p
        for p in fleet.goal["processes"]
        if p["name"] not in change["progress"]["membersDone"] and f"{p['hostname']}:27017" != primary
    )
    assert fleet.world.kill(waiting["hostname"], waiting["name"])
    fleet.tick()
    assert fleet.drivers[waiting["hostname"]].observe(waiting["name"]).running, "started again at once"
    assert fleet.run_until(lambda: fleet.change()["state"] == "DONE", 300)  # type: ignore[index]
    assert set(_versions(fleet).values()) == {("7.0.6", RunMode.REPLSET)}


def test_a_standalone_process_with_new_options_is_simply_restarted() -> None:
    from tests.configs import replica_set_config

    goal = replica_set_config(["h0.sim"])
    goal["replicaSets"] = []
    del goal["processes"][0]["args2_6"]["replication"]
    running = process_spec(goal["processes"][0])
    goal["processes"][0]["args2_6"]["net"]["maxIncomingConnections"] = 100
    obs = ProcessObservation("rs0_0", True, RunMode.STANDALONE, 27017, "7.0.5", running.args)
    (p,) = plan(Snapshot({"rs0_0": LocalProcess(obs)}), goal, "h0.sim")
    assert [s.move for s in p.steps] == [Move.STOP, Move.START, Move.GOAL]
    assert p.steps[1].spec is not None and p.steps[1].spec.args["net"]["maxIncomingConnections"] == 100

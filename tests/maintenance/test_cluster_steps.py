"""The agent's side of a sharded cluster's own steps (``agent.maintenance_driver.ClusterSteps``) with a fake
driver and a fake server: the step the server decided is carried out only by the agent of its mongos, as the
host's long action, and reported with the balancer's former mode; a failure is shown and retried; a stop
repeated after a lost report still reports the mode read before the first stop."""

from __future__ import annotations

import asyncio
from typing import Any

from opsmgr.agent.executor import LongActions
from opsmgr.agent.maintenance_driver import ClusterSteps, Look, MoveDriver
from opsmgr.agent.plan import LocalProcess, Snapshot
from opsmgr.drivers.base import BalancerState, ProcessObservation, ProcessSpec, RunMode
from opsmgr.errors import OpsmgrError
from tests.maintenance.sharded_configs import sharded_config

KEY = "cluster:sh0"
HOST = "mongos0.example.net"


class FakeRouterDriver:
    """A mongos whose balancer runs until stopped; ``fail`` makes the next sharding command raise."""

    def __init__(self) -> None:
        self.mode = "full"
        self.calls: list[tuple[str, Any]] = []
        self.fail = False

    def balancer_status(self, name: str) -> BalancerState:
        return BalancerState(self.mode, False)

    def set_balancer(self, name: str, *, running: bool) -> None:
        if self.fail:
            self.fail = False
            raise OpsmgrError("balancerStop timed out")
        self.calls.append(("set_balancer", running))
        self.mode = "full" if running else "off"

    def stop(self, name: str, *, force: bool = False) -> None:
        self.calls.append(("stop", name))

    def start(self, spec: ProcessSpec) -> None:
        self.calls.append(("start", spec))


class FakeApi:
    def __init__(self, *, lose: int = 0) -> None:
        self.posted: list[dict[str, Any]] = []
        self.lose = lose  # reports lost before one is recorded

    async def maintenance(self, method: str, key: str, path: str = "", **kw: Any) -> dict[str, Any]:
        if self.lose:
            self.lose -= 1
            raise OpsmgrError("server unreachable")
        self.posted.append({"method": method, "key": key, "path": path, **kw})
        return {}


def _snap() -> Snapshot:
    obs = ProcessObservation("mongos0", True, RunMode.STANDALONE, 27017, "7.0.5", process_type="mongos")
    return Snapshot({"mongos0": LocalProcess(obs)})


def _view(name: str, actor: str, **params: Any) -> dict[str, Any]:
    decision = {"kind": "move", "name": name, "actor": actor, "note": f"{name} by {actor}", "params": params}
    return {
        "changeId": "c1",
        "cluster": "sh0",
        "progress": {"balancerWas": None, "mongosDone": [], "restored": False, "seq": 0},
        "decision": decision,
        "names": {"mongos0": HOST, "mongos1": "mongos1.example.net"},
    }


def _steps(driver: FakeRouterDriver, api: FakeApi) -> tuple[ClusterSteps, LongActions]:
    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    long = LongActions(HOST)
    return ClusterSteps(HOST, MoveDriver(driver, call), long, api, lambda: 100.0), long


def _run(steps: ClusterSteps, long: LongActions, view: dict[str, Any]) -> tuple[tuple[str, ...], str, bool]:
    async def go() -> tuple[tuple[str, ...], str, bool]:
        out = steps.run(Look(KEY, view, _snap(), sharded_config(), None), may_act=True)
        await long.wait()
        return out

    return asyncio.run(go())


def test_the_agent_of_the_first_mongos_stops_the_balancer_and_reports_its_mode() -> None:
    driver, api = FakeRouterDriver(), FakeApi()
    steps, long = _steps(driver, api)
    owned, sentence, acted = _run(steps, long, _view("StopBalancer", "mongos0", running=False))
    assert acted and owned == ("mongos0",) and "StopBalancer by mongos0" in sentence
    assert driver.calls == [("set_balancer", False)]
    [report] = api.posted
    assert (report["method"], report["key"], report["path"]) == ("POST", KEY, "/progress")
    assert report["body"]["move"]["params"] == {"running": False, "balancerWas": "full"}


def test_another_hosts_step_is_not_carried_out_here() -> None:
    driver, api = FakeRouterDriver(), FakeApi()
    steps, long = _steps(driver, api)
    _, _, acted = _run(steps, long, _view("RestartMongos", "mongos1"))
    assert not acted and driver.calls == [] and api.posted == []


def test_a_failure_is_shown_and_the_step_retried() -> None:
    driver, api = FakeRouterDriver(), FakeApi()
    driver.fail = True
    steps, long = _steps(driver, api)
    view = _view("StopBalancer", "mongos0", running=False)
    _run(steps, long, view)
    assert api.posted == []
    _, sentence, _ = _run(steps, long, {**view, "decision": {"kind": "blocked", "reason": "x"}})
    assert "StopBalancer by mongos0 failed, will retry: balancerStop timed out" in sentence
    _run(steps, long, view)
    assert api.posted and driver.mode == "off"


def test_a_stop_repeated_after_a_lost_report_reports_the_mode_read_first() -> None:
    driver, api = FakeRouterDriver(), FakeApi(lose=1)
    steps, long = _steps(driver, api)
    view = _view("StopBalancer", "mongos0", running=False)
    _run(steps, long, view)  # stopped, but the report is lost: the server asks again
    _run(steps, long, view)
    [report] = api.posted
    assert report["body"]["move"]["params"]["balancerWas"] == "full"


def test_a_mongos_restarts_with_its_clusters_config_servers() -> None:
    driver, api = FakeRouterDriver(), FakeApi()
    steps, long = _steps(driver, api)
    _run(steps, long, _view("RestartMongos", "mongos0"))
    (_, stopped), (_, spec) = driver.calls
    assert stopped == "mongos0" and spec.process_type == "mongos"
    assert spec.args["sharding"]["configDB"].startswith("cfg/cfg-0.example.net:27017")

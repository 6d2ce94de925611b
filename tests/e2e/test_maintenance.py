"""Rolling maintenance end to end: a real server, one real ``opsmgr agent`` process per simulated host, every
task of the seed's list carried out as a rolling change on one replica set, watched from the simulated world
(never two members out at once, never a lost majority) and through the public API (the change's state,
reason and figures in ``/maintenance`` and ``automationStatus``, the alert of a member that does not come
back).

One module-scoped deployment carries the whole file: each task starts from the config the previous one left.
The server runs with a short maintenance policy (``OPSMGR_MAINTENANCE_POLICY``) so that failures show in
seconds; the sim's restarts take half a second.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import ServerProcess, free_port, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"m{i}.e2e.sim" for i in range(5)]
RS = "rs0"
POLICY = {
    "member_timeout_s": 6.0,
    "election_timeout_s": 30.0,
    "default_out_s": 5.0,
    "lease_ttl_s": 30.0,
    "step_down_secs": 10,
    "secondary_catch_up_period_secs": 5,
}
HEALTHY = {"PRIMARY", "SECONDARY", "ARBITER"}
AUTH_KEY = "c2VjcmV0a2V5ZmlsZWNvbnRlbnQ="


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        tmp_path_factory.mktemp("server") / "data",
        free_port(),
        env={"OPSMGR_MAINTENANCE_POLICY": json.dumps(POLICY)},
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


@dataclass
class Watch:
    """Samples the simulated replica set while a change runs: the most members of the set out at once and
    whether a majority of votes was ever missing."""

    world: SimWorld
    most_out: int = 0
    lost_majority: list[str] = field(default_factory=list)
    samples: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        for view in self.world.replica_sets():
            if view.name != RS:
                continue
            members = [m for m in view.members if not m.arbiter]
            out = [m for m in members if m.state.value not in HEALTHY]
            self.most_out = max(self.most_out, len(out))
            votes = sum(m.votes for m in view.members)
            up = sum(m.votes for m in view.members if m.state.value in HEALTHY)
            if up < votes // 2 + 1:
                self.lost_majority.append(f"{up}/{votes} at {time.time():.1f}")
            self.samples += 1

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self.sample()
            except Exception:  # a busy world file: the next sample will do
                continue


class Maintained:
    """The module's deployment: a 3-member set on the first three hosts, plus helpers to change it and to
    follow its rolling changes."""

    def __init__(self, deployment: Deployment, root: Path) -> None:
        self.d = deployment
        self.world = SimWorld.open(root / "world.sqlite")
        self.config = replica_set_config(HOSTS[:3], RS, "7.0.5")

    def set_view(self) -> Any:
        return next(v for v in self.world.replica_sets() if v.name == RS)

    def changes(self) -> list[dict[str, Any]]:
        r = self.d.api.get(f"/groups/{self.d.group_id}/maintenance")
        assert r.status_code == 200, r.text
        return list(r.json()["results"])

    def latest(self) -> dict[str, Any] | None:
        changes = [c for c in self.changes() if c["replicaSet"] == RS]
        return max(changes, key=lambda c: c["created"] or 0) if changes else None

    def put(self, mutate: Callable[[dict[str, Any]], None]) -> int:
        config = copy.deepcopy(self.config)
        mutate(config)
        version = self.d.put(config)
        self.config = config
        return version

    def roll(
        self, mutate: Callable[[dict[str, Any]], None], members: int = 3
    ) -> tuple[dict[str, Any], Watch]:
        """PUT the change and watch it until the rolling change is DONE and the deployment at goal."""
        before = {c["id"] for c in self.changes()}
        watch = Watch(self.world)
        thread = threading.Thread(target=watch.run, daemon=True)
        thread.start()
        try:
            version = self.put(mutate)
            change = wait_for(
                lambda: next((c for c in self.changes() if c["id"] not in before), None), 10, what="a change"
            )
            done = self.wait_state(change["id"], "DONE", 60)
            self.d.wait_goal(version, members)
        finally:
            watch.stop.set()
            thread.join(5)
        return done, watch

    def change(self, change_id: str) -> dict[str, Any]:
        r = self.d.api.get(f"/groups/{self.d.group_id}/maintenance/{change_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_state(self, change_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
        try:
            return dict(wait_for(lambda: (c := self.change(change_id))["state"] == state and c, timeout, 0.2))
        except AssertionError:
            logs = "\n".join(f"--- {h}\n{a.log()[-4000:]}" for h, a in self.d.agents.items())
            raise AssertionError(f"change not {state}: {self.change(change_id)}\n{logs}") from None


@pytest.fixture(scope="module")
def rs(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Maintained]:
    root = tmp_path_factory.mktemp("fleet")
    d = Deployment(server, owner, root, "maintenance")
    try:
        for host in HOSTS:
            d.agent(host)
        m = Maintained(d, root)
        d.wait_goal(d.put(m.config), 3)
        yield m
    finally:
        d.close()


def _all(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        for p in config["processes"]:
            p[key] = value

    return mutate


def _args(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        for p in config["processes"]:
            node = p["args2_6"]
            *parents, leaf = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value

    return mutate


def _version(config: dict[str, Any]) -> None:
    _all("version", "7.0.6")(config)


TASKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "version": _version,
}


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_rolls_one_member_at_a_time_with_one_election(rs: Maintained, task: str) -> None:
    elections = rs.set_view().elections
    done, watch = rs.roll(TASKS[task])
    assert watch.samples > 5
    assert watch.most_out == 1, "exactly one member out at a time"
    assert watch.lost_majority == []
    assert rs.set_view().elections - elections == 1
    report = done["report"]
    assert report["plannedElections"] == 1 and report["elections"] == 1, report
    assert done["progress"]["stepsDone"] == done["progress"]["stepsTotal"]
    assert set(report["memberSecsOut"]) == {f"{RS}_{i}" for i in range(3)}
    step_down = report["stepDowns"][0]
    assert step_down["noWritablePrimarySecs"] is not None and step_down["noWritablePrimarySecs"] < 10

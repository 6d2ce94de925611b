"""The agent's part in unique index builds on a simulated replica set (fake clock): per host, as each host's
agent runs them, the index-build worker (the oplog watch, the lock, asking for its member's step) and the
maintenance executor (the member steps, as one-member rolling changes), against the server's real build and
maintenance services (the build routes over an in-memory transport, the maintenance routes in process)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.agent.executor import LongActions
from opsmgr.agent.index_build import IndexBuildWorker
from opsmgr.agent.maintenance import MaintenanceExecutor
from opsmgr.agent.observe import read_snapshot
from opsmgr.agent.runtime import Runtime
from opsmgr.alerts import AlertService
from opsmgr.automation.config import processes_on_host
from opsmgr.automation.templates import replica_set_config
from opsmgr.drivers.base import CommandConflict, MemberState
from opsmgr.drivers.sim import SimDriver
from opsmgr.errors import OpsmgrError
from opsmgr.maintenance.index_service import IndexBuildService
from opsmgr.maintenance.leases import Deny
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.maintenance.snapshot import Policy
from opsmgr.server.maintenance_api import lease_answer
from opsmgr.store.engine import Store
from tests.agent.rolling_fleet import LocalApi
from tests.sim.cluster import Cluster, make_cluster

GROUP = "g" * 24
NS = "shop.orders"


class Harness:
    """A 3-member set, the build and maintenance services a server would run, and per host a worker and a
    maintenance executor sharing the host's long action."""

    def __init__(self, tmp_path: Path) -> None:
        self.cluster: Cluster = make_cluster(3)
        hosts = [self.cluster.host(i) for i in range(3)]
        self.goal = {**replica_set_config(hosts), "version": 1}
        for p in self.goal["processes"]:  # as the cluster started them
            p["args2_6"]["replication"]["oplogSizeMB"] = int(self.cluster.oplog_mb)
            p["version"] = self.cluster.version
        self.store = Store(f"sqlite:///{tmp_path / 'app.db'}")
        self.adopted: list[dict[str, Any]] = []
        self.maintenance = MaintenanceService(
            self.store,
            AlertService(self.store),
            goal=lambda _g: self.goal,
            statuses=lambda _g: self.statuses(),
            encrypt=lambda s: s,
            decrypt=lambda s: s,
            policy=Policy(member_timeout_s=30),
        )
        self.service = IndexBuildService(
            self.store,
            goal=lambda _g: self.goal,
            statuses=lambda _g: self.statuses(),
            write_goal=self.write_goal,
            maintenance=self.maintenance,
        )
        self.maintenance.on_step_done.append(self.service.step_done)
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        clock = self.cluster.clock
        self.drivers = {h: SimDriver(self.cluster.world, h) for h in hosts}
        longs = {h: LongActions(h, clock=clock.now) for h in hosts}
        self.workers = [
            IndexBuildWorker(
                Runtime(self.http, h, "http://server", GROUP, "key", offload=False), self.drivers[h], longs[h]
            )
            for h in hosts
        ]
        api = LocalApi(self.maintenance, GROUP)
        self.executors = {h: MaintenanceExecutor(api, self.drivers[h], h, long=longs[h]) for h in hosts}
        self.sentences: list[str] = []
        self.denials: list[str] = []
        self.grants: list[str] = []

    def write_goal(self, _group: str, config: dict[str, Any], version: int) -> None:
        assert version == self.goal["version"]
        self.adopted += config["indexConfigs"][len(self.goal.get("indexConfigs", [])) :]
        self.goal = {**config, "version": version + 1}

    def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.params["hostname"]
        try:
            if request.method == "GET":
                return httpx.Response(200, json={"builds": self.service.for_agent(GROUP)})
            build_id = request.url.path.split("/")[-2]
            if request.url.path.endswith("/step"):
                return self.take_step(request, build_id)
            return httpx.Response(
                200, json=self.service.on_event(GROUP, build_id, host, json.loads(request.content))
            )
        except OpsmgrError as exc:
            return httpx.Response(exc.http_status, json=exc.to_json())

    def take_step(self, request: httpx.Request, build_id: str) -> httpx.Response:
        """The server's step route, as ``server.index_builds_api`` answers it."""
        member = json.loads(request.content)["member"]
        decision = self.service.take_step(GROUP, build_id, member)
        if isinstance(decision, Deny):
            self.denials.append(decision.reason)
        answer = lease_answer(decision)  # a denial is the route's 409
        self.grants.append(member)
        return httpx.Response(200, json={**answer, "step": self.service.get(GROUP, build_id)["step"]})

    def statuses(self) -> list[dict[str, Any]]:
        out = []
        for i in range(3):
            try:
                status = self.cluster.world.rs_status(self.cluster.host(i), self.cluster.name(i))
            except OpsmgrError:  # down: its agent reports it not running
                status = None
            me = next((m for m in status.members if m.self), None) if status is not None else None
            observed: dict[str, Any] = {"running": status is not None}
            if status is not None and me is not None:
                observed.update(replicaStateName=status.my_state.value, optimeTs=me.optime_ts)
            out.append(
                {
                    "processes": [{"name": self.cluster.name(i), "observed": observed}],
                    "receivedAt": int(time.time() * 1000),
                }
            )
        return out

    async def step(self, worker: IndexBuildWorker, *, at_goal: bool = True) -> str | None:
        """One cycle of ``worker``'s host: its maintenance executor (whose sentence is kept), then the
        worker's step (whose sentence is returned). A long move runs to its end (on the simulated clock it
        takes no time)."""
        host, goal = worker.hostname, self.goal
        names = [p["name"] for p in processes_on_host(goal, host)]
        snap = read_snapshot(self.drivers[host], names, frozenset(), oplog_windows=True)
        active = frozenset(self.maintenance.active_sets(GROUP))
        rolling = await self.executors[host].cycle(snap, goal, int(goal["version"]), active)
        await worker.long.wait()
        if rolling.sentence:
            self.sentences.append(rolling.sentence)
        sentence = await worker.step(self.goal, at_goal=at_goal, active=True)
        await worker.long.wait()
        return sentence

    def start(self, key: str = "orderNo", *, lock: bool = False) -> str:
        body = {"rsName": "rs0", "dbName": "shop", "collectionName": "orders", "key": [[key, 1]]}
        build = self.service.create(GROUP, {**body, "lockPrimaryWrites": lock})
        self.service.confirm(GROUP, build["id"], {"writesStopped": True}, "tester")
        return str(build["id"])

    def rounds(
        self, build_id: str, *, until: set[str], limit: int = 40, between: Any = None
    ) -> dict[str, Any]:
        for n in range(limit):
            for w in self.workers:
                sentence = asyncio.run(self.step(w))
                if sentence:
                    self.sentences.append(sentence)
            if between is not None:
                between(n)
            self.cluster.run(1.0)
            build = self.service.get(GROUP, build_id)
            if build["state"] in until:
                return build
        raise AssertionError(f"{self.service.get(GROUP, build_id)}\n{self.sentences}")

    def write(self, doc: dict[str, Any]) -> None:
        self.cluster.world.write(self.cluster.set_id, NS, "i", doc)

    def unique_indexes(self) -> list[set[str]]:
        c = self.cluster
        return [
            {ix["name"] for ix in c.world.list_indexes(c.host(i), c.name(i), NS) if ix.get("unique")}
            for i in range(3)
        ]

    def assert_back_and_unlocked(self) -> None:
        c = self.cluster
        c.run_until(lambda: all(c.state(i) in (MemberState.PRIMARY, MemberState.SECONDARY) for i in range(3)))
        for i in range(3):
            obs = c.world.observe(c.host(i), c.name(i))
            assert (obs.mode, obs.port) == ("replset", 27017)
            with pytest.raises(CommandConflict, match="not locked"):
                c.world.fsync_unlock(c.host(i), c.name(i))


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    for i in range(5):
        h.write({"_id": i, "orderNo": i, "sku": "same"})
    h.cluster.run(2.0)
    try:
        yield h
    finally:
        asyncio.run(h.http.aclose())
        h.store.close()


def test_builds_member_by_member_with_the_primary_held(harness: Harness) -> None:
    primary = harness.cluster.name(harness.cluster.primary() or 0)
    build_id = harness.start(lock=True)
    done = harness.rounds(build_id, until={"DONE", "ABORTED"})
    assert done["state"] == "DONE", done
    assert done["members"][-1] == primary and done["built"] == done["members"]
    assert harness.unique_indexes() == [{"orderNo_1"}] * 3
    assert harness.adopted == [
        {
            "dbName": "shop",
            "collectionName": "orders",
            "rsName": "rs0",
            "key": [["orderNo", 1]],
            "options": {"unique": True, "name": "orderNo_1"},
        }
    ]
    text = "\n".join(harness.sentences)
    assert "LockWrites on " + primary in text and "UnlockWrites on " + primary in text
    assert "restarted standalone on port 37017" in text and f"stepped {primary} down" in text
    assert harness.cluster.name(harness.cluster.primary() or 0) != primary, "the former primary stepped down"
    harness.assert_back_and_unlocked()


def test_a_write_during_the_build_undoes_it_everywhere(harness: Harness) -> None:
    build_id = harness.start()

    def write_after_first_member(_n: int) -> None:
        if (
            harness.service.get(GROUP, build_id)["built"]
            and not harness.service.get(GROUP, build_id)["reason"]
        ):
            harness.write({"_id": 100, "orderNo": 100})

    aborted = harness.rounds(build_id, until={"ABORTED"}, between=write_after_first_member)
    assert "a write to shop.orders" in aborted["reason"]
    assert aborted["dropped"] and set(aborted["toDrop"]) <= set(aborted["dropped"])
    assert harness.unique_indexes() == [set()] * 3
    assert harness.adopted == []
    harness.assert_back_and_unlocked()


def test_a_member_refusing_the_index_aborts_with_its_message(harness: Harness) -> None:
    aborted = harness.rounds(harness.start("sku"), until={"ABORTED"})
    assert (
        "refused to build the unique index sku_1" in aborted["reason"]
        and "duplicate key" in aborted["reason"]
    )
    assert harness.unique_indexes() == [set()] * 3
    harness.assert_back_and_unlocked()


def test_waits_while_another_member_is_down(harness: Harness) -> None:
    c = harness.cluster
    build_id = harness.start()
    first = harness.service.get(GROUP, build_id)["members"][0]
    other = next(i for i in range(3) if c.name(i) not in (first, c.name(c.primary() or 0)))
    c.world.kill(c.host(other), c.name(other))
    c.run(15.0)
    worker = next(w for w in harness.workers if w.hostname == c.host(int(first[-1])))
    sentence = asyncio.run(harness.step(worker))
    # The server's lease decision, over the agents' reports, is what holds it back.
    assert sentence is not None and sentence.startswith("blocked:"), sentence
    assert (
        f"waits for the maintenance lease: another voting member is unavailable: {c.name(other)}" in sentence
    )
    assert c.world.observe(c.host(int(first[-1])), first).mode == "replset"
    assert harness.service.get(GROUP, build_id)["built"] == []
    held = asyncio.run(harness.step(worker, at_goal=False))
    assert held is not None and "waits for this host's processes to reach goal state" in held

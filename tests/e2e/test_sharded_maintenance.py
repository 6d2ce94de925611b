"""Rolling maintenance of a sharded cluster end to end: a real server, one real ``opsmgr agent`` process per
simulated host (sharing a sim world file), and a MongoDB version change of every process of a cluster of a
config server replica set, two shards (three members each, one per host) and two mongos.

While the agents roll the cluster, the test samples the sim world as an observer would: which members are out
of their set (standalone or down), with which start-up options, the balancer's mode and each mongos's
version. It asserts the issue's order: the balancer stopped before any member goes down and set back after
the last mongos, the config servers first, then one shard at a time, each member standalone without
``sharding.clusterRole`` and with ``skipShardingConfigurationChecks``, the mongos last, one at a time; and
the records: the cluster's and each set's, with one planned election per set.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsmgr.drivers.base import RunMode
from opsmgr.drivers.sim import SimDriver
from opsmgr.sim.model import SimParams
from opsmgr.sim.world import SimWorld
from tests.agent.sharded_helpers import sharded_config
from tests.deployments import Deployment
from tests.procs import ServerProcess, wait_for
from tests.sharded_support import agents_on_world, wait_goal

pytestmark = pytest.mark.e2e

HOSTS = [f"mshard{i}.e2e.sim" for i in range(3)]
SETS = ("csrs", "sh0", "sh1")
MONGOS = ("mongos0", "mongos1")
PARAMS = SimParams(balancer_round_s=0.5, migration_s=0.1, initial_chunks=4)
USERS = {"_id": "app.users", "key": [["uid", 1]], "unique": False}


@dataclass
class Sample:
    """One look at the world: the sets with a member out, the mongos versions, the balancer's mode."""

    t: float
    out: frozenset[str]
    mongos: dict[str, str | None]
    balancer: str | None
    bad_standalone: list[str] = field(default_factory=list)


class Sampler:
    """Looks at the sim world every 100 ms from a thread of the test, as a monitoring tool would."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            # The world may be busy (its file locked by an agent): the next look counts.
            with contextlib.suppress(Exception):
                self.samples.append(self._look())
            self._stop.wait(0.1)

    def _look(self) -> Sample:
        out: set[str] = set()
        bad: list[str] = []
        for rs in SETS:
            for i, host in enumerate(HOSTS):
                obs = self.world.observe(host, f"{rs}_{i}")
                if obs.running and obs.mode is RunMode.REPLSET:
                    continue
                out.add(rs)
                if obs.running and not _standalone_for_maintenance(obs.args):
                    bad.append(f"{rs}_{i}: {obs.args}")
        mongos = {m: self.world.observe(HOSTS[j], m).version for j, m in enumerate(MONGOS)}
        state = self.world.balancer_status(HOSTS[0], "mongos0") if mongos["mongos0"] else None
        return Sample(time.monotonic(), frozenset(out), mongos, state.mode if state else None, bad)


def _standalone_for_maintenance(args: dict[str, Any]) -> bool:
    params = args.get("setParameter") or {}
    role = (args.get("sharding") or {}).get("clusterRole")
    return role is None and params.get("skipShardingConfigurationChecks") is True


@pytest.fixture
def cluster(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Deployment, SimWorld]]:
    with agents_on_world(server, owner, tmp_path, request.node.name, HOSTS, PARAMS) as pair:
        yield pair


def _records(d: Deployment) -> list[dict[str, Any]]:
    return list(d.api.get(f"/groups/{d.group_id}/maintenance").json()["results"])


def _all_done(d: Deployment) -> bool:
    records = _records(d)
    return len(records) == len(SETS) + 1 and all(r["state"] == "DONE" for r in records)


def _first_out(samples: list[Sample], rs: str) -> float:
    return next(s.t for s in samples if rs in s.out)


def _last_out(samples: list[Sample], rs: str) -> float:
    return max(s.t for s in samples if rs in s.out)


def test_a_version_change_rolls_the_cluster_in_order(cluster: tuple[Deployment, SimWorld]) -> None:
    d, world = cluster
    base = sharded_config(2, routers=2, hosts=HOSTS, collections=[USERS])
    wait_goal(d, d.put(base), 60, interval=0.25)
    assert world.balancer_status(HOSTS[0], "mongos0").mode == "full"

    upgraded = sharded_config(2, routers=2, hosts=HOSTS, collections=[USERS], version="7.0.6")
    with Sampler(world) as sampler:
        version = d.put(upgraded)
        wait_goal(d, version, 120, interval=0.25)
        wait_for(lambda: _all_done(d), 30, interval=0.25, what="every record DONE")
    samples = sampler.samples
    assert len(samples) > 50

    # Members go down only while the balancer is stopped, one set at a time, in the order.
    assert all(s.balancer == "off" for s in samples if s.out), "a member was out with the balancer on"
    assert all(len(s.out) <= 1 for s in samples), [s.out for s in samples if len(s.out) > 1][:3]
    assert _last_out(samples, "csrs") < _first_out(samples, "sh0") < _first_out(samples, "sh1")
    assert _last_out(samples, "sh0") < _first_out(samples, "sh1")
    assert not [b for s in samples for b in s.bad_standalone], "a standalone member kept its cluster role"
    # The mongos last, one at a time, once every set is done; the balancer back on after them.
    upgraded_at = {m: next(s.t for s in samples if s.mongos[m] == "7.0.6") for m in MONGOS}
    assert _last_out(samples, "sh1") < upgraded_at["mongos0"] <= upgraded_at["mongos1"]
    # One router at a time: whenever mongos1 was seen down for its restart, mongos0 already ran upgraded. (A
    # sample between the two restarts is not asserted: the agents may restart mongos1 within one look.)
    mongos1_down = [s for s in samples if s.mongos["mongos1"] is None]
    assert all(s.mongos["mongos0"] == "7.0.6" for s in mongos1_down), "mongos1 went down before mongos0 ran"
    assert world.balancer_status(HOSTS[0], "mongos0").mode == "full"
    for i, host in enumerate(HOSTS):
        assert {SimDriver(world, host).observe(f"{rs}_{i}").version for rs in SETS} == {"7.0.6"}

    records = {r["replicaSet"]: r for r in _records(d)}
    whole = records["cluster:cluster0"]
    assert whole["type"] == "SHARDED_CLUSTER" and whole["replicaSets"] == list(SETS)
    assert whole["report"]["mongosRestarted"] == list(MONGOS) and whole["balancerWas"] == "full"
    for rs in SETS:
        part = records[rs]
        assert part["cluster"] == "cluster0" and sorted(part["progress"]["membersDone"]) == [
            f"{rs}_{i}" for i in range(3)
        ]
        assert part["report"]["plannedElections"] == 1, part["report"]

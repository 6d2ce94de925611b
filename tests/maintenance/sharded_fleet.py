"""A sharded cluster on the simulated world with simulated time, each host driven by the agent's maintenance
executor and the server's maintenance service in process behind a fake client (``tests.agent.rolling_fleet``'s
``InProcessServer``): a sharded cluster's rolling change played end to end without HTTP, for tests and the
benchmark.

The cluster is ``tests.agent.sharded_helpers.sharded_config``'s on three hosts (member ``i`` of the config
server set ``csrs`` and of every shard ``sh{k}`` on host ``i``, mongos ``j`` on host ``j``), brought up
directly through the sim driver (started, initiated, the mongos started, the shards added and ``app.users``
sharded, as the agents' planner does), with an optional write load through the routers. Per tick every
host's executor runs one cycle on a snapshot read through the sim driver, its status is reported to the
service, the world is sampled and the clock moves on by ``tick_s``.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsmgr.agent.executor import LongActions
from opsmgr.agent.maintenance import MaintenanceExecutor
from opsmgr.agent.observe import read_snapshot
from opsmgr.agent.plan import process_spec
from opsmgr.agent.sharding import initial_set_config, mongos_spec, replica_set_connection
from opsmgr.automation.config import processes_on_host
from opsmgr.drivers.base import RunMode
from opsmgr.drivers.sim import SimDriver
from opsmgr.maintenance.sharded import ShardedPolicy
from opsmgr.maintenance.snapshot import Policy
from opsmgr.sim.clock import FakeClock
from opsmgr.sim.model import SimParams, WriteLoad
from opsmgr.sim.world import SimWorld
from tests.agent.rolling_fleet import GROUP, HEALTHY, InProcessServer, Ticking
from tests.agent.sharded_helpers import CSRS, sharded_config

HOSTS = ("h0.sim", "h1.sim", "h2.sim")
USERS = {"_id": "app.users", "key": [["uid", 1]], "unique": False}
CLUSTER_KEY = "cluster:cluster0"


@dataclass(frozen=True)
class Sample:
    """One look at the world: per set, its members out and its primary; the balancer; each mongos's
    version; the writes through the routers so far; standalone members that kept their cluster role."""

    t: float
    out: dict[str, int]
    primaries: dict[str, str | None]
    balancer_on: bool
    mongos: dict[str, str | None]
    writes: int
    writes_failed: int
    kept_role: tuple[str, ...]

    @property
    def sets_out(self) -> frozenset[str]:
        return frozenset(rs for rs, n in self.out.items() if n)


@dataclass
class ShardedFleet(Ticking):
    root: Path
    shards: int = 3
    routers: int = 2
    tick_s: float = 0.5
    policy: Policy = field(default_factory=lambda: Policy(default_out_s=30.0))
    sharded: ShardedPolicy = field(default_factory=ShardedPolicy)
    params: SimParams = field(
        default_factory=lambda: SimParams(balancer_round_s=0.5, migration_s=0.1, initial_chunks=6)
    )
    write_load: WriteLoad | None = None
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = FakeClock()
        self.world = SimWorld.in_memory(clock=self.clock, params=self.params)
        self.server = InProcessServer(self.root, self.clock, self.policy, self.sharded)
        self.drivers = {h: SimDriver(self.world, h) for h in HOSTS}
        self.longs = {h: LongActions(h, clock=self.clock.now) for h in HOSTS}
        self.executors = {
            h: MaintenanceExecutor(
                self.server.api, self.drivers[h], h, long=self.longs[h], clock=self.clock.now
            )
            for h in HOSTS
        }
        self.sets = (CSRS, *(f"sh{k}" for k in range(self.shards)))
        self.mongos = tuple(f"mongos{j}" for j in range(self.routers))
        self.goal: dict[str, Any] = {}
        self.previous: dict[str, Any] | None = None

    def close(self) -> None:
        self.server.close()
        self.world.close()

    def config(self, version: str = "7.0.5") -> dict[str, Any]:
        return sharded_config(
            self.shards, routers=self.routers, hosts=list(HOSTS), collections=[USERS], version=version
        )

    # --- setting up -------------------------------------------------------------------------------------

    def deploy(self) -> None:
        """The cluster up as the agents' planner brings it up, then the write load through the routers."""
        self.goal = self.server.automation.put_config(GROUP, self.config())
        procs = self.goal["processes"]
        for p in procs:
            if p["processType"] == "mongod":
                self.drivers[p["hostname"]].start(process_spec(p))
        for rs in self.goal["replicaSets"]:
            first = next(p for p in procs if p["name"] == rs["members"][0]["host"])
            self.drivers[first["hostname"]].initiate(first["name"], initial_set_config(self.goal, rs))
        self.run_until(self.settled, 120)
        for p in procs:
            if p["processType"] == "mongos":
                self.drivers[p["hostname"]].start(mongos_spec(p, self.goal))
        self.run_until(lambda: False, 5)
        router = self.drivers[HOSTS[0]]
        for k in range(self.shards):
            router.add_shard("mongos0", f"sh{k}", replica_set_connection(self.goal, f"sh{k}"))
        router.shard_collection("mongos0", "app.users", {"uid": 1})
        if self.write_load is not None:
            self.world.set_cluster_write_load(CSRS, self.write_load)

    def settled(self) -> bool:
        views = self.world.replica_sets()
        return len(views) == len(self.sets) and all(
            v.primary is not None and all(m.state in HEALTHY for m in v.members) for v in views
        )

    def put(self, config: dict[str, Any]) -> int:
        """A public PUT: the previous goal becomes what the agents reached, the new one their goal."""
        self.previous = self.goal
        self.goal = self.server.automation.put_config(GROUP, copy.deepcopy(config))
        return int(self.goal["version"])

    # --- running ----------------------------------------------------------------------------------------

    async def _cycle(self, host: str) -> None:
        names = sorted(
            {p["name"] for p in processes_on_host(self.goal, host)}
            | {p["name"] for p in processes_on_host(self.previous or {}, host)}
        )
        routers = frozenset(n for n in names if n.startswith("mongos"))
        snap = read_snapshot(self.drivers[host], names, frozenset(), oplog_windows=True, routers=routers)
        self.server.report(host, snap)
        active = frozenset(self.server.service.active_hosts(GROUP))  # what the work list names
        await self.executors[host].cycle(snap, self.goal, int(self.goal["version"]), active, self.previous)
        await self.longs[host].wait()  # a long move takes no simulated time

    def tick(self) -> None:
        for host in HOSTS:
            asyncio.run(self._cycle(host))
        self.sample()
        self.clock.advance(self.tick_s)

    def sample(self) -> None:
        out, primaries = {}, {}
        for view in self.world.replica_sets():
            out[view.name] = sum(1 for m in view.members if not m.arbiter and m.state not in HEALTHY)
            primaries[view.name] = view.primary
        kept = []
        for p in self.goal["processes"]:
            obs = self.drivers[p["hostname"]].observe(p["name"])
            params = obs.args.get("setParameter") or {}
            standalone = obs.running and obs.mode is RunMode.STANDALONE and p["processType"] == "mongod"
            role = (obs.args.get("sharding") or {}).get("clusterRole")
            if standalone and (role is not None or params.get("skipShardingConfigurationChecks") is not True):
                kept.append(p["name"])
        mongos = {
            m: self.drivers[HOSTS[j % len(HOSTS)]].observe(m).version for j, m in enumerate(self.mongos)
        }
        clusters = self.world.sharded_clusters()  # none yet while the cluster is brought up
        on, writes, failed = (
            (clusters[0].balancer_on, clusters[0].writes, clusters[0].writes_failed)
            if clusters
            else (False, 0, 0)
        )
        self.samples.append(Sample(self.clock.now(), out, primaries, on, mongos, writes, failed, tuple(kept)))

    def records(self) -> dict[str, dict[str, Any]]:
        """The latest record of each set and of the cluster (``GET /groups/{id}/maintenance``'s)."""
        out: dict[str, dict[str, Any]] = {}
        for record in reversed(self.server.service.changes(GROUP)):
            out[record["replicaSet"]] = record
        return out

    def finished(self) -> bool:
        records = self.records()
        return CLUSTER_KEY in records and all(r["state"] == "DONE" for r in records.values())

    def play(self, config: dict[str, Any], within_s: float = 1800) -> dict[str, dict[str, Any]]:
        """PUT ``config`` and run until every record is DONE; returns the records."""
        self.samples.clear()
        self.put(config)
        assert self.run_until(self.finished, within_s), f"not done within {within_s} s: {self.records()}"
        return self.records()

"""A simulated sharded cluster on a fake clock, one process per host, built through the sim driver: a config
server replica set ``cfg``, shards ``sh0``, ``sh1``, ... (replica sets of the same names) and routers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsmgr.drivers.base import ProcessSpec
from opsmgr.drivers.sim import SimDriver
from opsmgr.sim.clock import Clock, FakeClock
from opsmgr.sim.model import SimParams
from opsmgr.sim.shardmodel import ShardedClusterView
from opsmgr.sim.world import SimWorld

PORT = 27017
CSRS = "cfg"


@dataclass
class Sharded:
    world: SimWorld
    clock: Clock
    members: int = 3
    drivers: dict[str, SimDriver] = field(default_factory=dict)

    def driver(self, host: str) -> SimDriver:
        if host not in self.drivers:
            self.drivers[host] = SimDriver(self.world, host)
        return self.drivers[host]

    @staticmethod
    def host(rs: str, i: int) -> str:
        return f"{rs}-{i}.sim"

    def hosts(self, rs: str) -> list[str]:
        return [f"{self.host(rs, i)}:{PORT}" for i in range(self.members)]

    def connection(self, rs: str) -> str:
        return f"{rs}/{','.join(self.hosts(rs))}"

    def member_spec(self, rs: str, i: int, role: str) -> ProcessSpec:
        args = {
            "net": {"port": PORT},
            "storage": {"dbPath": f"/data/{rs}_{i}"},
            "replication": {"replSetName": rs},
            "sharding": {"clusterRole": role},
        }
        return ProcessSpec(f"{rs}_{i}", self.host(rs, i), PORT, "7.0.14", args, rs, f"/data/{rs}_{i}")

    def start_set(self, rs: str, role: str) -> None:
        for i in range(self.members):
            self.driver(self.host(rs, i)).start(self.member_spec(rs, i, role))
        config = {"_id": rs, "members": [{"_id": i, "host": h} for i, h in enumerate(self.hosts(rs))]}
        if role == "configsvr":
            config["configsvr"] = True
        self.driver(self.host(rs, 0)).initiate(f"{rs}_0", config)
        self.run_until(lambda: self.primary(rs) is not None)

    def set_id(self, rs: str) -> int:
        set_id = self.world.set_id_of(self.host(rs, 0), f"{rs}_0")
        assert set_id is not None
        return set_id

    def primary(self, rs: str) -> str | None:
        return self.world.replica_set(self.set_id(rs)).primary

    def router_spec(self, i: int) -> ProcessSpec:
        args = {"net": {"port": PORT}, "sharding": {"configDB": self.connection(CSRS)}}
        return ProcessSpec(
            f"mongos_{i}", f"mongos-{i}.sim", PORT, "7.0.14", args, None, "", process_type="mongos"
        )

    def start_router(self, i: int) -> None:
        self.driver(f"mongos-{i}.sim").start(self.router_spec(i))

    def router(self, i: int = 0) -> tuple[SimDriver, str]:
        return self.driver(f"mongos-{i}.sim"), f"mongos_{i}"

    def add_shard(self, k: int) -> None:
        self.start_set(f"sh{k}", "shardsvr")
        d, name = self.router()
        d.add_shard(name, f"sh{k}", self.connection(f"sh{k}"))

    def view(self) -> ShardedClusterView:
        return self.world.sharded_cluster(CSRS)

    def run_until(self, cond: Callable[[], bool], *, within_s: float = 300.0, step_s: float = 0.5) -> float:
        start = self.clock.now()
        while not cond():
            if self.clock.now() - start > within_s:
                raise AssertionError(f"condition not met within {within_s} simulated seconds")
            self.clock.sleep(step_s)  # a fake clock moves; the system clock waits
            self.world.advance()
        return self.clock.now() - start

    def balanced(self) -> bool:
        v = self.view()
        return v.migration is None and all(
            max(c.values()) - min(c.values()) <= 1 for c in v.chunks.values() if c
        )

    def stop_set(self, rs: str) -> None:
        for i in range(self.members):
            self.world.kill(self.host(rs, i), f"{rs}_{i}")

    def restart_set(self, rs: str, role: str) -> None:
        for i in range(self.members):
            self.driver(self.host(rs, i)).start(self.member_spec(rs, i, role))

    def documents(self, rs: str) -> set[tuple[str, object]] | None:
        """(namespace, _id) of the user documents of each running member of ``rs`` (their union); None
        when none runs."""
        found: set[tuple[str, object]] | None = None
        for i in range(self.members):
            host, name = self.host(rs, i), f"{rs}_{i}"
            if not self.world.observe(host, name).running:
                continue
            dump = self.world.dump(host, name)
            found = {(ns, doc["_id"]) for ns, doc in dump if not ns.startswith("config.")} | (found or set())
        return found


def make_sharded(
    shards: int = 2,
    *,
    members: int = 3,
    routers: int = 1,
    params: SimParams | None = None,
    world: SimWorld | None = None,
    clock: FakeClock | None = None,
    **extra: Any,
) -> Sharded:
    """Config servers, ``shards`` shards and ``routers`` routers, every shard added."""
    clock = clock or FakeClock()
    world = world or SimWorld.in_memory(clock=clock, params=params or SimParams(noop_interval_s=0))
    s = Sharded(world=world, clock=clock, members=members, **extra)
    s.start_set(CSRS, "configsvr")
    for i in range(routers):
        s.start_router(i)
    for k in range(shards):
        s.add_shard(k)
    return s

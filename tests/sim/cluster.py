"""A simulated replica set on a fake clock, one process per host, driven through the sim driver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsmgr.drivers.base import MemberState, ProcessSpec
from opsmgr.drivers.sim import SimDriver
from opsmgr.sim.clock import FakeClock
from opsmgr.sim.model import ReplicaSetView, SimParams, WriteLoad
from opsmgr.sim.world import SimWorld

PORT = 27017
MAINTENANCE_PORT = 37017


@dataclass
class Cluster:
    world: SimWorld
    clock: FakeClock
    members: list[dict[str, Any]]
    set_name: str = "rs0"
    oplog_mb: float = 990.0
    version: str = "7.0.14"
    set_id: int = 0
    drivers: dict[str, SimDriver] = field(default_factory=dict)

    def host(self, i: int) -> str:
        return f"host{i}.sim"

    def name(self, i: int) -> str:
        return f"{self.set_name}_{i}"

    def addr(self, i: int) -> str:
        return f"{self.host(i)}:{PORT}"

    def index_of(self, addr: str) -> int:
        return next(i for i in range(len(self.members)) if self.addr(i) == addr)

    def driver(self, i: int) -> SimDriver:
        host = self.host(i)
        if host not in self.drivers:
            self.drivers[host] = SimDriver(self.world, host)
        return self.drivers[host]

    def spec(self, i: int, *, standalone: bool = False, oplog_mb: float | None = None) -> ProcessSpec:
        args: dict[str, Any] = {
            "net": {"port": MAINTENANCE_PORT if standalone else PORT},
            "storage": {"dbPath": f"/data/{self.name(i)}"},
            "replication": {"oplogSizeMB": oplog_mb or self.oplog_mb},
        }
        if not standalone:
            args["replication"]["replSetName"] = self.set_name
        return ProcessSpec(
            name=self.name(i),
            hostname=self.host(i),
            port=MAINTENANCE_PORT if standalone else PORT,
            version=self.version,
            args=args,
            repl_set_name=None if standalone else self.set_name,
            dbpath=f"/data/{self.name(i)}",
        )

    def start(self, i: int, **kw: Any) -> None:
        self.driver(i).start(self.spec(i, **kw))

    def config(self) -> dict[str, Any]:
        return {
            "_id": self.set_name,
            "members": [{"_id": i, "host": self.addr(i), **m} for i, m in enumerate(self.members)],
        }

    def view(self) -> ReplicaSetView:
        return self.world.replica_set(self.set_id)

    def primary(self) -> int | None:
        addr = self.view().primary
        return self.index_of(addr) if addr is not None else None

    def state(self, i: int) -> MemberState:
        return self.view().members[i].state

    def run_until(self, cond: Callable[[], bool], *, within_s: float = 120.0, step_s: float = 0.25) -> float:
        """Move the fake clock until ``cond()`` holds; the simulated seconds it took."""
        start = self.clock.now()
        while not cond():
            if self.clock.now() - start > within_s:
                raise AssertionError(f"condition not met within {within_s} simulated seconds")
            self.clock.advance(step_s)
        return self.clock.now() - start

    def run(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.world.advance()

    def set_load(self, **kw: Any) -> None:
        self.world.set_write_load(self.set_id, WriteLoad(**kw))


def last_ts(c: Cluster, i: int) -> int:
    """The newest entry of member ``i``'s oplog."""
    window = c.driver(i).oplog_window(c.name(i))
    assert window is not None
    return window.last_ts


def make_cluster(
    members: list[dict[str, Any]] | int = 3,
    *,
    oplog_mb: float = 990.0,
    params: SimParams | None = None,
    world: SimWorld | None = None,
    clock: FakeClock | None = None,
    settle: bool = True,
) -> Cluster:
    """Start every member, initiate from member 0 and (``settle``) wait for a primary and synced members."""
    clock = clock or FakeClock()
    world = world or SimWorld.in_memory(clock=clock, params=params)
    specs = [{} for _ in range(members)] if isinstance(members, int) else members
    c = Cluster(world=world, clock=clock, members=specs, oplog_mb=oplog_mb)
    for i in range(len(specs)):
        c.start(i)
    c.driver(0).initiate(c.name(0), c.config())
    set_id = world.set_id_of(c.host(0), c.name(0))
    assert set_id is not None
    c.set_id = set_id
    if settle:
        c.run_until(
            lambda: (
                c.view().primary is not None
                and all(
                    m.state in (MemberState.PRIMARY, MemberState.SECONDARY, MemberState.ARBITER)
                    for m in c.view().members
                )
            )
        )
    return c

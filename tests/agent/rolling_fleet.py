"""A replica set on the simulated world with simulated time, each host driven by the agent's maintenance
executor, the server's maintenance service in process behind a fake client: rolling changes played end to
end without HTTP, fast enough for property-style tests and benchmarks, and in simulated seconds.

Per tick every host's executor runs one cycle (as the agent loop would, on a snapshot read through the sim
driver), its status is reported to the service, and the clock moves on by ``tick_s``. Tests and benchmarks
drive it (``play``) and read the world (at most one member out, majority) and the service's figures.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsmgr.agent.executor import LongActions
from opsmgr.agent.maintenance import MaintenanceExecutor, Outcome
from opsmgr.agent.observe import read_snapshot
from opsmgr.agent.plan import Snapshot, initial_rs_config, process_spec
from opsmgr.alerts import AlertService
from opsmgr.automation.config import processes_on_host
from opsmgr.automation.service import AutomationService
from opsmgr.automation.templates import replica_set_config
from opsmgr.drivers.base import MemberState
from opsmgr.drivers.sim import SimDriver
from opsmgr.maintenance.rolling import validate_transition
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.maintenance.sharded import ShardedPolicy
from opsmgr.maintenance.snapshot import Policy
from opsmgr.server.maintenance_api import lease_answer
from opsmgr.sim.clock import FakeClock
from opsmgr.sim.model import SimParams, WriteLoad
from opsmgr.sim.world import SimWorld
from opsmgr.store.engine import Store
from opsmgr.timestamps import epoch_ms

GROUP = "g0"
HEALTHY = {MemberState.PRIMARY, MemberState.SECONDARY, MemberState.ARBITER}


class LocalApi:
    """The agent routes of ``server.maintenance_api``, answered in process by the service."""

    def __init__(self, service: MaintenanceService, group: str = GROUP) -> None:
        self.service = service
        self.group = group

    async def maintenance(
        self,
        method: str,
        rs_id: str,
        path: str = "",
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        s, b, group = self.service, body or {}, self.group
        if (method, path) == ("GET", ""):
            return s.agent_view(group, rs_id)
        if (method, path) == ("POST", "/lease"):
            decision = s.acquire(
                group, rs_id, b["member"], change_id=b.get("changeId"), move=b.get("move"), seq=b.get("seq")
            )
            return lease_answer(decision)
        if (method, path) == ("PUT", "/lease"):
            return lease_answer(s.renew(group, rs_id, b["member"]))
        if (method, path) == ("POST", "/progress"):
            return {
                "progress": s.record(
                    group,
                    rs_id,
                    b["changeId"],
                    b["move"],
                    seq=b.get("seq"),
                    at=b.get("at"),
                    connections=b.get("connections"),
                    refused=b.get("refused"),
                )
            }
        if (method, path) == ("POST", "/events"):
            status = s.report(
                group,
                rs_id,
                b["changeId"],
                decision=b.get("decision"),
                events=b.get("events", []),
                extras=b.get("extras"),
                from_primary=b.get("primary") is True,
            )
            return {"status": status}
        raise AssertionError(f"no route {method} {path}")


class InProcessServer:
    """The server's side of a fleet, in process on the fleet's simulated clock: the application database,
    automation (a PUT checked as the server checks it), alerts, the maintenance service reading the agents'
    status reports (:meth:`report`), and the agent routes it answers (``api``)."""

    def __init__(
        self, root: Path, clock: FakeClock, policy: Policy, sharded: ShardedPolicy | None = None
    ) -> None:
        self.clock = clock
        self.store = Store(f"sqlite:///{root / 'app.db'}", name="application database")
        self.automation = AutomationService(
            self.store, lambda s: s, lambda s: s, validate_transition=validate_transition
        )
        self.alerts = AlertService(self.store, clock=clock.now)
        self.reports: dict[str, dict[str, Any]] = {}
        self.service = MaintenanceService(
            self.store,
            self.alerts,
            goal=self.automation.config,
            statuses=lambda _g: list(self.reports.values()),
            encrypt=lambda s: s,
            decrypt=lambda s: s,
            policy=policy,
            sharded=sharded or ShardedPolicy(),
            clock=clock.now,
        )
        self.automation.on_config_change.append(self.service.register)
        self.api = LocalApi(self.service)

    def close(self) -> None:
        self.store.close()

    def report(self, host: str, snap: Snapshot) -> None:
        """The status the agent of ``host`` sends from ``snap`` (its processes as its loop reports them)."""
        processes = []
        for name, local in snap.processes.items():
            status = local.rs_status
            me = next((m for m in status.members if m.self), None) if status is not None else None
            processes.append(
                {
                    "name": name,
                    "observed": {
                        "running": local.observation.running,
                        "replicaStateName": status.my_state.value if status is not None else None,
                        "optimeTs": me.optime_ts if me is not None else None,
                        "connections": local.connections,
                    },
                }
            )
        self.reports[host] = {
            "hostname": host,
            "processes": processes,
            "receivedAt": int(self.clock.now() * 1000),
        }


@dataclass
class Sample:
    t: float
    out: int  # members of the set not healthy in it
    majority: bool
    primary: str | None


class Ticking:
    """A fleet that moves one :meth:`tick` at a time on its simulated ``clock``."""

    clock: FakeClock

    def tick(self) -> None:
        raise NotImplementedError

    def run_until(self, done: Callable[[], bool], within_s: float) -> bool:
        """Tick until ``done()`` or until ``within_s`` simulated seconds have passed; ``done()`` then."""
        deadline = self.clock.now() + within_s
        while self.clock.now() < deadline:
            if done():
                return True
            self.tick()
        return done()


@dataclass
class RollingFleet(Ticking):
    """``hosts`` sim hosts running one member each of ``rs0`` (``replica_set_config``)."""

    root: Path
    members: int = 3
    tick_s: float = 0.5
    policy: Policy = field(default_factory=lambda: Policy(default_out_s=30.0))
    write_load: WriteLoad | None = None
    extra_hosts: tuple[str, ...] = ()  # hosts without a member (a temporary arbiter's)
    params: SimParams = field(default_factory=SimParams)
    samples: list[Sample] = field(default_factory=list)
    outcomes: list[tuple[float, str, Outcome]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = FakeClock()
        self.world = SimWorld.in_memory(clock=self.clock, params=self.params)
        self.server = InProcessServer(self.root, self.clock, self.policy)
        self.hosts = [f"h{i}.sim" for i in range(self.members)] + list(self.extra_hosts)
        self.drivers = {h: SimDriver(self.world, h) for h in self.hosts}
        self.longs = {h: LongActions(h, clock=self.clock.now) for h in self.hosts}
        self.executors = {
            h: MaintenanceExecutor(
                self.server.api, self.drivers[h], h, long=self.longs[h], clock=self.clock.now
            )
            for h in self.hosts
        }
        self.config = replica_set_config(self.hosts[: self.members])
        self.previous: dict[str, Any] | None = None

    def close(self) -> None:
        self.server.close()
        self.world.close()

    # --- setting up -------------------------------------------------------------------------------------

    def deploy(self, config: dict[str, Any] | None = None) -> None:
        """Start every member and initiate the set (what the agents' planner does), then wait for a
        primary; the config is the project's goal, as a first PUT would make it."""
        self.config = copy.deepcopy(config or self.config)
        self.goal = self.server.automation.put_config(GROUP, copy.deepcopy(self.config))
        for p in self.goal["processes"]:
            self.drivers[p["hostname"]].start(process_spec(p))
        first = self.goal["processes"][0]
        self.drivers[first["hostname"]].initiate(
            first["name"], initial_rs_config(self.goal, self.goal["replicaSets"][0])
        )
        self.run_until(
            lambda: self.view().primary is not None and all(m.state in HEALTHY for m in self.view().members),
            120,
        )
        if self.write_load is not None:
            self.world.set_write_load(self.view().id, self.write_load)

    def settled(self) -> bool:
        return all(m.state in HEALTHY for m in self.view().members)

    def view(self) -> Any:
        return self.world.replica_sets()[0]

    def put(self, mutate: Callable[[dict[str, Any]], None]) -> int:
        """A public PUT: the previous goal becomes what the agents reached, the new one their goal."""
        config = copy.deepcopy(self.config)
        mutate(config)
        self.previous = self.goal
        self.goal = self.server.automation.put_config(GROUP, config)
        self.config = config
        return int(self.goal["version"])

    # --- running ----------------------------------------------------------------------------------------

    async def _cycle(self, host: str) -> None:
        names = sorted(
            {p["name"] for p in processes_on_host(self.goal, host)}
            | {p["name"] for p in processes_on_host(self.previous or {}, host)}
        )
        snap = read_snapshot(self.drivers[host], names, frozenset(), oplog_windows=True)
        self.server.report(host, snap)
        # What the agent's work list would name: the sets under a rolling change.
        active = frozenset(self.server.service.active_sets(GROUP))
        version = int(self.goal["version"])
        outcome = await self.executors[host].cycle(snap, self.goal, version, active, self.previous)
        # A long move runs beside the agent's cycles; on the simulated clock it takes no time at all.
        await self.longs[host].wait()
        self.outcomes.append((self.clock.now(), host, outcome))

    def tick(self) -> None:
        for host in self.hosts:
            asyncio.run(self._cycle(host))
        self.sample()
        self.clock.advance(self.tick_s)

    def sample(self) -> None:
        view = self.view()
        out = sum(1 for m in view.members if not m.arbiter and m.state not in HEALTHY)
        votes = sum(m.votes for m in view.members)
        up = sum(m.votes for m in view.members if m.state in HEALTHY)
        self.samples.append(Sample(self.clock.now(), out, up >= votes // 2 + 1, view.primary))

    def change(self) -> dict[str, Any] | None:
        changes = self.server.service.changes(GROUP)
        return max(changes, key=lambda c: epoch_ms(c["created"] or "1970-01-01")) if changes else None

    def play(self, mutate: Callable[[dict[str, Any]], None], within_s: float = 900) -> dict[str, Any]:
        """PUT the change and run until its rolling change is DONE; returns the change as the API lists it."""
        self.samples.clear()
        self.put(mutate)
        finished = self.run_until(lambda: (c := self.change()) is not None and c["state"] == "DONE", within_s)
        change = self.change()
        assert finished and change is not None, f"not done within {within_s} s: {change}"
        return change

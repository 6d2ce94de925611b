"""Play the rolling procedure against the simulated world through the sim driver, as an agent would: build
the snapshot from a member's ``replSetGetStatus``, carry each move out with driver calls, take leases with
the server's decision, and collect the report events. A test-side executor, kept small: the agent's own
executor is the agent's business."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsmgr.drivers.base import DriverError, MemberState, ProcessSpec
from opsmgr.drivers.sim import SimDriver
from opsmgr.maintenance.leases import Deny, LeaseRequest, LeaseState, MemberHealth, decide_grant, released
from opsmgr.maintenance.moves import (
    Blocked,
    Decision,
    Done,
    Move,
    MoveName,
    Progress,
    record,
    temporary_arbiter_name,
)
from opsmgr.maintenance.procedure import next_move
from opsmgr.maintenance.report import Event, events_between, events_for_move
from opsmgr.maintenance.rolling import MaintenanceOptions, RollingChange, Task
from opsmgr.maintenance.snapshot import (
    ObservedExtras,
    Policy,
    RsSnapshot,
    effective_window_s,
    maintenance_port,
    snapshot_from_status,
)
from tests.sim.cluster import PORT, Cluster

ARBITER_HOST = "arbiter.sim"


@dataclass
class SimPlay:
    cluster: Cluster
    change: RollingChange
    new_version: str
    options: MaintenanceOptions = field(default_factory=MaintenanceOptions)
    policy: Policy = field(default_factory=Policy)
    progress: Progress = field(default_factory=Progress)
    lease: LeaseState = field(default_factory=LeaseState)
    events: list[Event] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    down_at_once: int = 0
    performed: dict[str, tuple[Task, ...]] = field(default_factory=dict)

    @property
    def arbiter(self) -> str:
        return temporary_arbiter_name(self.cluster.set_name)

    def index(self, name: str) -> int:
        return next(i for i in range(len(self.cluster.members)) if self.cluster.name(i) == name)

    def spec(self, name: str, *, standalone: bool) -> ProcessSpec:
        c = self.cluster
        if name == self.arbiter:
            host, port, version = ARBITER_HOST, PORT, c.version
        else:
            host, port = c.host(self.index(name)), PORT
            version = self.new_version if name in self.performed else c.version
        if standalone:
            port = maintenance_port(port, self.policy)
        args: dict[str, Any] = {"net": {"port": port}, "storage": {"dbPath": f"/data/{name}"}}
        if not standalone:
            args["replication"] = {"replSetName": c.set_name}
        return ProcessSpec(
            name, host, port, version, args, None if standalone else c.set_name, f"/data/{name}"
        )

    def driver_of(self, name: str) -> SimDriver:
        c = self.cluster
        return _arbiter_driver(c) if name == self.arbiter else c.driver(self.index(name))

    def snapshot(self) -> RsSnapshot:
        c = self.cluster
        views = []
        for i in range(len(c.members)):
            try:
                status = c.driver(i).rs_status(c.name(i))
            except DriverError:
                continue
            if status is not None:
                views.append((status.my_state is not MemberState.PRIMARY, i, status))
        names = {c.addr(i): c.name(i) for i in range(len(c.members))} | {
            f"{ARBITER_HOST}:{PORT}": self.arbiter
        }
        if not views:
            return RsSnapshot(c.set_name, c.clock.now(), ())
        _, i, status = min(views, key=lambda v: (v[0], v[1]))
        config = c.driver(i).rs_config(c.name(i)) or {}
        windows, connections = {}, {}
        for j in range(len(c.members)):
            try:
                window = c.driver(j).oplog_window(c.name(j))
                connections[c.name(j)] = c.driver(j).connections(c.name(j))
            except DriverError:
                continue
            if window is not None:
                windows[c.name(j)] = effective_window_s(window)
        extras = ObservedExtras(windows, connections)
        return snapshot_from_status(c.set_name, c.clock.now(), status, config, names, extras)

    def run(self, *, within_s: float = 3600.0, fault: Callable[[SimPlay], None] | None = None) -> bool:
        """Decide and act until Done, for at most ``within_s`` simulated seconds; ``fault`` is called before
        each decision (to inject faults when some condition holds)."""
        c = self.cluster
        before: RsSnapshot | None = None
        start = c.clock.now()
        while c.clock.now() - start < within_s:
            if fault is not None:
                fault(self)
            snap = self.snapshot()
            self.events += events_between(before, snap)
            before = snap
            decision = next_move(snap, self.change, self.progress, options=self.options, policy=self.policy)
            self.decisions.append(decision)
            if isinstance(decision, Done):
                return True
            move = decision.retry if isinstance(decision, Blocked) else decision
            if isinstance(move, Move) and not move.waiting and self.act(snap, move):
                self.moves.append(move)
                self.progress = record(self.progress, move, c.clock.now())
            standalone = [v for v in c.world.processes() if v.running and v.mode == "standalone"]
            self.down_at_once = max(self.down_at_once, len(standalone))
            c.run(1.0)
        return False

    def act(self, snap: RsSnapshot, move: Move) -> bool:
        """Carry ``move`` out; False when it could not be (it is asked for again on the next cycle)."""
        primary = snap.primary()
        connections = primary.connections if primary is not None else None
        events = events_for_move(move, self.progress, self.cluster.clock.now(), connections=connections)
        if move.name is MoveName.ACQUIRE_LEASE:
            done = self.take_lease(snap, move)
        elif move.name is MoveName.RELEASE_LEASE:
            self.lease = released(self.lease, move.member) or self.lease
            done = True
        else:
            try:
                self.carry_out(move)
                done = True
            except DriverError:
                done = False
        if done:
            self.events += events
        return done

    def take_lease(self, snap: RsSnapshot, move: Move) -> bool:
        health = [
            MemberHealth(m.name, m.healthy, m.state.value, m.votes, m.state is MemberState.PRIMARY)
            for m in snap.members
        ]
        pending = tuple(m for m in self.change.tasks if m not in self.progress.done)
        request = LeaseRequest(move.member, self.policy.lease_ttl_s, pending)
        decision = decide_grant(self.lease, request, health, self.cluster.clock.now())
        if isinstance(decision, Deny):
            return False
        self.lease = LeaseState(decision.lease, move.member)
        return True

    def carry_out(self, move: Move) -> None:
        name = move.member
        if move.name in (MoveName.RESTART_STANDALONE, MoveName.RESTART_REPLSET):
            driver = self.driver_of(name)
            driver.stop(name)
            driver.start(self.spec(name, standalone=move.name is MoveName.RESTART_STANDALONE))
        elif move.name is MoveName.PERFORM_TASK:
            self.performed[name] = move.tasks
        elif move.name is MoveName.STEP_DOWN:
            self.driver_of(name).step_down(
                name,
                step_down_secs=int(move.params["stepDownSecs"]),
                catch_up_secs=int(move.params["secondaryCatchUpPeriodSecs"]),
            )
        elif move.name is MoveName.START_TEMPORARY_ARBITER:
            _arbiter_driver(self.cluster).start(self.spec(name, standalone=False))
        elif move.name is MoveName.STOP_TEMPORARY_ARBITER:
            _arbiter_driver(self.cluster).stop(name)
        elif move.name is MoveName.SHUTDOWN:
            self.driver_of(name).stop(name)
        else:
            self.reconfigure(move)

    def reconfigure(self, move: Move) -> None:
        """The reconfigurations, by the primary's agent."""
        actor = str(move.actor)
        driver = self.driver_of(actor)
        config = driver.rs_config(actor)
        members = [dict(m) for m in config["members"]]
        host = f"{ARBITER_HOST}:{PORT}" if move.member == self.arbiter else None
        target = next((m for m in members if host is None and m["host"] == self.addr_of(move.member)), None)
        if move.name is MoveName.ADD_TEMPORARY_ARBITER:
            new_id = max(m["_id"] for m in members) + 1
            members.append({"_id": new_id, "host": host, "arbiterOnly": True, "votes": 1, "priority": 0})
        elif move.name is MoveName.REMOVE_TEMPORARY_ARBITER:
            members = [m for m in members if m["host"] != host]
        elif move.name is MoveName.REMOVE_FROM_SET:
            members = [m for m in members if m is not target]
        elif move.name is MoveName.TRANSFER_VOTE and target is not None:
            target.update(votes=0, priority=0)
        elif move.name is MoveName.RESTORE_VOTE and target is not None:
            original = self.cluster.members[self.index(move.member)]
            target.update(votes=original.get("votes", 1), priority=original.get("priority", 1))
        driver.reconfig(actor, {"members": members})

    def addr_of(self, name: str) -> str:
        return self.cluster.addr(self.index(name))

    def blocked(self) -> list[Blocked]:
        return [d for d in self.decisions if isinstance(d, Blocked)]


def _arbiter_driver(c: Cluster) -> SimDriver:
    return c.drivers.setdefault(ARBITER_HOST, SimDriver(c.world, ARBITER_HOST))

"""A tiny replica set model for playing the maintenance procedure, and the harness that plays it.

The model is deliberately small: members are up or not, the primary needs a healthy majority of votes,
secondaries catch up one tick after they come back, and an election (after a step-down, or when the primary
is gone) picks the caught-up electable member of highest priority, which is what MongoDB's election handoff
does. There is no priority takeover. The harness asks ``next_move`` each tick, grants leases with
``decide_grant`` as the server would (the holder's agent renews while its member is reachable, so a dead
member's lease expires), carries the move out, records it, and checks the invariants after every move.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsmgr.drivers.base import MemberState
from opsmgr.maintenance.leases import (
    Deny,
    Lease,
    LeaseRequest,
    LeaseState,
    MemberHealth,
    decide_grant,
    released,
)
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
from opsmgr.maintenance.report import (
    Alert,
    ChangeState,
    ChangeStatus,
    Event,
    events_between,
    events_for_move,
    observe,
)
from opsmgr.maintenance.rolling import MaintenanceOptions, RollingChange
from opsmgr.maintenance.snapshot import MemberView, Policy, RsSnapshot

DAY = 24 * 3600.0
GOING_DOWN = frozenset(
    {MoveName.RESTART_STANDALONE, MoveName.STEP_DOWN, MoveName.REMOVE_FROM_SET, MoveName.TRANSFER_VOTE}
)


@dataclass
class FakeMember:
    name: str
    votes: int = 1
    priority: float = 1.0
    arbiter: bool = False
    hidden: bool = False
    optime: float = 0.0
    standalone: bool = False
    stopped: bool = False
    down_until: float = 0.0
    frozen_until: float = 0.0
    rejoining: bool = False
    oplog_window_s: float = DAY
    connections: int = 0
    config_votes: int = 1
    config_priority: float = 1.0

    def __post_init__(self) -> None:
        self.config_votes, self.config_priority = self.votes, self.priority

    @property
    def electable(self) -> bool:
        return self.votes > 0 and self.priority > 0 and not self.arbiter and not self.hidden


class FakeSet:
    def __init__(self, rs_id: str, members: list[FakeMember], *, clients: int = 25) -> None:
        self.rs_id = rs_id
        self.members = {m.name: m for m in members}
        self.t = 0.0
        self.clients = clients
        self.arbiter_running = False
        self.elections = 0
        self.performed: list[str] = []
        self.left: list[str] = []
        self.primary: str | None = None
        self.vacant = False
        self.stepped_down: str | None = None
        self.handoffs = self.unplanned_elections = 0
        self._elect()
        # The first primary is where the story starts. Afterwards an election is a handoff when it follows
        # a step-down and another member wins; any other (after a fault) is unplanned.
        self.elections = self.unplanned_elections = 0

    def up(self, m: FakeMember) -> bool:
        running = not (m.standalone or m.stopped)
        if m.name == temporary_arbiter_name(self.rs_id):
            running = self.arbiter_running
        return running and self.t >= m.down_until

    def healthy_votes(self) -> int:
        return sum(m.votes for m in self.members.values() if self.up(m))

    def majority(self) -> int:
        return sum(m.votes for m in self.members.values()) // 2 + 1

    def maintenance_down(self) -> list[str]:
        return [m.name for m in self.members.values() if m.standalone]

    def crash(self, name: str, until: float) -> None:
        if name in self.members:
            self.members[name].down_until = max(self.members[name].down_until, until)

    def snapshot(self) -> RsSnapshot:
        views = []
        for m in self.members.values():
            up = self.up(m)
            state = MemberState.DOWN
            if up:
                state = MemberState.ARBITER if m.arbiter else MemberState.SECONDARY
            if up and self.primary == m.name:
                state = MemberState.PRIMARY
            views.append(
                MemberView(
                    m.name,
                    state,
                    health=up,
                    votes=m.votes,
                    priority=m.priority,
                    arbiter=m.arbiter,
                    hidden=m.hidden,
                    optime=int(m.optime) << 32,
                    oplog_window_s=None if m.arbiter else m.oplog_window_s,
                    connections=self.clients if state is MemberState.PRIMARY else 0,
                )
            )
        return RsSnapshot(self.rs_id, self.t, tuple(views))

    def _elect(self) -> None:
        data = [m for m in self.members.values() if self.up(m) and not m.arbiter]
        if self.healthy_votes() < self.majority() or not data:
            return
        latest = max(m.optime for m in data)
        candidates = [m for m in data if m.electable and m.optime >= latest and m.frozen_until <= self.t]
        if candidates:
            self.primary = max(candidates, key=lambda m: (m.priority, m.name)).name
            self.elections += 1
            if self.stepped_down is not None and self.stepped_down != self.primary:
                self.handoffs += 1
            else:
                self.unplanned_elections += 1
            self.stepped_down = None

    def tick(self, dt: float) -> None:
        self.t += dt
        primary = self.members.get(self.primary or "")
        if primary is not None and (not self.up(primary) or self.healthy_votes() < self.majority()):
            self.primary, primary, self.vacant, self.stepped_down = None, None, False, None
        if primary is not None:
            primary.optime = self.t
            for m in self.members.values():
                if self.up(m) and not m.arbiter and not m.rejoining:
                    m.optime = primary.optime
                m.rejoining = m.rejoining and not self.up(m)  # one tick behind after coming back
        elif self.vacant:
            self._elect()
        else:
            self.vacant = True  # an election takes a tick to happen

    def execute(self, move: Move) -> None:
        name = move.member
        m = self.members.get(name)
        if move.name in (MoveName.ACQUIRE_LEASE, MoveName.RELEASE_LEASE):
            return  # the server's business: the harness grants and releases
        if move.name is MoveName.START_TEMPORARY_ARBITER:
            self.arbiter_running = True
        elif move.name is MoveName.ADD_TEMPORARY_ARBITER:
            self.members[name] = FakeMember(name, arbiter=True, priority=0)
        elif move.name is MoveName.REMOVE_TEMPORARY_ARBITER:
            del self.members[name]
        elif move.name is MoveName.STOP_TEMPORARY_ARBITER:
            self.arbiter_running = False
        elif m is None:
            assert move.name is MoveName.SHUTDOWN, move
        elif move.name is MoveName.STEP_DOWN:
            assert self.primary == name, f"step-down of {name}, but the primary is {self.primary}"
            self.primary, self.vacant, self.stepped_down = None, False, name
            m.frozen_until = self.t + 60
        elif move.name is MoveName.TRANSFER_VOTE:
            m.votes, m.priority = 0, 0.0
        elif move.name is MoveName.RESTORE_VOTE:
            m.votes, m.priority = m.config_votes, m.config_priority
        elif move.name is MoveName.RESTART_STANDALONE:
            assert self.primary != name, f"{name} restarted standalone while primary"
            m.standalone = True
        elif move.name is MoveName.PERFORM_TASK:
            assert m.standalone or m.stopped or self.t < m.down_until, f"task on {name} while in its set"
            self.performed.append(name)
        elif move.name is MoveName.RESTART_REPLSET:
            m.standalone = m.stopped = False
            m.rejoining = True
        elif move.name is MoveName.REMOVE_FROM_SET:
            del self.members[name]
            self.left.append(name)
            if self.primary == name:
                self.primary = None
        elif move.name is MoveName.SHUTDOWN:
            m.standalone, m.stopped = False, True


@dataclass(frozen=True)
class Fault:
    at_step: int
    member: int  # an index into the members present at that time
    duration_s: float


@dataclass
class Trace:
    decisions: list[Decision] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    done: bool = False
    events: list[Event] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    states: list[ChangeState] = field(default_factory=list)

    def names(self) -> list[str]:
        return [m.name.value for m in self.moves]

    def blocked(self) -> list[Blocked]:
        return [d for d in self.decisions if isinstance(d, Blocked)]


def play(
    fake: FakeSet,
    change: RollingChange,
    *,
    options: MaintenanceOptions = MaintenanceOptions(),
    policy: Policy = Policy(),
    faults: tuple[Fault, ...] = (),
    dt: float = 10.0,
    max_steps: int = 1000,
) -> Trace:
    """Play ``change`` over ``fake`` until Done or ``max_steps``; breaches of invariants land in
    ``violations``."""
    trace = Trace()
    lease = LeaseState()
    status = ChangeStatus(change.rs_id)
    before: RsSnapshot | None = None
    for step in range(max_steps):
        for f in faults:
            if f.at_step == step and fake.members:
                names = sorted(fake.members)
                fake.crash(names[f.member % len(names)], fake.t + f.duration_s)
        snap = fake.snapshot()
        trace.events += events_between(before, snap)
        before = snap
        decision = next_move(snap, change, trace.progress, options=options, policy=policy)
        trace.decisions.append(decision)
        seen = observe(status, decision, fake.t)
        status = seen.status
        trace.alerts += seen.alerts
        trace.events += seen.events
        if not trace.states or trace.states[-1] is not status.state:
            trace.states.append(status.state)
        if isinstance(decision, Done):
            trace.done = True
            break
        if isinstance(decision, Blocked) and decision.retry is not None:
            decision = decision.retry
        if isinstance(decision, Move) and not decision.waiting:
            granted = _lease(trace, lease, snap, change, decision, policy)
            if granted is None:
                fake.tick(dt)
                continue
            lease = granted
            primary = snap.primary()
            connections = primary.connections if primary is not None else None
            trace.events += events_for_move(decision, trace.progress, fake.t, connections=connections)
            fake.execute(decision)
            trace.moves.append(decision)
            trace.progress = record(trace.progress, decision, fake.t)
            _check(trace, fake, lease, decision)
        lease = _renewed(fake, lease, policy)
        fake.tick(dt)
    return trace


def _renewed(fake: FakeSet, lease: LeaseState, policy: Policy) -> LeaseState:
    """The holder's agent renews the lease on each cycle, unless it is dead (its member crashed)."""
    current = lease.lease
    if (
        current is None
        or current.holder not in fake.members
        or fake.t < fake.members[current.holder].down_until
    ):
        return lease
    return LeaseState(Lease(current.holder, current.granted_at, fake.t + policy.lease_ttl_s), current.holder)


def _lease(
    trace: Trace, lease: LeaseState, snap: RsSnapshot, change: RollingChange, move: Move, policy: Policy
) -> LeaseState | None:
    """The lease state after ``move`` as the server would have it; None when the server denies it."""
    if move.name is MoveName.RELEASE_LEASE:
        after = released(lease, move.member)
        if after is None:
            trace.violations.append(f"{move.member} released a lease it did not hold")
            return lease
        return after
    if move.name is not MoveName.ACQUIRE_LEASE:
        return lease
    health = [
        MemberHealth(m.name, m.healthy, m.state.value, m.votes, m.state is MemberState.PRIMARY)
        for m in snap.members
    ]
    pending = tuple(m for m in change.tasks if m not in trace.progress.done)
    decision = decide_grant(lease, LeaseRequest(move.member, policy.lease_ttl_s, pending), health, snap.now)
    if isinstance(decision, Deny):
        trace.denials.append(decision.reason)
        return None
    return LeaseState(decision.lease, move.member)


def _check(trace: Trace, fake: FakeSet, lease: LeaseState, move: Move) -> None:
    down = fake.maintenance_down()
    if len(down) > 1:
        trace.violations.append(f"t={fake.t}: {down} down for maintenance at once")
    holder = lease.lease.holder if lease.lease is not None else None
    if any(name != holder for name in down):
        trace.violations.append(f"t={fake.t}: {down} down without holding the lease ({holder} does)")
    if move.name in GOING_DOWN and fake.healthy_votes() < fake.majority():
        trace.violations.append(
            f"t={fake.t}: {move.name.value} of {move.member} left {fake.healthy_votes()} healthy votes, "
            f"majority {fake.majority()}"
        )

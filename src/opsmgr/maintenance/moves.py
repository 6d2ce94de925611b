"""The vocabulary of the rolling procedure and its bookkeeping: the moves an agent carries out
(:class:`MoveName`, :class:`Move`), the fixed runs of steps they come in (:class:`Unit`,
:class:`PlannedStep`), what the procedure answers when it cannot go on (:class:`Blocked`) or is finished
(:class:`Done`), and how far a rolling change has got (:class:`Progress`, changed only by :func:`record`).

A sharded cluster's own steps (the balancer stopped and set back, each mongos restarted) have their own
small vocabulary (:class:`ClusterMoveName`, :class:`ClusterMove`, :class:`ClusterProgress`, changed only by
:func:`record_cluster`), decided by ``maintenance.sharded``.

``maintenance.procedure`` decides the next move over these; the server records each move carried out with
:func:`record` on the one shared progress, and ``maintenance.wire`` carries them to and from the agents.
Pure. May import ``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from opsmgr.maintenance.preflight import Check
from opsmgr.maintenance.rolling import MemberTask
from opsmgr.maintenance.rolling import temporary_arbiter_name as temporary_arbiter_name


class MoveName(StrEnum):
    START_TEMPORARY_ARBITER = "StartTemporaryArbiter"
    ADD_TEMPORARY_ARBITER = "AddTemporaryArbiter"
    ACQUIRE_LEASE = "AcquireMaintenanceLease"
    WAIT_PREFERRED_PRIMARY_CAUGHT_UP = "WaitPreferredPrimaryCaughtUp"
    STEP_DOWN = "StepDown"
    WAIT_ELECTION = "WaitElection"
    TRANSFER_VOTE = "TransferVoteToArbiter"
    RESTART_STANDALONE = "RestartStandalone"
    PERFORM_TASK = "PerformTask"
    RESTART_REPLSET = "RestartReplSet"
    WAIT_SECONDARY_CAUGHT_UP = "WaitSecondaryCaughtUp"
    RESTORE_VOTE = "RestoreVote"
    REMOVE_FROM_SET = "RemoveFromReplicaSet"
    SHUTDOWN = "Shutdown"
    RELEASE_LEASE = "ReleaseMaintenanceLease"
    REMOVE_TEMPORARY_ARBITER = "RemoveTemporaryArbiter"
    STOP_TEMPORARY_ARBITER = "StopTemporaryArbiter"
    WAIT_PRIMARY = "WaitPrimary"


WAITS = frozenset(
    {
        MoveName.WAIT_PREFERRED_PRIMARY_CAUGHT_UP,
        MoveName.WAIT_ELECTION,
        MoveName.WAIT_SECONDARY_CAUGHT_UP,
        MoveName.WAIT_PRIMARY,
    }
)


class Unit(StrEnum):
    """A fixed run of steps: setting up the temporary arbiter, one member's cycle, tearing the arbiter
    down, or a whole offline change."""

    SETUP = "setup"
    MEMBER = "member"
    TEARDOWN = "teardown"
    OFFLINE = "offline"


class ArbiterPhase(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    REMOVED = "removed"


class BlockCause(StrEnum):
    PREFLIGHT = "preflight"  # a check refused the next going-down move
    FAILURE = "failure"  # a member did not come back, or no primary was elected
    WAITING = "waiting"  # the set is not in a state to go on (no primary yet, a member not in the set)


@dataclass(frozen=True)
class PlannedStep:
    """One step of a unit; ``by_primary``: the primary's agent acts for the member (a leaving member that is
    already unhealthy may have no agent left to ask for the lease or be shut down)."""

    move: MoveName
    member: str
    by_primary: bool = False


@dataclass(frozen=True)
class Progress:
    """How far a rolling change has got; changed only by :func:`record`.

    ``steps``/``position``: the unit under way and how many of its steps are complete. ``since``: when the
    last step completed (timeouts count from it). ``done``: members whose cycle is complete, in order;
    ``out_times``: how long each was out (the oplog check estimates from them). ``seq`` counts records, so
    that the server can refuse a stale update.
    """

    unit: Unit | None = None
    member: str | None = None
    steps: tuple[PlannedStep, ...] = ()
    position: int = 0
    since: float | None = None
    out_since: float | None = None
    started_at: float | None = None
    done: tuple[str, ...] = ()
    out_times: tuple[tuple[str, float], ...] = ()
    step_downs: int = 0
    arbiter: ArbiterPhase = ArbiterPhase.NONE
    seq: int = 0

    @property
    def in_unit(self) -> bool:
        return self.position < len(self.steps)

    @property
    def observed_out_s(self) -> list[float]:
        return [t for _, t in self.out_times]

    def current(self) -> PlannedStep | None:
        return self.steps[self.position] if self.in_unit else None

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit.value if self.unit is not None else None,
            "member": self.member,
            "steps": [[s.move.value, s.member, s.by_primary] for s in self.steps],
            "position": self.position,
            "since": self.since,
            "outSince": self.out_since,
            "startedAt": self.started_at,
            "done": list(self.done),
            "outTimes": [[m, t] for m, t in self.out_times],
            "stepDowns": self.step_downs,
            "arbiter": self.arbiter.value,
            "seq": self.seq,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Progress:
        return cls(
            unit=Unit(raw["unit"]) if raw.get("unit") else None,
            member=raw.get("member"),
            steps=tuple(PlannedStep(MoveName(m), str(n), bool(b)) for m, n, b in raw.get("steps", [])),
            position=int(raw.get("position", 0)),
            since=raw.get("since"),
            out_since=raw.get("outSince"),
            started_at=raw.get("startedAt"),
            done=tuple(raw.get("done", [])),
            out_times=tuple((str(m), float(t)) for m, t in raw.get("outTimes", [])),
            step_downs=int(raw.get("stepDowns", 0)),
            arbiter=ArbiterPhase(raw.get("arbiter", ArbiterPhase.NONE.value)),
            seq=int(raw.get("seq", 0)),
        )


@dataclass(frozen=True)
class Move:
    """One step for an agent. ``actor`` is the process whose agent carries it out (None for a wait);
    ``plan`` is set on the first step of a unit and is what :func:`record` stores."""

    name: MoveName
    member: str
    actor: str | None
    note: str
    waiting: bool = False
    tasks: tuple[MemberTask, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    unit: Unit | None = None
    plan: tuple[PlannedStep, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Blocked:
    """The change cannot go on. ``retry``: a failed member's own restart step, which the agent keeps
    carrying out (it is what brings the member back) while the change reports the failure."""

    reason: str
    cause: BlockCause
    member: str | None = None
    check: Check | None = None
    warnings: tuple[str, ...] = ()
    retry: Move | None = None


@dataclass(frozen=True)
class Done:
    note: str


Decision = Move | Blocked | Done


def record(progress: Progress, move: Move, now: float) -> Progress:
    """The progress once ``move`` has been carried out at ``now``. Waits change nothing; a move that is not
    the current unit's next (a retry of something already recorded) is ignored."""
    if move.waiting:
        return progress
    p = progress
    if move.plan and move.plan != p.steps:
        p = replace(
            p,
            unit=move.unit,
            member=move.member if move.unit is Unit.MEMBER else None,
            steps=move.plan,
            position=0,
            out_since=None,
            started_at=p.started_at if p.started_at is not None else now,
        )
    index = next(
        (
            i
            for i in range(p.position, len(p.steps))
            if (p.steps[i].move, p.steps[i].member) == (move.name, move.member)
        ),
        None,
    )
    if index is None:
        if move.name is MoveName.STEP_DOWN:  # a primary that a fault put in a secondary's cycle
            return replace(p, step_downs=p.step_downs + 1, since=now, seq=p.seq + 1)
        return progress
    p = replace(p, position=index + 1, since=now, seq=p.seq + 1)
    if move.name in (MoveName.RESTART_STANDALONE, MoveName.REMOVE_FROM_SET) or (
        move.name is MoveName.SHUTDOWN and p.out_since is None
    ):
        p = replace(p, out_since=p.out_since if p.out_since is not None else now)
    if move.name is MoveName.STEP_DOWN:
        p = replace(p, step_downs=p.step_downs + 1)
    elif move.name is MoveName.ADD_TEMPORARY_ARBITER:
        p = replace(p, arbiter=ArbiterPhase.ACTIVE)
    elif move.name is MoveName.REMOVE_TEMPORARY_ARBITER:
        p = replace(p, arbiter=ArbiterPhase.REMOVED)
    return finish_unit(p, now) if not p.in_unit else p


def finish_unit(p: Progress, now: float) -> Progress:
    """The unit under way is over: its member (or, offline, every member) is done."""
    done, out_times = p.done, p.out_times
    if p.unit is Unit.MEMBER and p.member is not None:
        done = (*done, p.member)
        if p.out_since is not None:
            out_times = (*out_times, (p.member, now - p.out_since))
    elif p.unit is Unit.OFFLINE:
        members = dict.fromkeys(s.member for s in p.steps)
        done = (*done, *(m for m in members if m not in done))
    return replace(p, steps=(), position=0, member=None, out_since=None, done=done, out_times=out_times)


# --- a sharded cluster's own steps --------------------------------------------------------------------------


class ClusterMoveName(StrEnum):
    STOP_BALANCER = "StopBalancer"
    RESTART_MONGOS = "RestartMongos"
    RESTORE_BALANCER = "RestoreBalancer"


@dataclass(frozen=True)
class ClusterProgress:
    """``balancer_was``: the balancer's mode before the change stopped it (None: not stopped yet);
    ``mongos_done``: the routers restarted, in order; ``restored``: the balancer is back (the change is over).
    ``seq`` counts the moves recorded."""

    balancer_was: str | None = None
    mongos_done: tuple[str, ...] = ()
    restored: bool = False
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "balancerWas": self.balancer_was,
            "mongosDone": list(self.mongos_done),
            "restored": self.restored,
            "seq": self.seq,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ClusterProgress:
        was = raw.get("balancerWas")
        return cls(
            balancer_was=str(was) if was is not None else None,
            mongos_done=tuple(raw.get("mongosDone", ())),
            restored=bool(raw.get("restored")),
            seq=int(raw.get("seq", 0)),
        )


@dataclass(frozen=True)
class ClusterMove:
    """One step of the cluster's own, carried out by the agent of mongos ``actor``; ``params`` holds
    ``running`` for a balancer move (the mode to set) and, once carried out, ``balancerWas``."""

    name: ClusterMoveName
    actor: str
    note: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name.value, "actor": self.actor, "note": self.note, "params": dict(self.params)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ClusterMove:
        return cls(
            ClusterMoveName(raw["name"]),
            str(raw["actor"]),
            str(raw.get("note", "")),
            dict(raw.get("params") or {}),
        )


def record_cluster(progress: ClusterProgress, move: ClusterMove) -> ClusterProgress:
    """The progress once ``move`` was carried out; a move repeated (its report lost and retried) changes
    nothing."""
    if move.name is ClusterMoveName.STOP_BALANCER:
        if progress.balancer_was is not None:
            return progress
        was = str(move.params.get("balancerWas") or "full")
        return replace(progress, balancer_was=was, seq=progress.seq + 1)
    if move.name is ClusterMoveName.RESTART_MONGOS:
        if move.actor in progress.mongos_done:
            return progress
        return replace(progress, mongos_done=(*progress.mongos_done, move.actor), seq=progress.seq + 1)
    if progress.restored:
        return progress
    return replace(progress, restored=True, seq=progress.seq + 1)


ClusterDecision = ClusterMove | Blocked | Done

"""The agent's side of rolling maintenance: carrying out, through the driver, the moves of the rolling
changes the server registered for the replica sets this host takes part in.

On every cycle :meth:`MaintenanceExecutor.cycle` asks the server for the view of each candidate replica set
(those of the held config with a process here, those of the config this agent last reached goal with, whose
members may be leaving, and those whose temporary arbiter runs here): only when the agent's work list names
it, the last view said a change is under way, or the held version changed (the new config may have
registered a change), so an agent at rest asks nothing. For a set under way it builds the
:class:`~opsmgr.maintenance.snapshot.RsSnapshot` from a local member's ``replSetGetStatus`` (or, when no local
member is in its set, from what the server relays of the other agents' reports: ``agent.set_sight``), asks
``maintenance.procedure.next_move``, and when the move's actor is a local process carries it out:

- ``RestartStandalone``: stop, start without ``replSetName`` on ``maintenance_port`` with the options it ran
  with; ``PerformTask``: restart standalone with the goal's version and options (plus a task's start option,
  e.g. KMIP master key rotation) and build the non-unique indexes, or, for a unique index build's member
  step, build its index and check with ``listIndexes`` that it is there and unique (a member refusing it,
  for duplicates or bad options, drops what it left and the refusal, in its words, goes with the move's
  report: the build aborts on it) or drop it; ``RestartReplSet``: start with the goal spec; ``StepDown``:
  ``replSetStepDown`` with ``secondaryCatchUpPeriodSecs``; ``Shutdown``: stop;
- the reconfigurations (temporary arbiter added and removed, vote handed over and back, a member removed) by
  the agent of the primary; the temporary arbiter started and stopped by the agent of its host;
- the lease moves go to the server (``POST /lease`` records the acquisition with the grant).

Each move carried out is reported (``POST /progress``): the server records it, so agents never overwrite
each other's progress. The decision (by the agent of the primary, or by every agent while there is none),
the primaries it saw and what it measured (oplog windows, connections) go to ``POST /events``. While a
change is under way the set's local processes belong to the executor (the planner gives them the single
step ``RollingMaintenance``): one that crashed outside its turn is started again here.

A sharded cluster's change (``maintenance.sharded``) is looked at by its mongos' agents as ``cluster:<name>``
(``maintenance_driver.ClusterSteps``); a set whose turn in its cluster has not come waits (its view's
``cluster.waitingFor``). May import ``opsmgr.errors``, ``opsmgr.drivers.base``, ``opsmgr.automation.config``,
``opsmgr.maintenance`` and ``opsmgr.agent``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsmgr.agent.executor import LongAction, LongActions
from opsmgr.agent.maintenance_driver import ClusterSteps, InHand, Look, MaintenanceApi, MoveDriver, spec_of
from opsmgr.agent.plan import Snapshot
from opsmgr.agent.set_sight import measure, set_snapshot
from opsmgr.automation.config import processes_by_name
from opsmgr.drivers.base import (
    Driver,
)
from opsmgr.errors import OpsmgrError
from opsmgr.maintenance.moves import (
    BlockCause,
    Blocked,
    Decision,
    Done,
    Move,
    MoveName,
    Progress,
    temporary_arbiter_name,
)
from opsmgr.maintenance.procedure import next_move
from opsmgr.maintenance.report import events_between
from opsmgr.maintenance.rolling import RollingChange
from opsmgr.maintenance.snapshot import (
    Policy,
    RsSnapshot,
)
from opsmgr.maintenance.wire import (
    cluster_key,
    cluster_name,
    decision_to_json,
    move_to_json,
    options_from_json,
    policy_from_json,
)

log = logging.getLogger(__name__)

# Moves that stop or start a process, or wait on an election: each runs as the host's long action, while
# the agent's cycle goes on polling and reporting.
LONG_MOVES = frozenset(
    {
        MoveName.RESTART_STANDALONE,
        MoveName.PERFORM_TASK,
        MoveName.RESTART_REPLSET,
        MoveName.STEP_DOWN,
        MoveName.SHUTDOWN,
        MoveName.START_TEMPORARY_ARBITER,
        MoveName.STOP_TEMPORARY_ARBITER,
    }
)
_REPORT_EVERY_S = 5.0


@dataclass(frozen=True)
class Outcome:
    """What one cycle of the executor did. ``owned``: local processes that are the executor's (process ->
    note for the planner); ``annotations``: per process, what the agent's status shows (plan, current step,
    blocked reason); ``acted``: a move was carried out (the loop does nothing else this cycle)."""

    owned: dict[str, str] = field(default_factory=dict)
    sentence: str | None = None
    acted: bool = False
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _SetMemory:
    active: bool = False
    change_id: str | None = None
    owned: tuple[str, ...] = ()
    before: RsSnapshot | None = None
    reported_at: float = 0.0
    last_decision: dict[str, Any] | None = None
    checked_version: int | None = None
    error: str | None = None  # the last failure of one of this set's moves, until one succeeds

    def due(self, in_work: bool, version: int) -> bool:
        """Whether the cycle looks at the set: under way here, named by the work list, or its config changed
        since it was last looked at (the new config may have started a change)."""
        return self.active or in_work or self.checked_version != version


@dataclass(frozen=True)
class _SetRun:
    owned: dict[str, str]
    sentence: str
    acted: bool
    annotations: dict[str, dict[str, Any]]


class MaintenanceExecutor:
    """Carries out this host's part of rolling changes (see the module docstring)."""

    def __init__(
        self,
        api: MaintenanceApi,
        driver: Driver,
        hostname: str,
        *,
        long: LongActions,
        run: Callable[..., Awaitable[Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.driver = driver
        self.hostname = hostname
        self.long = long
        self.clock = clock
        self._run = run
        self._sets: dict[str, _SetMemory] = {}
        self.moves = MoveDriver(driver, self._call)
        self.cluster_steps = ClusterSteps(hostname, self.moves, long, api, clock)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Driver calls block; the loop passes its worker-thread runner."""
        if self._run is None:
            return fn(*args, **kwargs)
        return await self._run(lambda: fn(*args, **kwargs))

    # --- which sets ---------------------------------------------------------------------------------------

    def _candidates(self, goal: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
        out: list[str] = []
        for config in (goal, previous or {}):
            procs = processes_by_name(config)
            for rs in config.get("replicaSets", []):
                here = any(procs.get(m["host"], {}).get("hostname") == self.hostname for m in rs["members"])
                arbiter = (rs.get("maintenance") or {}).get("temporaryArbiter") or {}
                if (here or arbiter.get("hostname") == self.hostname) and rs["_id"] not in out:
                    out.append(rs["_id"])
            for p in config.get("processes", []):
                key = cluster_key(str(p.get("cluster")))
                mongos_here = p.get("processType") == "mongos" and p.get("hostname") == self.hostname
                if mongos_here and p.get("cluster") and key not in out:
                    out.append(key)
        return out

    async def cycle(
        self,
        snap: Snapshot,
        goal: Mapping[str, Any] | None,
        version: int,
        active: frozenset[str],
        previous: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """One look at every candidate set that the work list names (``active``), that this executor saw
        under way, or whose config just changed (``version``: the new config may have started a change,
        which the processes must not be planned around before the work list says so); at most one move
        carried out in all."""
        if goal is None:
            return Outcome()
        owned: dict[str, str] = {}
        annotations: dict[str, dict[str, Any]] = {}
        sentences: list[str] = []
        acted = False
        for rs_id in self._candidates(goal, previous):
            memory = self._sets.setdefault(rs_id, _SetMemory())
            if not memory.due(rs_id in active, version):
                continue
            try:
                view = await self.api.maintenance("GET", rs_id, params={"hostname": self.hostname})
            except OpsmgrError as exc:
                if memory.active:  # mid-change: the planner must not take the processes back meanwhile
                    owned.update(
                        {n: f"rolling maintenance of {rs_id} (server unreachable)" for n in memory.owned}
                    )
                    sentences.append(f"{rs_id}: rolling maintenance paused: {exc.detail}")
                continue
            if not view.get("active"):
                memory.active, memory.checked_version, memory.owned = False, version, ()
                continue
            memory.active = True
            run = self._run_cluster if cluster_name(rs_id) is not None else self._run_set
            try:
                done = await run(Look(rs_id, view, snap, goal, previous), memory, may_act=not acted)
            except Exception as exc:  # a bug or an unexpected answer must not take the agent's loop down
                log.exception("%s: rolling maintenance of %s failed", self.hostname, rs_id)
                owned.update({n: f"rolling maintenance of {rs_id}" for n in memory.owned})
                sentences.append(f"error: rolling maintenance of {rs_id}: {exc}")
                continue
            owned.update(done.owned)
            annotations.update(done.annotations)
            sentences.append(done.sentence)
            acted = acted or done.acted
        return Outcome(owned, "; ".join(sentences) or None, acted, annotations)

    # --- one set ------------------------------------------------------------------------------------------

    async def _run_set(self, look: Look, memory: _SetMemory, *, may_act: bool) -> _SetRun:
        rs_id, view, snap, goal, previous = look.key, look.view, look.snap, look.goal, look.previous
        change = RollingChange.from_json(view["change"])
        progress = Progress.from_json(view["progress"])
        if memory.change_id != view["changeId"]:
            # A new change's timeline starts with the primary as it is now.
            memory.change_id, memory.before, memory.last_decision = view["changeId"], None, None
        options = options_from_json(view.get("options") or {})
        policy = policy_from_json(view.get("policy"))
        local = [m["name"] for m in view.get("members", []) if m.get("hostname") == self.hostname]
        arbiter = temporary_arbiter_name(rs_id)
        arbiter_here = (
            options.temporary_arbiter is not None and options.temporary_arbiter.hostname == self.hostname
        )
        memory.owned = tuple(n for n in local if n in snap.processes)
        measured = measure(local, snap)
        rs_snap, from_status = set_snapshot(rs_id, self.clock(), view, snap, local, change, measured)
        turn = (view.get("cluster") or {}).get("waitingFor")
        decision: Decision = (
            Blocked(str(turn), BlockCause.WAITING)
            if turn
            else next_move(rs_snap, change, progress, options=options, policy=policy)
        )
        move = decision.retry if isinstance(decision, Blocked) else decision
        mine = set(local) | ({arbiter} if arbiter_here else set())
        hand = (
            InHand(rs_id, view, move, progress, rs_snap, snap, goal, previous, policy)
            if isinstance(move, Move)
            else None
        )
        sentence = _sentence(rs_id, decision, view)
        acted, error, sentence = await self._act(
            rs_id, decision, sentence, memory, mine if may_act else set(), hand
        )
        if may_act and not acted:
            acted = await self._keep_up(rs_id, change, progress, snap, goal, previous, local)
        await self._renew(rs_id, view, local)
        await self._report(rs_id, view, decision, rs_snap, from_status, local, measured, memory, acted)
        state = (view.get("status") or {}).get("state", "RUNNING")
        notes = {n: f"rolling maintenance of {rs_id}: {state}" for n in memory.owned}
        annotations = {n: _annotation(n, decision, progress, error) for n in memory.owned}
        return _SetRun(notes, sentence, acted, annotations)

    async def _run_cluster(self, look: Look, memory: _SetMemory, *, may_act: bool) -> _SetRun:
        """A sharded cluster's change (``maintenance_driver.ClusterSteps``)."""
        owned, sentence, acted = self.cluster_steps.run(look, may_act=may_act)
        memory.owned = owned
        notes = {n: f"rolling maintenance of {look.view.get('cluster')}" for n in owned}
        return _SetRun(notes, sentence, acted, {})

    async def _act(
        self,
        rs_id: str,
        decision: Decision,
        sentence: str,
        memory: _SetMemory,
        mine: set[str],
        hand: InHand | None,
    ) -> tuple[bool, str | None, str]:
        """Carry out the procedure's move if one of ``mine`` (empty: this cycle may not act) is its actor,
        inline or as the host's long action: whether it acted, the error shown, and the set's sentence."""
        acted, error = False, memory.error
        running = self.long.running
        if running is not None and running.name.startswith(f"{rs_id}: "):
            return acted, None, self.long.sentence() or sentence  # this set's move, under way
        if hand is None or hand.move.waiting or hand.move.actor not in mine:
            return acted, error, f"{rs_id}: {error}" if error is not None else sentence
        move = hand.move
        if move.name in LONG_MOVES:
            action = LongAction(
                sentence if move is decision else f"{rs_id}: {move.name.value} {move.member}",
                frozenset({move.member}),
            )
            acted = self.long.start(action, lambda: self._attempt(hand, memory))
            return (
                acted,
                error,
                sentence if acted else f"{sentence} (waits for {running.name if running else '?'})",
            )
        denied = await self._attempt(hand, memory)
        error = memory.error
        acted = error is None and denied is None
        if acted and isinstance(decision, Blocked):
            sentence = f"{sentence} (retrying {move.name.value})"
        elif error is not None:
            sentence = f"{rs_id}: {error}"
        elif denied is not None:
            sentence = f"{rs_id} blocked: {move.name.value} for {move.member} refused: {denied}"
        return acted, error, sentence

    def looks_at_sets(
        self,
        goal: Mapping[str, Any] | None,
        version: int,
        active: frozenset[str],
        previous: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether :meth:`cycle` looks at any set this cycle (the snapshot then needs the oplog windows)."""
        if goal is None:
            return False
        for rs_id in self._candidates(goal, previous):
            if self._sets.get(rs_id, _SetMemory()).due(rs_id in active, version):
                return True
        return False

    # --- carrying moves out -------------------------------------------------------------------------------

    async def _attempt(self, hand: InHand, memory: _SetMemory) -> str | None:
        """Carry the move out (inline, or as the host's long action); a failure is remembered for the status
        until the move, asked for again by the procedure, succeeds. The server's reason when it refused."""
        move = hand.move
        try:
            denied = await self._carry_out(hand)
        except OpsmgrError as exc:
            memory.error = f"{move.name.value} for {move.member} failed, will retry: {exc.detail}"
            return None
        except Exception as exc:  # the driver may raise anything its backend raises
            memory.error = f"{move.name.value} for {move.member} failed, will retry: {exc}"
            return None
        memory.error = None
        return denied

    async def _carry_out(self, hand: InHand) -> str | None:
        """Carry the move out and report it; the server's reason when it refused (a lease denied)."""
        at, rs_id, move = self.clock(), hand.rs_id, hand.move
        body: dict[str, Any] = {
            "changeId": hand.view["changeId"],
            "move": move_to_json(move),
            "seq": hand.progress.seq,
        }
        if move.name is MoveName.ACQUIRE_LEASE:
            try:
                await self.api.maintenance("POST", rs_id, "/lease", body={**body, "member": move.member})
            except OpsmgrError as exc:
                return exc.detail
            return None
        primary = hand.rs_snap.primary()
        if move.name is MoveName.STEP_DOWN and primary is not None:
            body["connections"] = primary.connections
        if move.name is not MoveName.RELEASE_LEASE:
            body.update(await self.moves.drive(hand))
        body["at"] = at
        try:
            await self.api.maintenance("POST", rs_id, "/progress", body=body)
        except OpsmgrError as exc:
            # Done but not recorded: the procedure asks for it again, and each move can be repeated.
            log.warning("%s: %s done but not recorded: %s", self.hostname, move.name.value, exc.detail)
        log.info("%s: %s: %s %s carried out", self.hostname, rs_id, move.name.value, move.member)
        return None

    async def _keep_up(
        self,
        rs_id: str,
        change: RollingChange,
        progress: Progress,
        snap: Snapshot,
        goal: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        local: list[str],
    ) -> bool:
        """A local member that is down outside its turn (a crash) is started again, as it ran before: the
        planner does not look after the processes of a set under maintenance."""
        in_unit = {s.member for s in progress.steps}
        for name in local:
            lp = snap.processes.get(name)
            if lp is None or lp.observation.running or name in in_unit or change.leaving(name):
                continue
            if self.long.owns(name):
                continue
            new = name in progress.done or name not in change.tasks
            try:
                await self._call(self.driver.start, spec_of(name, goal, previous, new=new))
            except Exception as exc:  # the driver may raise anything; retried on the next cycle
                log.warning("%s: cannot start %s again: %s", self.hostname, name, exc)
                continue
            log.info("%s: %s: started %s again (down outside its turn)", self.hostname, rs_id, name)
            return True
        return False

    async def _renew(self, rs_id: str, view: Mapping[str, Any], local: list[str]) -> None:
        lease = view.get("lease") or {}
        ttl = float((view.get("policy") or {}).get("lease_ttl_s", Policy().lease_ttl_s))
        left = lease.get("expiresInSecs")
        # The lease of the change under way: a config's, or a unique index build's member step.
        ours = lease.get("owner") in (None, view.get("owner"))
        if ours and lease.get("holder") in local and left is not None and left < ttl / 2:
            try:
                await self.api.maintenance("PUT", rs_id, "/lease", body={"member": lease["holder"]})
            except OpsmgrError as exc:
                log.warning("%s: lease of %s not renewed: %s", self.hostname, rs_id, exc.detail)

    async def _report(
        self,
        rs_id: str,
        view: Mapping[str, Any],
        decision: Decision,
        rs_snap: RsSnapshot,
        from_status: bool,
        local: list[str],
        measured: Mapping[str, Any],
        memory: _SetMemory,
        acted: bool,
    ) -> None:
        """The decision (by the primary's agent, or by all while there is none), primary sightings and
        measurements; skipped when there is nothing new to say."""
        primary = rs_snap.primary()
        reporter = isinstance(decision, Done) or primary is None or primary.name in local or acted
        events = events_between(memory.before, rs_snap) if from_status else []
        if from_status:
            memory.before = rs_snap
        said = decision_to_json(decision) if reporter else None
        now = self.clock()
        stale = now - memory.reported_at >= _REPORT_EVERY_S
        if not events and (said is None or said == memory.last_decision) and not stale:
            return
        body = {
            "changeId": view["changeId"],
            "primary": primary is not None and primary.name in local,
            "decision": said,
            "events": [e.to_json() for e in events],
            "extras": dict(measured),
        }
        try:
            await self.api.maintenance("POST", rs_id, "/events", body=body)
        except OpsmgrError as exc:
            log.warning("%s: maintenance report for %s not delivered: %s", self.hostname, rs_id, exc.detail)
            return
        memory.reported_at = now
        if said is not None:
            memory.last_decision = said


def _member_detail(view: Mapping[str, Any], member: str) -> str:
    change = view.get("change") or {}
    mine = [r.split(": ", 1)[1] for r in change.get("reasons", []) if r.startswith(f"{member}: ")]
    if mine:
        return "; ".join(mine)
    return ", ".join(change.get("tasks", {}).get(member, [])) or "maintenance"


def _sentence(rs_id: str, decision: Decision, view: Mapping[str, Any]) -> str:
    """The cycle's one line: ``rs0: RestartStandalone h2:27017 (version 7.0.2 -> 7.0.5)``, ``rs0 blocked:
    <reason>``."""
    if isinstance(decision, Done):
        return f"{rs_id}: {decision.note}"
    if isinstance(decision, Blocked):
        return f"{rs_id} blocked: {decision.reason}"
    if decision.waiting:
        return f"{rs_id}: {decision.name.value}: {decision.note}"
    hosts = {name: host for host, name in view.get("names", {}).items()}
    where = hosts.get(decision.member, decision.member)
    return f"{rs_id}: {decision.name.value} {where} ({_member_detail(view, decision.member)})"


def _annotation(name: str, decision: Decision, progress: Progress, error: str | None) -> dict[str, Any]:
    """What the agent's status shows for a local process of a set under maintenance."""
    steps = [s.move.value for s in progress.steps if s.member == name]
    current = progress.current()
    step: str | None = current.move.value if current is not None and current.member == name else None
    if isinstance(decision, Move) and decision.member == name:
        steps = steps or [s.move.value for s in decision.plan if s.member == name] or [decision.name.value]
        step = decision.name.value
    blocked = None
    if isinstance(decision, Blocked) and decision.member in (None, name):
        blocked = decision.reason
    elif isinstance(decision, Move) and decision.waiting and decision.member == name:
        blocked = decision.note
    return {
        "plan": steps or ["RollingMaintenance"],
        "currentStep": step or "RollingMaintenance",
        "blockedReason": blocked,
        "errorText": error,
    }

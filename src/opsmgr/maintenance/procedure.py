"""The rolling procedure over one replica set, as a decision the agent asks for on every cycle.

:func:`next_move` takes what the agent sees (:class:`~opsmgr.maintenance.snapshot.RsSnapshot`), the
:class:`~opsmgr.maintenance.rolling.RollingChange` being carried out and the shared
:class:`~opsmgr.maintenance.moves.Progress`, and answers with the next ``Move``, a ``Blocked`` (with its
reason) or ``Done`` (the vocabulary of ``maintenance.moves``). The agent whose process is the move's
``actor`` carries it out and the move is recorded with ``moves.record``; a move with ``waiting`` set asks for
nothing but another look on the next cycle. Progress is plain JSON (``Progress.to_json``) kept by the server
with the replica set's maintenance lease, so that every agent of the set sees the same one.

The order: members leaving the set first (a dead member on a decommissioned host must not hold the others
up), then the other secondaries by ascending priority (hidden, arbiter and priority-0 members first: their
restart never moves the primary; the preferred primary comes last so that it is freshly restarted and
caught up when the primary hands over), then the primary. Each member's cycle, once begun, is fixed:

- a secondary: ``AcquireMaintenanceLease``, ``RestartStandalone`` (no ``replSetName``, on
  :func:`~opsmgr.maintenance.snapshot.maintenance_port`), ``PerformTask``, ``RestartReplSet``,
  ``WaitSecondaryCaughtUp``, ``ReleaseMaintenanceLease``;
- the primary: ``AcquireMaintenanceLease``, ``WaitPreferredPrimaryCaughtUp``, ``StepDown``
  (``replSetStepDown`` with ``secondaryCatchUpPeriodSecs``), ``WaitElection``, then the secondary's cycle.
  The step-down is skipped if a fault already moved the primary elsewhere, so a rolling change makes at most
  one planned election, exactly one when the primary has a task;
- a leaving member: the lease (and the step-down if primary), ``RemoveFromReplicaSet`` (a reconfig by the
  primary), ``Shutdown``, the release;
- with a temporary arbiter (``maintenance.temporaryArbiter`` on a set where one more failure would lose the
  majority): ``StartTemporaryArbiter`` and ``AddTemporaryArbiter`` before the first member, and each voting
  member hands its vote over while out (``TransferVoteToArbiter`` sets its votes and priority to 0,
  ``RestoreVote`` gives them back once it is caught up): an arbiter added alongside three voters would make
  four, whose majority survives no more failures than three; only with the vote handed over does the set
  survive one more failure. ``RemoveTemporaryArbiter`` and ``StopTemporaryArbiter`` come last.

Going-down moves (the lease, the step-down, the vote transfer, the standalone restart, the removal) pass the
preflight checks of ``maintenance.preflight`` first, and a member leaves its set only while another member
is primary: if a fault made it primary meanwhile (or re-elected it after its step-down), it steps down
first. A member that is not healthy ``Policy.member_timeout_s`` after its restart, or whose own restart keeps
failing that long, is a failure: :class:`Blocked` with cause ``FAILURE`` (and, for a failing restart, the
``retry`` move the agent keeps carrying out); the change stops there (the lease stays with the member, so
no other member goes down) and resumes by itself once it is healthy.

An *offline* change (a rename) is one fixed plan that needs ``acceptDowntime``: each member in turn is
restarted standalone, the task performed and the member shut down; then every member restarts in replSet
mode under the new name, and the set elects a primary.

Pure. May import ``opsmgr.maintenance`` modules and ``opsmgr.drivers.base`` (types only).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from opsmgr.drivers.base import MemberState
from opsmgr.maintenance.moves import (
    WAITS,
    ArbiterPhase,
    BlockCause,
    Blocked,
    Decision,
    Done,
    Move,
    MoveName,
    PlannedStep,
    Progress,
    Unit,
    finish_unit,
    temporary_arbiter_name,
)
from opsmgr.maintenance.preflight import Check, Verdict, fault_tolerance, oplog_window, preferred_primary
from opsmgr.maintenance.rolling import (
    UNIQUE_INDEX_TASKS,
    MaintenanceOptions,
    MemberTask,
    RollingChange,
    Task,
)
from opsmgr.maintenance.snapshot import Policy, RsSnapshot

_RESTARTS = frozenset({MoveName.RESTART_STANDALONE, MoveName.PERFORM_TASK, MoveName.RESTART_REPLSET})
# Moves after which the member no longer serves its set as it did: never while it is the primary.
_OUT_OF_SET = frozenset({MoveName.TRANSFER_VOTE, MoveName.RESTART_STANDALONE, MoveName.REMOVE_FROM_SET})
# Carried out by the agent of the current primary (replica set reconfigurations).
_BY_PRIMARY = frozenset(
    {
        MoveName.ADD_TEMPORARY_ARBITER,
        MoveName.REMOVE_TEMPORARY_ARBITER,
        MoveName.TRANSFER_VOTE,
        MoveName.RESTORE_VOTE,
        MoveName.REMOVE_FROM_SET,
    }
)
_ARBITER_MOVES = frozenset(
    {
        MoveName.START_TEMPORARY_ARBITER,
        MoveName.ADD_TEMPORARY_ARBITER,
        MoveName.REMOVE_TEMPORARY_ARBITER,
        MoveName.STOP_TEMPORARY_ARBITER,
    }
)


# --- order and cycles ---------------------------------------------------------------------------------------


def member_order(snap: RsSnapshot, change: RollingChange) -> list[str]:
    """The members of ``change`` in the order they are maintained (see the module docstring); the current
    primary, if it has a task, is last."""
    position = {name: i for i, name in enumerate(change.tasks)}
    primary = snap.primary()

    def key(name: str) -> tuple[int, int, float, int]:
        view = snap.member(name)
        is_primary = primary is not None and primary.name == name
        priority = view.priority if view is not None else 0.0
        return (int(is_primary), int(not change.leaving(name)), priority, position[name])

    return sorted(change.tasks, key=key)


def _member_cycle(
    snap: RsSnapshot, change: RollingChange, name: str, options: MaintenanceOptions, arbiter: ArbiterPhase
) -> tuple[PlannedStep, ...] | Blocked:
    view = snap.member(name)
    leaving = change.leaving(name)
    if view is None:
        if leaving:
            return (PlannedStep(MoveName.SHUTDOWN, name),)  # already out of the set's config
        return Blocked(f"{name} is not in the config of {snap.rs_id} yet", BlockCause.WAITING, name)
    moves = [MoveName.ACQUIRE_LEASE]
    primary = snap.primary()
    if primary is not None and primary.name == name:
        if any(m.electable for m in snap.members if m.name != name):
            moves += [MoveName.WAIT_PREFERRED_PRIMARY_CAUGHT_UP, MoveName.STEP_DOWN, MoveName.WAIT_ELECTION]
        elif not options.accept_downtime:
            return Blocked(
                f"no other member of {snap.rs_id} can become primary, so maintaining {name} would leave the "
                "set without a primary; add an electable member, or set maintenance.acceptDowntime",
                BlockCause.PREFLIGHT,
                name,
                Check.PREFERRED_PRIMARY,
            )
    if leaving:
        moves += [MoveName.REMOVE_FROM_SET]
        if not view.healthy:
            # Nothing of it is left to shut down here; if its agent comes back, the goal config stops it.
            return tuple(PlannedStep(m, name, by_primary=True) for m in (*moves, MoveName.RELEASE_LEASE))
        moves.append(MoveName.SHUTDOWN)
    else:
        transfer = arbiter is ArbiterPhase.ACTIVE and view.votes > 0
        moves += [MoveName.TRANSFER_VOTE] if transfer else []
        moves += [
            MoveName.RESTART_STANDALONE,
            MoveName.PERFORM_TASK,
            MoveName.RESTART_REPLSET,
            MoveName.WAIT_SECONDARY_CAUGHT_UP,
        ]
        moves += [MoveName.RESTORE_VOTE] if transfer else []
    moves.append(MoveName.RELEASE_LEASE)
    return tuple(PlannedStep(m, name) for m in moves)


def _offline_plan(snap: RsSnapshot, change: RollingChange) -> tuple[PlannedStep, ...]:
    order = member_order(snap, change)
    staying = [m for m in order if not change.leaving(m)]
    steps = [PlannedStep(MoveName.SHUTDOWN, m) for m in order if change.leaving(m)]
    cycle = (MoveName.RESTART_STANDALONE, MoveName.PERFORM_TASK, MoveName.SHUTDOWN)
    steps += [PlannedStep(move, m) for m in staying for move in cycle]
    steps += [PlannedStep(MoveName.RESTART_REPLSET, m) for m in staying]
    steps.append(PlannedStep(MoveName.WAIT_PRIMARY, staying[0] if staying else order[0]))
    return tuple(steps)


def _arbiter_helps(snap: RsSnapshot) -> bool:
    """Whether handing votes to a temporary arbiter lets the set survive one more failure than without."""
    total = snap.total_votes
    return 2 <= total < 7 and (total - 1) - (total // 2 + 1) <= 0


# --- deciding -----------------------------------------------------------------------------------------------


def next_move(
    snap: RsSnapshot,
    change: RollingChange,
    progress: Progress,
    *,
    options: MaintenanceOptions = MaintenanceOptions(),
    policy: Policy = Policy(),
) -> Decision:
    """What happens next in ``change`` over the set seen in ``snap``, given ``progress``."""
    if not change.needs_roll:
        return Done(f"{snap.rs_id} needs no rolling restart")
    if progress.in_unit:
        decision = _continue(snap, change, progress, options, policy)
        if decision is not None:
            return decision
        progress = finish_unit(progress, snap.now)  # only satisfied waits were left
    if change.offline:
        if progress.unit is Unit.OFFLINE:
            return Done(f"{snap.rs_id} is back under its new name")
        if not options.accept_downtime:
            return Blocked(
                f"{change.old_rs_id} -> {snap.rs_id}: renaming needs every member down; set "
                "maintenance.acceptDowntime to accept it",
                BlockCause.PREFLIGHT,
            )
        plan = _offline_plan(snap, change)
        return _action(snap, change, progress, plan[0], options, policy, plan=plan, unit=Unit.OFFLINE)
    return _between_units(snap, change, progress, options, policy)


def _between_units(
    snap: RsSnapshot, change: RollingChange, progress: Progress, options: MaintenanceOptions, policy: Policy
) -> Decision:
    remaining = [m for m in member_order(snap, change) if m not in progress.done]
    arbiter = temporary_arbiter_name(snap.rs_id)
    if not remaining:
        if progress.arbiter is ArbiterPhase.ACTIVE:
            plan = (
                PlannedStep(MoveName.REMOVE_TEMPORARY_ARBITER, arbiter),
                PlannedStep(MoveName.STOP_TEMPORARY_ARBITER, arbiter),
            )
            return _action(snap, change, progress, plan[0], options, policy, plan=plan, unit=Unit.TEARDOWN)
        return Done(f"the rolling change of {snap.rs_id} is complete")
    voting_left = any((v := snap.member(m)) is not None and v.votes > 0 for m in remaining)
    if (
        options.temporary_arbiter is not None
        and progress.arbiter is ArbiterPhase.NONE
        and voting_left
        and _arbiter_helps(snap)
    ):
        plan = (
            PlannedStep(MoveName.START_TEMPORARY_ARBITER, arbiter),
            PlannedStep(MoveName.ADD_TEMPORARY_ARBITER, arbiter),
        )
        return _action(snap, change, progress, plan[0], options, policy, plan=plan, unit=Unit.SETUP)
    name = remaining[0]
    if snap.primary() is None and snap.member(name) is not None:
        return Blocked(
            f"{snap.rs_id} has no primary: waiting for it to elect one before {name} goes down",
            BlockCause.WAITING,
            name,
        )
    cycle = _member_cycle(snap, change, name, options, progress.arbiter)
    if isinstance(cycle, Blocked):
        return cycle
    return _action(snap, change, progress, cycle[0], options, policy, plan=cycle, unit=Unit.MEMBER)


def _continue(
    snap: RsSnapshot, change: RollingChange, progress: Progress, options: MaintenanceOptions, policy: Policy
) -> Decision | None:
    """The first step of the current unit still to do; None when only satisfied waits are left."""
    for step in progress.steps[progress.position :]:
        if _skipped(snap, step):
            continue
        primary = snap.primary()
        if step.move is MoveName.WAIT_ELECTION and primary is not None and primary.name == step.member:
            # Elected again once its step-down period ran out (a fault kept the others from winning).
            return _primary_elsewhere(snap, change, progress, step, options, policy)
        if step.move in WAITS:
            decision = _wait(snap, progress, step, policy)
            if decision is None:
                continue
            return decision
        if step.move in _OUT_OF_SET and progress.unit is Unit.MEMBER:
            decision = _primary_elsewhere(snap, change, progress, step, options, policy)
            if decision is not None:
                return decision
        decision = _action(snap, change, progress, step, options, policy)
        if isinstance(decision, Move) and step.move in _RESTARTS:
            return _overdue(snap, progress, decision, policy) or decision
        return decision
    return None


def _overdue(snap: RsSnapshot, progress: Progress, move: Move, policy: Policy) -> Blocked | None:
    """A member whose own restart has not succeeded for ``member_timeout_s`` is a failure too."""
    view = snap.member(move.member)
    if (view is not None and view.healthy) or _elapsed(snap, progress) <= policy.member_timeout_s:
        return None
    state = view.state.value if view is not None else "not in the set"
    return Blocked(
        f"{move.member} is {state} and {move.name.value} has not succeeded for "
        f"{_elapsed(snap, progress):.0f} s. "
        f"The rolling change of {snap.rs_id} stops here with the other members untouched, and resumes when "
        f"{move.member} is back",
        BlockCause.FAILURE,
        move.member,
        retry=move,
    )


def _primary_elsewhere(
    snap: RsSnapshot,
    change: RollingChange,
    progress: Progress,
    step: PlannedStep,
    options: MaintenanceOptions,
    policy: Policy,
) -> Decision | None:
    """A member leaves its set (or its vote) only while another member is primary. A fault can make the
    member of a secondary's cycle primary after the cycle began: it then steps down first."""
    primary = snap.primary()
    if primary is None:
        wait = PlannedStep(MoveName.WAIT_ELECTION, step.member)
        return _waiting(wait, f"waiting for {snap.rs_id} to have a primary before {step.member} goes down")
    if primary.name != step.member:
        return None
    handoff = preferred_primary(snap, step.member, policy)
    if not handoff.verdict.ok:
        return Blocked(
            str(handoff.verdict.blocked), BlockCause.PREFLIGHT, step.member, Check.PREFERRED_PRIMARY
        )
    if not handoff.ready:
        return _waiting(PlannedStep(MoveName.WAIT_PREFERRED_PRIMARY_CAUGHT_UP, step.member), handoff.note)
    return _action(snap, change, progress, PlannedStep(MoveName.STEP_DOWN, step.member), options, policy)


def _skipped(snap: RsSnapshot, step: PlannedStep) -> bool:
    """The step-down and the wait before it have nothing left to do once another member is primary."""
    if step.move not in (MoveName.WAIT_PREFERRED_PRIMARY_CAUGHT_UP, MoveName.STEP_DOWN):
        return False
    primary = snap.primary()
    return primary is not None and primary.name != step.member


def _elapsed(snap: RsSnapshot, progress: Progress) -> float:
    return snap.now - progress.since if progress.since is not None else 0.0


def _waiting(step: PlannedStep, note: str) -> Move:
    return Move(step.move, step.member, None, note, waiting=True)


def _wait(snap: RsSnapshot, progress: Progress, step: PlannedStep, policy: Policy) -> Decision | None:
    name = step.member
    primary = snap.primary()
    if step.move is MoveName.WAIT_PRIMARY:
        return None if primary is not None else _waiting(step, f"waiting for {snap.rs_id} to elect a primary")
    if step.move is MoveName.WAIT_PREFERRED_PRIMARY_CAUGHT_UP:
        if primary is None:
            return _waiting(step, f"waiting for {snap.rs_id} to have a primary")
        handoff = preferred_primary(snap, name, policy)
        if not handoff.verdict.ok:
            return Blocked(str(handoff.verdict.blocked), BlockCause.PREFLIGHT, name, Check.PREFERRED_PRIMARY)
        return None if handoff.ready else _waiting(step, handoff.note)
    if step.move is MoveName.WAIT_ELECTION:
        if primary is not None and primary.name != name:
            return None
        if _elapsed(snap, progress) > policy.election_timeout_s:
            return Blocked(
                f"no primary elected {_elapsed(snap, progress):.0f} s after {name} stepped down",
                BlockCause.FAILURE,
                name,
            )
        return _waiting(step, f"waiting for {snap.rs_id} to elect a new primary")
    view = snap.member(name)  # WAIT_SECONDARY_CAUGHT_UP
    if view is not None and view.healthy:
        lag = snap.lag_s(name) or 0.0
        if view.arbiter or view.state is MemberState.PRIMARY or lag <= policy.catch_up_lag_s:
            return None
        return _waiting(step, f"waiting for {name} to catch up ({lag:.0f} s behind)")
    state = view.state.value if view is not None else "not in the set"
    if _elapsed(snap, progress) > policy.member_timeout_s:
        return Blocked(
            f"{name} did not come back within {policy.member_timeout_s:.0f} s of its restart: it is {state}. "
            f"The rolling change of {snap.rs_id} stops here with the other members untouched, and resumes "
            f"when {name} is healthy again",
            BlockCause.FAILURE,
            name,
        )
    return _waiting(step, f"waiting for {name} to rejoin {snap.rs_id} as a secondary ({state})")


def _gate(
    snap: RsSnapshot,
    change: RollingChange,
    progress: Progress,
    step: PlannedStep,
    options: MaintenanceOptions,
    policy: Policy,
) -> Verdict:
    """The preflight checks a going-down move must pass."""
    name, move = step.member, step.move
    leaving = change.leaving(name)
    if progress.unit is Unit.OFFLINE or move not in (
        MoveName.ACQUIRE_LEASE,
        MoveName.STEP_DOWN,
        MoveName.TRANSFER_VOTE,
        MoveName.RESTART_STANDALONE,
        MoveName.REMOVE_FROM_SET,
    ):
        return Verdict()
    verdict = fault_tolerance(snap, name, leaving=leaving, options=options)
    if not leaving and move in (MoveName.ACQUIRE_LEASE, MoveName.RESTART_STANDALONE):
        verdict = verdict.then(oplog_window(snap, name, progress.observed_out_s, policy))
    if move is MoveName.ACQUIRE_LEASE and MoveName.STEP_DOWN in {s.move for s in progress.steps}:
        verdict = verdict.then(preferred_primary(snap, name, policy).verdict)
    return verdict


def _action(
    snap: RsSnapshot,
    change: RollingChange,
    progress: Progress,
    step: PlannedStep,
    options: MaintenanceOptions,
    policy: Policy,
    *,
    plan: tuple[PlannedStep, ...] = (),
    unit: Unit | None = None,
) -> Move | Blocked:
    name, move = step.member, step.move
    # The first step of a unit is gated as part of that unit.
    unit_progress = replace(progress, unit=unit, steps=plan, position=0) if plan else progress
    verdict = _gate(snap, change, unit_progress, step, options, policy)
    if not verdict.ok:
        return Blocked(str(verdict.blocked), BlockCause.PREFLIGHT, name, verdict.check, verdict.warnings)
    primary = snap.primary()
    actor: str | None = name
    if move in _BY_PRIMARY or step.by_primary:
        if primary is None:
            return Blocked(
                f"{move.value} for {name} needs a primary to reconfigure {snap.rs_id}: waiting for one",
                BlockCause.WAITING,
                name,
            )
        actor = primary.name
    tasks = tuple(sorted(change.tasks.get(name, frozenset()))) if move is MoveName.PERFORM_TASK else ()
    return Move(
        move,
        name,
        actor,
        _note(snap, change, step, tasks),
        tasks=tasks,
        params=_params(snap, change, step, options, policy),
        unit=unit,
        plan=plan,
        warnings=verdict.warnings,
    )


def _note(snap: RsSnapshot, change: RollingChange, step: PlannedStep, tasks: tuple[MemberTask, ...]) -> str:
    name = step.member
    notes = {
        MoveName.START_TEMPORARY_ARBITER: f"start the temporary arbiter {name}",
        MoveName.ADD_TEMPORARY_ARBITER: f"add the temporary arbiter {name} to {snap.rs_id}",
        MoveName.ACQUIRE_LEASE: f"ask for the maintenance lease of {snap.rs_id} for {name}",
        MoveName.STEP_DOWN: f"step the primary {name} down",
        MoveName.TRANSFER_VOTE: f"hand the vote of {name} to the temporary arbiter while it is out",
        MoveName.RESTART_STANDALONE: f"restart {name} standalone on its maintenance port",
        MoveName.PERFORM_TASK: f"{', '.join(t.value for t in tasks) or 'maintain'} on {name}",
        MoveName.RESTART_REPLSET: f"restart {name} in replSet mode as a member of {snap.rs_id}",
        MoveName.RESTORE_VOTE: f"give {name} its vote and priority back",
        MoveName.REMOVE_FROM_SET: f"remove {name} from {change.old_rs_id or snap.rs_id}",
        MoveName.SHUTDOWN: f"shut {name} down",
        MoveName.RELEASE_LEASE: f"release the maintenance lease of {snap.rs_id}: {name} is done",
        MoveName.REMOVE_TEMPORARY_ARBITER: f"remove the temporary arbiter {name} from {snap.rs_id}",
        MoveName.STOP_TEMPORARY_ARBITER: f"stop the temporary arbiter {name}",
    }
    return notes.get(step.move, step.move.value)


def _params(
    snap: RsSnapshot, change: RollingChange, step: PlannedStep, options: MaintenanceOptions, policy: Policy
) -> dict[str, Any]:
    move = step.move
    if move is MoveName.STEP_DOWN:
        return {
            "stepDownSecs": policy.step_down_secs,
            "secondaryCatchUpPeriodSecs": policy.secondary_catch_up_period_secs,
            "preferredPrimary": preferred_primary(snap, step.member, policy).target,
        }
    if move is MoveName.RESTART_STANDALONE:
        return {"maintenancePortOffset": policy.maintenance_port_offset}
    if move is MoveName.PERFORM_TASK and Task.BUILD_INDEX in change.tasks[step.member]:
        return {"indexBuilds": [dict(e) for e in change.index_builds]}
    if move is MoveName.PERFORM_TASK and change.tasks[step.member] & UNIQUE_INDEX_TASKS:
        return {"uniqueIndex": dict(change.index_builds[0]), "buildId": change.build_id}
    if move in _ARBITER_MOVES:
        spec = options.temporary_arbiter
        return {"name": step.member, "hostname": spec.hostname, "port": spec.port} if spec else {}
    return {}

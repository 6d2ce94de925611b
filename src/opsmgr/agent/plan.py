"""Deciding what to do: (observed state, goal config, this host) -> a plan of named moves per process.

Pure: no I/O, no clock, no randomness; the loop executes the first step of a plan and asks again on the next
cycle, so a plan is a prediction that gets recomputed from fresh observations every time.

Who acts on a replica set: before it exists, only the agent of the first enabled member in the config's
member list initiates it (RsInit), with every enabled member; the others wait (WaitRsInit). Once it exists,
only the agent whose host runs the PRIMARY reconfigures it (RsReconfig), one voting member at a time (as
MongoDB's safe reconfig requires), after waiting for every enabled member to be up (WaitAllRsMembersUp).
Changes that would make that primary unelectable (removal, priority 0, hidden, votes 0) come last, after a
StepDown, so that the next primary's agent finishes them. Agents of other members wait (WaitPrimary).
The set is at goal once its config matches, every enabled member is up and, when priorities differ, the
highest-priority member that is up has taken over as primary (MongoDB's priority takeover; WaitPrimary).
A replica set this agent has seen initiated is never initiated again, whatever a restarted process says.

Moves carry Ops Manager's names where it has one. A change that needs a rolling restart is not the
planner's: the server registers it as a rolling change, and the processes of that replica set on this
host are handed to the agent's maintenance executor (``agent.maintenance``) while it lasts
(``Snapshot.maintenance`` names them; their plan is the one ``RollingMaintenance`` step). Without a
registered change a replica set member that differs only waits (ChangeVersion / RollingChangeArgs,
blocked), a standalone process is simply restarted, and ``setParameter`` values MongoDB applies at runtime
(``maintenance.rolling.RUNTIME_PARAMETERS``) are set on the running process (SetParameter).

A ``mongos`` process and its sharded cluster are the sharding sub-planner's (``agent.sharding``): started
with its cluster's ``configDB`` once its config servers can answer, then the cluster's moves (AddShard,
ShardCollection, RemoveShard) through the cluster's coordinator mongos; a config server replica set is
initiated with ``configsvr``. The moves and steps are ``agent.moves``'s. May import ``opsmgr.errors``,
``opsmgr.agent.moves``, ``opsmgr.agent.sharding``, ``opsmgr.agent.rsconfig`` (replica set configs),
``opsmgr.drivers.base`` (types only), ``opsmgr.automation.config`` (pure accessors),
``opsmgr.automation.rules`` and ``opsmgr.maintenance.rolling`` (pure).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from opsmgr.agent.moves import WAIT as WAIT
from opsmgr.agent.moves import Move as Move
from opsmgr.agent.moves import Step as Step
from opsmgr.agent.rsconfig import desired_members, member_host, reconfig_plan
from opsmgr.agent.rsconfig import initial_rs_config as initial_rs_config
from opsmgr.agent.sharding import (
    RouterView,
    cluster_named,
    initial_set_config,
    is_mongos,
    mongos_spec,
    router_steps,
    same_router_options,
)
from opsmgr.automation.config import (
    process_port,
    processes_by_name,
    processes_on_host,
    replica_set,
    replica_set_of,
)
from opsmgr.automation.rules import is_electable
from opsmgr.drivers.base import MemberState, OplogWindow, ProcessObservation, ProcessSpec, RsStatus, RunMode
from opsmgr.maintenance.rolling import RUNTIME_PARAMETERS

DEFAULT_DBPATH = "/data/db"
ROLLING_NOT_YET = (
    "waiting for rolling maintenance: the server has no rolling change under way for its replica set, so "
    "the process keeps running as it is"
)
HEALTHY_STATES = frozenset({MemberState.PRIMARY, MemberState.SECONDARY, MemberState.ARBITER})


@dataclass(frozen=True)
class LocalProcess:
    """One process of this host as the driver saw it during one snapshot."""

    observation: ProcessObservation
    rs_status: RsStatus | None = None
    rs_config: Mapping[str, Any] | None = None
    connections: int | None = None
    # Read only while a rolling change may need it (its oplog check): None otherwise.
    oplog_window: OplogWindow | None = None
    # A mongos: the cluster as read through it (listShards, sharded collections).
    router: RouterView | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything one cycle knows: the processes of this host (those of the goal config and those the agent
    managed before) and, from the agent's memory, the replica sets it has already seen initiated."""

    processes: Mapping[str, LocalProcess]
    initiated_sets: frozenset[str] = frozenset()
    maintenance: Mapping[str, str] = field(default_factory=dict)  # process -> what its rolling change does
    busy: Mapping[str, str] = field(default_factory=dict)  # process -> the host's long action that owns it

    def running(self, name: str) -> bool:
        local = self.processes.get(name)
        return local is not None and local.observation.running

    def status(self, name: str) -> RsStatus | None:
        local = self.processes.get(name)
        return local.rs_status if local is not None and local.observation.running else None

    def config(self, name: str) -> Mapping[str, Any] | None:
        local = self.processes.get(name)
        return local.rs_config if local is not None and local.observation.running else None


@dataclass(frozen=True)
class ProcessPlan:
    name: str
    steps: tuple[Step, ...]  # never empty; the last one is Goal

    @property
    def current(self) -> Step:
        return self.steps[0]

    @property
    def at_goal(self) -> bool:
        return self.current.move is Move.GOAL

    @property
    def blocked_reason(self) -> str | None:
        return self.current.note if self.current.blocked else None

    def moves(self) -> list[str]:
        return [s.move.value for s in self.steps]


# --- goal accessors ----------------------------------------------------------------------------------------


def _arg(args: Mapping[str, Any], dotted: str) -> Any:
    node: Any = args
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def process_spec(process: Mapping[str, Any]) -> ProcessSpec:
    """How the driver must start a process of the goal config (in replSet mode when it names a set)."""
    args = process.get("args2_6", {})
    return ProcessSpec(
        name=process["name"],
        hostname=process["hostname"],
        port=process_port(process),
        version=process["version"],
        args=copy.deepcopy(dict(args)),
        repl_set_name=_arg(args, "replication.replSetName") or None,
        dbpath=_arg(args, "storage.dbPath") or DEFAULT_DBPATH,
        log_path=_arg(args, "systemLog.path"),
    )


def _initiator(goal: Mapping[str, Any], rs: Mapping[str, Any]) -> str | None:
    procs = processes_by_name(goal)
    return next((m["host"] for m in rs["members"] if not procs[m["host"]].get("disabled", False)), None)


# --- per-process planning ----------------------------------------------------------------------------------


def _process_steps(obs: ProcessObservation | None, spec: ProcessSpec) -> list[Step]:
    """Bring the process itself to its spec: started, in the right mode, at the right version and options."""
    want_mode = RunMode.REPLSET if spec.repl_set_name else RunMode.STANDALONE
    if obs is None or not obs.running:
        return [Step(Move.START, f"start {spec.name} on port {spec.port}", spec=spec)]
    if obs.mode is RunMode.STANDALONE and want_mode is RunMode.REPLSET:
        # A standalone member is already out of its set, so restarting it in replSet mode costs nothing.
        return [
            Step(Move.STOP, f"stop {spec.name}, running standalone"),
            Step(Move.START, f"restart {spec.name} in replSet mode", spec=spec),
        ]
    version_differs = obs.version is not None and obs.version != spec.version
    differs = (
        (obs.mode is not None and obs.mode is not want_mode)
        or (obs.port is not None and obs.port != spec.port)
        or (bool(obs.args) and obs.args != spec.args)
    )
    if want_mode is RunMode.STANDALONE and (version_differs or differs):
        # Not a replica set member: there is no availability to keep, a restart is the change.
        return [
            Step(Move.STOP, f"stop {spec.name} to restart it with its new options"),
            Step(Move.START, f"restart {spec.name} with its new options", spec=spec),
        ]
    if version_differs:
        return [
            Step(
                Move.CHANGE_VERSION,
                f"change version {obs.version} -> {spec.version}; {ROLLING_NOT_YET}",
                blocked=WAIT,
            )
        ]
    runtime = runtime_parameters(obs.args, spec.args) if differs else None
    if runtime:
        listed = ", ".join(f"{k}={v!r}" for k, v in sorted(runtime.items()))
        return [Step(Move.SET_PARAMETER, f"set {listed} on the running {spec.name}", parameters=runtime)]
    if differs:
        return [Step(Move.ROLLING_CHANGE_ARGS, f"change startup options; {ROLLING_NOT_YET}", blocked=WAIT)]
    return []


def runtime_parameters(running: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``setParameter`` values to apply at runtime when they are all that separates ``running`` from
    ``wanted`` (None otherwise: a removed parameter only falls back to its default by a restart)."""
    have, want = dict(running.get("setParameter") or {}), dict(wanted.get("setParameter") or {})
    rest_have = {k: v for k, v in running.items() if k != "setParameter"}
    rest_want = {k: v for k, v in wanted.items() if k != "setParameter"}
    changed = {k: v for k, v in want.items() if have.get(k) != v}
    if rest_have != rest_want or set(have) - set(want) or not changed or set(changed) - RUNTIME_PARAMETERS:
        return None
    return changed


def _up(status: RsStatus, host: str) -> bool:
    member = next((m for m in status.members if m.host == host), None)
    return member is not None and member.health and member.state in HEALTHY_STATES


def _members_down(
    status: RsStatus, config: Mapping[str, Any], goal: Mapping[str, Any], rs: Mapping[str, Any]
) -> list[str]:
    """Enabled goal members in the set's config that are not up (disabled ones are down on purpose)."""
    in_config = {m["host"] for m in config.get("members", [])}
    hosts = [m["host"] for m in desired_members(goal, rs, enabled_only=True)]
    return [h for h in hosts if h in in_config and not _up(status, h)]


def _state_of(status: RsStatus, host: str) -> str:
    member = next((m for m in status.members if m.host == host), None)
    return member.state.value if member is not None else "not in the config"


def _coordinator_steps(
    name: str,
    status: RsStatus,
    config: Mapping[str, Any],
    goal: Mapping[str, Any],
    rs: Mapping[str, Any],
    my_host: str,
) -> list[Step]:
    """The primary's agent: reconfigure toward the goal, waiting for all members between steps."""
    rs_id = rs["_id"]
    down = _members_down(status, config, goal, rs)
    wait_up = Step(
        Move.WAIT_ALL_RS_MEMBERS_UP,
        f"waiting for all members of {rs_id} to be up: "
        + ", ".join(f"{h} is {_state_of(status, h)}" for h in down),
        blocked=WAIT,
    )
    predicted_wait = Step(
        Move.WAIT_ALL_RS_MEMBERS_UP, f"waiting for all members of {rs_id} to be up", blocked=WAIT
    )
    rp = reconfig_plan(config, desired_members(goal, rs), rs.get("settings"), my_host)
    steps: list[Step] = []
    for i, (next_config, note) in enumerate(rp.configs):
        if i == 0 and down:
            steps.append(wait_up)
        elif i > 0:
            steps.append(predicted_wait)
        steps.append(Step(Move.RS_RECONFIG, f"reconfigure {rs_id}: {note}", rs_config=next_config))
    if rp.deferred:
        steps.append(
            Step(Move.STEP_DOWN, f"step {name} down so that the next primary can " + "; ".join(rp.deferred))
        )
        return steps
    if rp.configs:
        steps.append(predicted_wait)
    elif down:
        steps.append(wait_up)
    takeover = _preferred_primary(status, goal, rs, my_host, predicted=bool(rp.configs))
    if takeover is not None:
        steps.append(Step(Move.WAIT_PRIMARY, takeover, blocked=WAIT))
    return steps


def _preferred_primary(
    status: RsStatus, goal: Mapping[str, Any], rs: Mapping[str, Any], my_host: str, *, predicted: bool
) -> str | None:
    """Why the set is not yet in the state its priorities ask for: an enabled member with a higher priority
    than this primary will take over (MongoDB's priority takeover, once it is caught up). Unless
    ``predicted``, only a member that is up counts: one that is down cannot take over."""
    members = desired_members(goal, rs, enabled_only=True)
    mine = next((m for m in members if m["host"] == my_host), None)
    if mine is None:
        return None
    better = [
        m
        for m in members
        if is_electable(m) and m["priority"] > mine["priority"] and (predicted or _up(status, m["host"]))
    ]
    if not better:
        return None
    top = max(better, key=lambda m: m["priority"])
    return (
        f"waiting for {top['host']} (priority {top['priority']:g}) to take over as primary of {rs['_id']} "
        f"from {my_host} (priority {mine['priority']:g})"
    )


def _config_differs(
    config: Mapping[str, Any] | None, goal: Mapping[str, Any], rs: Mapping[str, Any]
) -> list[str]:
    """What still separates a member's view of the set config from the goal (empty when nothing)."""
    if config is None:
        return ["no replica set config yet"]
    rp = reconfig_plan(config, desired_members(goal, rs), rs.get("settings"), None)
    return [note for _, note in rp.configs]


def _member_steps(name: str, goal: Mapping[str, Any], rs: Mapping[str, Any], snap: Snapshot) -> list[Step]:
    """Everything after the process runs: initiation, configuration, a primary, its own health. While the
    process is not running yet, what it will need is predicted from the other local members, if any."""
    rs_id = rs["_id"]
    statuses: dict[str, RsStatus] = {}
    for member in rs["members"]:
        status = snap.status(member["host"])
        if status is not None and status.set_name == rs_id:
            statuses[member["host"]] = status
    own = statuses.get(name)
    if own is not None and own.my_state is MemberState.REMOVED:
        own = None  # removed earlier and wanted again: it waits to be added like a new member
    initiated = rs_id in snap.initiated_sets or bool(statuses)

    steps: list[Step] = []
    if not initiated:
        initiator = _initiator(goal, rs)
        if initiator == name:
            return [
                Step(Move.RS_INIT, f"initiate {rs_id} from {name}", rs_config=initial_set_config(goal, rs)),
                Step(Move.WAIT_PRIMARY, f"waiting for {rs_id} to elect a primary", blocked=WAIT),
                Step(
                    Move.WAIT_ALL_RS_MEMBERS_UP, f"waiting for all members of {rs_id} to be up", blocked=WAIT
                ),
            ]
        steps.append(Step(Move.WAIT_RS_INIT, f"waiting for {initiator} to initiate {rs_id}", blocked=WAIT))
    elif own is None and snap.running(name):
        steps.append(
            Step(Move.WAIT_RS_INIT, f"waiting for the primary of {rs_id} to add {name}", blocked=WAIT)
        )

    config = snap.config(name)
    if own is not None and own.my_state is MemberState.PRIMARY and config is not None:
        my_host = member_host(processes_by_name(goal)[name])
        return steps + _coordinator_steps(name, own, config, goal, rs, my_host)

    view = own if own is not None else next(iter(statuses.values()), None)
    primary = view.primary() if view is not None else None
    if primary is None and (view is not None or not initiated):
        steps.append(Step(Move.WAIT_PRIMARY, f"waiting for {rs_id} to elect a primary", blocked=WAIT))
    elif primary is not None and own is not None and (pending := _config_differs(config, goal, rs)):
        steps.append(
            Step(
                Move.WAIT_PRIMARY,
                f"waiting for the primary {primary.host} to reconfigure {rs_id}: {'; '.join(pending)}",
                blocked=WAIT,
            )
        )
    if own is None or own.my_state not in HEALTHY_STATES:
        state = own.my_state.value if own is not None else "not a member yet"
        steps.append(Step(Move.WAIT_HEALTHY, f"waiting for {name} to be healthy ({state})", blocked=WAIT))
    return steps


def _leave_steps(name: str, goal: Mapping[str, Any], snap: Snapshot, why: str) -> list[Step]:
    """Stop a process that is disabled or no longer in the config: a primary steps down first (when another
    member can take over), and a member the goal drops from its set waits until the primary removed it."""
    if not snap.running(name):
        return []
    stop = Step(Move.STOP, f"stop {name}: {why}")
    status = snap.status(name)
    if status is None or status.my_state is MemberState.REMOVED:
        return [stop]
    if status.my_state is MemberState.PRIMARY:
        others = [m for m in status.members if not m.self and m.health and m.state is MemberState.SECONDARY]
        return [Step(Move.STEP_DOWN, f"step {name} down before stopping it"), stop] if others else [stop]
    goal_rs = replica_set(goal, status.set_name)
    leaving = goal_rs is not None and name not in [m["host"] for m in goal_rs["members"]]
    if leaving and any(m.self for m in status.members):
        return [
            Step(
                Move.WAIT_PRIMARY,
                f"waiting for the primary of {status.set_name} to remove {name}",
                blocked=WAIT,
            ),
            stop,
        ]
    return [stop]


def _goal_step(note: str) -> Step:
    return Step(Move.GOAL, note)


def _mongod_steps(
    name: str, process: Mapping[str, Any], goal: Mapping[str, Any], snap: Snapshot
) -> list[Step]:
    local = snap.processes.get(name)
    own = _process_steps(local.observation if local is not None else None, process_spec(process))
    rs = replica_set_of(goal, name)
    status = snap.status(name)
    if rs is not None and status is not None and status.set_name != rs["_id"]:
        # Its data belongs to another set: initiating or reconfiguring around it would be wrong.
        return [
            Step(
                Move.ROLLING_CHANGE_ARGS,
                f"move {name} from replica set {status.set_name} to {rs['_id']}; {ROLLING_NOT_YET}",
                blocked=WAIT,
            )
        ]
    set_steps = _member_steps(name, goal, rs, snap) if rs is not None else []
    # A change that needs a rolling restart waits; the set's own business must not wait behind it.
    return set_steps + own if own and own[0].blocked else own + set_steps


def _config_servers_unready(goal: Mapping[str, Any], csrs: str, snap: Snapshot) -> bool:
    """Whether this host runs members of the config server set ``csrs`` and none of them sees a primary (a
    host without any member cannot tell before its mongos runs)."""
    rs = replica_set(goal, csrs)
    local = [m["host"] for m in (rs["members"] if rs is not None else []) if m["host"] in snap.processes]
    statuses = [snap.status(h) for h in local]
    return bool(local) and not any(s is not None and s.primary() is not None for s in statuses)


def _mongos_steps(
    name: str, process: Mapping[str, Any], goal: Mapping[str, Any], snap: Snapshot
) -> list[Step]:
    """A mongos: started once its config servers can answer, restarted with new options (it holds no data,
    so a restart is the change), then its cluster's part (``agent.sharding``)."""
    cluster = cluster_named(goal, process.get("cluster"))
    local = snap.processes.get(name)
    obs = local.observation if local is not None else None
    spec = mongos_spec(process, goal)
    if obs is not None and obs.running and same_router_options(obs.args, spec.args):
        spec = replace(spec, args=dict(obs.args))
    elif cluster is not None and _config_servers_unready(goal, cluster["configServerReplica"], snap):
        return [
            Step(
                Move.WAIT_FOR_CONFIG_SERVER,
                f"waiting for the config server replica set {cluster['configServerReplica']} of "
                f"{cluster['name']} to have a primary before starting {name}",
                blocked=WAIT,
            )
        ]
    own = _process_steps(obs, spec)
    if own or cluster is None:
        return own
    return router_steps(name, goal, cluster, local.router if local is not None else None)


def _maintenance_step(name: str, snap: Snapshot) -> Step:
    if name in snap.busy:
        return Step(Move.LONG_ACTION, snap.busy[name], blocked=WAIT)
    return Step(Move.ROLLING_MAINTENANCE, snap.maintenance[name], blocked=WAIT)


def _owned(name: str, snap: Snapshot) -> bool:
    """A rolling change's or the host's long action: automation leaves the process alone meanwhile."""
    return name in snap.maintenance or name in snap.busy


def plan(observed: Snapshot, goal: Mapping[str, Any], hostname: str) -> list[ProcessPlan]:
    """One plan per process of this host: those of the goal config in config order, then any process the
    agent managed before that the goal no longer references (to be stopped)."""
    plans: list[ProcessPlan] = []
    mine = processes_on_host(goal, hostname)
    for process in mine:
        name = process["name"]
        if process.get("disabled", False):
            steps = _leave_steps(name, goal, observed, "disabled in the config")
        elif _owned(name, observed):
            steps = [_maintenance_step(name, observed)]
        elif is_mongos(process):
            steps = _mongos_steps(name, process, goal, observed)
        elif process.get("processType", "mongod") != "mongod":
            steps = [
                Step(
                    Move.START,
                    f"{process['processType']} processes are not supported by this agent",
                    blocked=WAIT,
                )
            ]
        else:
            steps = _mongod_steps(name, process, goal, observed)
        plans.append(ProcessPlan(name, (*steps, _goal_step(f"{name} is in goal state"))))
    names = {p["name"] for p in mine}
    for name in sorted(set(observed.processes) - names):
        if _owned(name, observed):
            plans.append(ProcessPlan(name, (_maintenance_step(name, observed), _goal_step(f"{name} left"))))
            continue
        steps = _leave_steps(name, goal, observed, "no longer in the config")
        plans.append(ProcessPlan(name, (*steps, _goal_step(f"{name} is stopped"))))
    return plans

"""How the moves of a rolling change are carried out on this host's processes, through the driver.

Owns the specs a member restarts with (standalone on its maintenance port with a task's start options, as it
runs now, or as the goal has it; a shard or config server member without its cluster role, see
``maintenance.snapshot.standalone_args``), the temporary arbiter's spec, a task's work on a standalone member
(index builds, a unique index build's member step checked with ``listIndexes``, a replica set rename) and
the reconfigurations a move asks of the primary. What to do, when, and reporting it are the executor's
(``agent.maintenance``), except for a sharded cluster's own steps, which :class:`ClusterSteps` carries out
and reports whole: the server decides each one, and it is the balancer stopped or set back through the
``ShardingDriver`` commands of a local mongos, or a mongos restarted. The server's maintenance routes are
:class:`MaintenanceApi`. May import ``opsmgr.errors``,
``opsmgr.drivers.base``, ``opsmgr.automation.config``, ``opsmgr.maintenance`` and ``opsmgr.agent``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from opsmgr.agent.executor import LongAction, LongActions
from opsmgr.agent.plan import Snapshot, process_spec
from opsmgr.agent.sharding import mongos_spec
from opsmgr.automation.config import processes_by_name
from opsmgr.drivers.base import (
    CommandConflict,
    CommandInvalid,
    Driver,
    DriverError,
    ProcessSpec,
    RunMode,
    ShardingDriver,
)
from opsmgr.errors import OpsmgrError
from opsmgr.maintenance.moves import ClusterMove, ClusterMoveName, ClusterProgress, Move, MoveName, Progress
from opsmgr.maintenance.rolling import UNIQUE_INDEX_TASKS, MemberTask, Task, UniqueIndexTask
from opsmgr.maintenance.snapshot import Policy, RsSnapshot, maintenance_port, standalone_args
from opsmgr.maintenance.unique_index import index_name

# Start options a task adds to the member's standalone restart (MongoDB's procedure for that task).
TASK_START_OPTIONS: dict[MemberTask, dict[str, Any]] = {
    Task.ROTATE_KMIP_KEY: {"security": {"kmip": {"rotateMasterKey": True}}},
}
# Tasks carried out without restarting the member (it is already standalone).
_NO_RESTART_TASKS = frozenset({Task.BUILD_INDEX, *UNIQUE_INDEX_TASKS})

Call = Callable[..., Awaitable[Any]]

log = logging.getLogger(__name__)


class MaintenanceApi(Protocol):
    """The server's maintenance routes for one project (``AgentClient.maintenance`` over HTTP)."""

    async def maintenance(
        self,
        method: str,
        rs_id: str,
        path: str = "",
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Look:
    """What one cycle looks at a replica set or a sharded cluster with: its ``key`` (the set's id, or
    ``cluster:<name>``), its view from the server, the agent's snapshot of its host, and the configs after
    (``goal``) and before (``previous``) the change."""

    key: str
    view: Mapping[str, Any]
    snap: Snapshot
    goal: Mapping[str, Any]
    previous: Mapping[str, Any] | None


@dataclass(frozen=True)
class InHand:
    """A move to carry out, with everything it is carried out from: the set's view from the server, the
    procedure's snapshot of the set and the agent's of its host, the configs before and after the change."""

    rs_id: str
    view: Mapping[str, Any]
    move: Move
    progress: Progress
    rs_snap: RsSnapshot
    snap: Snapshot
    goal: Mapping[str, Any]
    previous: Mapping[str, Any] | None
    policy: Policy


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, Mapping) else copy.deepcopy(value)
    return out


def standalone_spec(spec: ProcessSpec, policy: Policy, extra: Mapping[str, Any] | None = None) -> ProcessSpec:
    """``spec`` out of its set: no ``replSetName`` (nor cluster role), on its maintenance port, with ``extra``
    start options."""
    port = maintenance_port(spec.port, policy)
    args = standalone_args(_merge(spec.args, extra or {}))
    replication = {k: v for k, v in (args.get("replication") or {}).items() if k != "replSetName"}
    if replication:
        args["replication"] = replication
    else:
        args.pop("replication", None)
    args.setdefault("net", {})["port"] = port
    return ProcessSpec(spec.name, spec.hostname, port, spec.version, args, None, spec.dbpath, spec.log_path)


def spec_of(
    name: str, goal: Mapping[str, Any], previous: Mapping[str, Any] | None, *, new: bool
) -> ProcessSpec:
    """The goal's spec of ``name`` (``new``), else the one it had before the change."""
    configs = (goal, previous or {}) if new else (previous or {}, goal)
    for config in configs:
        proc = processes_by_name(config).get(name)
        if proc is not None:
            return process_spec(proc)
    raise OpsmgrError(f"{name} is in neither the goal config nor the previous one")


def running_spec(
    name: str, snap: Snapshot, goal: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> ProcessSpec:
    """How ``name`` runs now (its version and options), to restart it standalone as it is."""
    spec = spec_of(name, goal, previous, new=False)
    lp = snap.processes.get(name)
    obs = lp.observation if lp is not None else None
    if obs is None or not obs.running or obs.mode is not RunMode.REPLSET or not obs.args:
        return spec
    port = obs.port or spec.port
    return ProcessSpec(
        name,
        spec.hostname,
        port,
        obs.version or spec.version,
        copy.deepcopy(obs.args),
        spec.repl_set_name,
        spec.dbpath,
        spec.log_path,
    )


class MoveDriver:
    """Carries out one move on this host's processes; ``call`` runs a blocking driver call (the executor's
    worker-thread runner)."""

    def __init__(self, driver: Driver, call: Call) -> None:
        self.driver = driver
        self._call = call

    async def drive(self, hand: InHand) -> dict[str, Any]:
        """Carry the move out through the driver; what its report adds (a refused unique index)."""
        rs_id, move, goal, previous, policy = hand.rs_id, hand.move, hand.goal, hand.previous, hand.policy
        name, d = move.member, self.driver
        if move.name is MoveName.RESTART_STANDALONE:
            spec = standalone_spec(running_spec(name, hand.snap, goal, previous), policy)
            await self._restart(name, spec)
        elif move.name is MoveName.PERFORM_TASK:
            return await self._perform(hand)
        elif move.name is MoveName.RESTART_REPLSET:
            await self._restart(name, spec_of(name, goal, previous, new=True))
        elif move.name is MoveName.STEP_DOWN:
            await self._call(
                d.step_down,
                name,
                step_down_secs=int(move.params.get("stepDownSecs", policy.step_down_secs)),
                catch_up_secs=int(
                    move.params.get("secondaryCatchUpPeriodSecs", policy.secondary_catch_up_period_secs)
                ),
            )
        elif move.name in (MoveName.SHUTDOWN, MoveName.STOP_TEMPORARY_ARBITER):
            await self._call(d.stop, name)
        elif move.name is MoveName.START_TEMPORARY_ARBITER:
            await self._call(d.start, self._arbiter_spec(rs_id, move, goal))
        else:
            await self._reconfigure(rs_id, hand.view, move)
        return {}

    async def drive_cluster(
        self, move: ClusterMove, goal: Mapping[str, Any], previous: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Carry a sharded cluster's step out on the local mongos ``move.actor``; what its report adds (the
        balancer's mode before it was stopped)."""
        if move.name is ClusterMoveName.RESTART_MONGOS:
            process = processes_by_name(goal).get(move.actor)
            if process is None:
                raise OpsmgrError(f"{move.actor} is not in the goal config")
            await self._restart(move.actor, mongos_spec(process, goal))
            return {}
        if not hasattr(self.driver, "set_balancer"):
            raise OpsmgrError(f"the driver of {move.actor} has no sharding commands")
        sharding = cast(ShardingDriver, self.driver)
        if move.name is ClusterMoveName.STOP_BALANCER:
            state = await self._call(sharding.balancer_status, move.actor)
            await self._call(sharding.set_balancer, move.actor, running=False)
            return {"balancerWas": state.mode}
        await self._call(sharding.set_balancer, move.actor, running=bool(move.params.get("running")))
        return {}

    async def _restart(self, name: str, spec: ProcessSpec) -> None:
        await self._call(self.driver.stop, name)
        await self._call(self.driver.start, spec)

    async def _perform(self, hand: InHand) -> dict[str, Any]:
        rs_id, move, goal, previous, policy = hand.rs_id, hand.move, hand.goal, hand.previous, hand.policy
        name, tasks = move.member, set(move.tasks)
        if tasks - _NO_RESTART_TASKS:
            extra: dict[str, Any] = {}
            for task in sorted(tasks):
                extra = _merge(extra, TASK_START_OPTIONS.get(task, {}))
            await self._restart(name, standalone_spec(spec_of(name, goal, previous, new=True), policy, extra))
        if Task.RENAME_REPLICA_SET in tasks:
            await self._call(self.driver.rename_replica_set, name, rs_id)
        for entry in move.params.get("indexBuilds", []):
            ns = f"{entry['dbName']}.{entry['collectionName']}"
            keys = [(str(k), v) for k, v in entry["key"]]
            await self._call(self.driver.create_index, name, ns, keys, dict(entry.get("options") or {}))
        if tasks & UNIQUE_INDEX_TASKS:
            drop = UniqueIndexTask.DROP_UNIQUE_INDEX in tasks
            refused: str | None = await self._call(self._unique_index, name, move.params["uniqueIndex"], drop)
            return {"refused": refused} if refused else {}
        return {}

    def _unique_index(self, name: str, entry: Mapping[str, Any], drop: bool) -> str | None:
        """Build (or ``drop``) a unique index build's index on ``name``, standalone; the member's words when
        it refuses the index (duplicates, bad options), once it dropped whatever the attempt left."""
        d, ns, index = self.driver, f"{entry['dbName']}.{entry['collectionName']}", index_name(entry)
        if drop:
            d.drop_index(name, ns, index)
            return None
        keys: list[tuple[str, Any]] = [(str(k), v) for k, v in entry["key"]]  # a direction or a type
        try:
            d.create_index(name, ns, keys, dict(entry.get("options") or {}))
        except (CommandConflict, CommandInvalid) as exc:
            d.drop_index(name, ns, index)
            return f"{name} refused to build the unique index {index} on {ns}: {exc.detail}"
        if not any(ix.get("name") == index and ix.get("unique") is True for ix in d.list_indexes(name, ns)):
            raise DriverError(f"{name} built {index} on {ns} but listIndexes does not show it unique")
        return None

    def _arbiter_spec(self, rs_id: str, move: Move, goal: Mapping[str, Any]) -> ProcessSpec:
        params = move.params
        port = int(params["port"])
        rs = next(r for r in goal.get("replicaSets", []) if r["_id"] == rs_id)
        procs = processes_by_name(goal)
        version = next(procs[m["host"]]["version"] for m in rs["members"] if m["host"] in procs)
        dbpath = f"/data/{move.member}"
        args = {"net": {"port": port}, "storage": {"dbPath": dbpath}, "replication": {"replSetName": rs_id}}
        return ProcessSpec(move.member, str(params["hostname"]), port, version, args, rs_id, dbpath)

    async def _reconfigure(self, rs_id: str, view: Mapping[str, Any], move: Move) -> None:
        """The reconfigurations, by the primary's agent, from the set's config as it stands."""
        actor = str(move.actor)
        current = await self._call(self.driver.rs_config, actor)
        if current is None:
            raise OpsmgrError(f"{actor} has no replica set config to change")
        hosts = {name: host for host, name in view.get("names", {}).items()}
        members = [dict(m) for m in current["members"]]
        host = hosts.get(move.member)
        target = next((m for m in members if m["host"] == host), None)
        if move.name is MoveName.ADD_TEMPORARY_ARBITER:
            if target is None:
                new_id = max(m["_id"] for m in members) + 1
                members.append({"_id": new_id, "host": host, "arbiterOnly": True, "votes": 1, "priority": 0})
        elif move.name in (MoveName.REMOVE_TEMPORARY_ARBITER, MoveName.REMOVE_FROM_SET):
            members = [m for m in members if m["host"] != host]
        elif move.name is MoveName.TRANSFER_VOTE and target is not None:
            target.update(votes=0, priority=0)
        elif move.name is MoveName.RESTORE_VOTE and target is not None:
            wanted: Mapping[str, Any] = next(
                (m for m in view.get("members", []) if m["name"] == move.member), {}
            )
            target.update(votes=int(wanted.get("votes", 1)), priority=float(wanted.get("priority", 1)))
        else:
            raise OpsmgrError(f"the agent cannot carry out {move.name.value}")
        config = {k: v for k, v in current.items() if k != "term"}
        config["members"] = members
        await self._call(self.driver.reconfig, actor, config)


class ClusterSteps:
    """This host's part of sharded clusters' changes: the step the server decided (``decision`` of the
    cluster's view), carried out as the host's long action when its mongos is local, and reported. The
    balancer's mode before the change is the one this agent read before it first stopped it in that change:
    a stop repeated after a lost report must not report its own "off"."""

    def __init__(
        self,
        hostname: str,
        moves: MoveDriver,
        long: LongActions,
        api: MaintenanceApi,
        clock: Callable[[], float],
    ):
        self.hostname = hostname
        self.moves = moves
        self.long = long
        self.api = api
        self.clock = clock
        self.errors: dict[str, str] = {}  # cluster key -> the last failure, until a step succeeds
        self.balancer_was: dict[str, str] = {}  # change id -> the mode read before the first stop

    def run(self, look: Look, *, may_act: bool) -> tuple[tuple[str, ...], str, bool]:
        """The local mongos still to restart that run (the executor's meanwhile), the cycle's sentence, and
        whether a step was started."""
        key, view = look.key, look.view
        progress = ClusterProgress.from_json(view["progress"])
        local = [n for n, host in (view.get("names") or {}).items() if host == self.hostname]
        # A mongos down before its turn is not held back: the planner starts it again (on the goal's spec).
        owned = tuple(n for n in local if look.snap.running(n) and n not in progress.mongos_done)
        decided = view.get("decision") or {}
        sentence = f"{key}: {decided.get('note') or decided.get('reason') or 'rolling maintenance'}"
        running = self.long.running
        if running is not None and running.name.startswith(f"{key}: "):
            return owned, self.long.sentence() or sentence, False
        if decided.get("kind") == "move" and decided.get("actor") in local and may_act:
            move = ClusterMove.from_json(decided)
            action = LongAction(sentence, frozenset({move.actor}))
            return (
                owned,
                sentence,
                self.long.start(action, lambda: self._step(look, move)),
            )
        error = self.errors.get(key)
        return owned, f"{key}: {error}" if error is not None else sentence, False

    async def _step(self, look: Look, move: ClusterMove) -> None:
        at, key, change_id = self.clock(), look.key, str(look.view["changeId"])
        try:
            params = await self.moves.drive_cluster(move, look.goal, look.previous)
        except Exception as exc:  # the driver may raise anything its backend raises; retried next cycle
            self.errors[key] = f"{move.name.value} by {move.actor} failed, will retry: {exc}"
            return
        self.errors.pop(key, None)
        if "balancerWas" in params:
            params["balancerWas"] = self.balancer_was.setdefault(change_id, str(params["balancerWas"]))
        done = replace(move, params={**move.params, **params})
        body = {"changeId": change_id, "move": done.to_json(), "at": at}
        try:
            await self.api.maintenance("POST", key, "/progress", body=body)
        except OpsmgrError as exc:
            log.warning(
                "%s: %s of %s done, not recorded: %s", self.hostname, move.name.value, key, exc.detail
            )

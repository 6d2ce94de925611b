"""Rolling maintenance of a sharded cluster: the decisions that order the replica sets' rolling changes of one
cluster and carry out the cluster's own steps.

A config change that rolls processes of a sharded cluster (automation config ``sharding[]`` with ``name``,
``configServerReplica`` and ``shards[{_id, rs}]``; ``mongos`` processes with ``cluster``) is one
:class:`ClusterChange` over the replica sets' own rolling changes (``maintenance.procedure``, each with its
preflight checks, its lease and its record). Its order, MongoDB's for upgrading a sharded cluster:

1. ``StopBalancer`` (``balancerStop``, which waits for the migration in progress), by the agent of the
   cluster's first running mongos: no chunk moves while a shard is short of a member;
2. the config server replica set;
3. the shards in config order, :attr:`ShardedPolicy.parallel_shards` at a time (one by default);
4. the mongos routers one at a time (``RestartMongos``: a mongos holds no data and has no primary to step
   down, it is restarted with the goal's spec by its own agent);
5. ``RestoreBalancer``: the balancer back to the mode it had before the change (recording it ends the
   cluster's change).

A replica set's change waits (:func:`gate`) until its turn; a set already begun keeps its turn, so a later
config that adds a set to the change never takes a set down twice at once. Members of a shard or of the
config server replica set restart standalone without ``sharding.clusterRole`` and with
``skipShardingConfigurationChecks`` (``snapshot.standalone_args``). The steps' vocabulary and progress
(:class:`~opsmgr.maintenance.moves.ClusterMove`, :class:`~opsmgr.maintenance.moves.ClusterProgress`) are
``moves``', the route key ``cluster:<name>`` is ``wire``'s: the agent imports those.

Pure functions over plain values. May import ``opsmgr.automation.config`` (pure accessors) and
``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsmgr.automation.config import processes_by_name
from opsmgr.maintenance.moves import (
    BlockCause,
    Blocked,
    ClusterDecision,
    ClusterMove,
    ClusterMoveName,
    ClusterProgress,
    Done,
)
from opsmgr.maintenance.rolling import RollingChange, Task, process_tasks

PARALLEL_SHARDS_KEY = "mms.maintenance.sharded.parallelShards"


@dataclass(frozen=True)
class ShardedPolicy:
    """``parallel_shards`` (``mms.maintenance.sharded.parallelShards``): how many shards' rolling changes
    may be under way at once."""

    parallel_shards: int = 1


# --- the layout ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterLayout:
    """One ``sharding[]`` entry: its config server replica set, its shards' replica sets (config order) and
    its mongos process names (config order)."""

    name: str
    config_rs: str
    shards: tuple[str, ...]
    mongos: tuple[str, ...]

    @property
    def sets(self) -> tuple[str, ...]:
        return (self.config_rs, *self.shards)


def layouts(config: Mapping[str, Any]) -> list[ClusterLayout]:
    """The sharded clusters of ``config``; malformed entries (which the PUT refuses) are skipped."""
    out = []
    for entry in config.get("sharding") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        shards = tuple(
            str(s["rs"]) for s in entry.get("shards") or [] if isinstance(s, Mapping) and s.get("rs")
        )
        mongos = tuple(
            str(p["name"])
            for p in config.get("processes", [])
            if p.get("processType") == "mongos" and p.get("cluster") == entry["name"]
        )
        out.append(ClusterLayout(entry["name"], str(entry.get("configServerReplica") or ""), shards, mongos))
    return out


def layout_of_set(config: Mapping[str, Any], rs_id: str) -> ClusterLayout | None:
    """The cluster replica set ``rs_id`` is a part of (None: a replica set of its own)."""
    return next((c for c in layouts(config) if rs_id in c.sets), None)


# --- what the change covers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterChange:
    """What a config change asks of one sharded cluster: ``sets``, the parts whose rolling change rolls
    (config server set first, then shards in config order), and the mongos with their tasks."""

    cluster: str
    config_rs: str
    shards: tuple[str, ...]
    sets: tuple[str, ...]
    mongos: dict[str, frozenset[Task]] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()

    @property
    def needs_roll(self) -> bool:
        return bool(self.sets or self.mongos)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "configServerReplica": self.config_rs,
            "shards": list(self.shards),
            "replicaSets": list(self.sets),
            "mongos": {name: sorted(t.value for t in tasks) for name, tasks in self.mongos.items()},
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ClusterChange:
        return cls(
            cluster=str(raw["cluster"]),
            config_rs=str(raw["configServerReplica"]),
            shards=tuple(raw.get("shards", ())),
            sets=tuple(raw.get("replicaSets", ())),
            mongos={n: frozenset(Task(t) for t in ts) for n, ts in (raw.get("mongos") or {}).items()},
            reasons=tuple(raw.get("reasons", ())),
        )


def cluster_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], per_set: Mapping[str, RollingChange]
) -> dict[str, ClusterChange]:
    """Per cluster of ``new`` that ``old`` had too, what going from ``old`` to ``new`` rolls (``per_set``:
    ``rolling.rolling_changes(old, new)``); clusters that roll nothing are left out."""
    old_names = {c.name for c in layouts(old)}
    old_procs, new_procs = processes_by_name(old), processes_by_name(new)
    out: dict[str, ClusterChange] = {}
    for layout in layouts(new):
        if layout.name not in old_names:
            continue  # a new cluster is brought up, not rolled
        sets = tuple(s for s in layout.sets if s in per_set and per_set[s].needs_roll)
        reasons = [r for s in sets for r in per_set[s].reasons]
        mongos: dict[str, frozenset[Task]] = {}
        for name in layout.mongos:
            before, after = old_procs.get(name), new_procs[name]
            if before is None or before.get("disabled") or after.get("disabled"):
                continue
            tasks, why = process_tasks(old, new, before, after)
            if tasks:
                mongos[name] = tasks
                reasons += [r for r in why if r not in reasons]
        change = ClusterChange(layout.name, layout.config_rs, layout.shards, sets, mongos, tuple(reasons))
        if change.needs_roll:
            out[layout.name] = change
    return out


# --- deciding -----------------------------------------------------------------------------------------------


def turn(
    change: ClusterChange, done: frozenset[str], begun: frozenset[str], policy: ShardedPolicy
) -> tuple[str, ...]:
    """The replica sets of ``change`` whose rolling change may go on now (``done``: sets whose change ended,
    ``begun``: sets whose change took a step): the config server set until it is done, then the shards in
    order, ``parallel_shards`` at a time; a shard already begun keeps its turn."""
    pending = [s for s in change.sets if s not in done]
    shards = [s for s in pending if s != change.config_rs]
    under_way = [s for s in shards if s in begun]
    if change.config_rs in pending:
        return (change.config_rs, *under_way)
    room = max(1, policy.parallel_shards) - len(under_way)
    waiting = [s for s in shards if s not in begun]
    return (*under_way, *waiting[: max(0, room)])


def gate(
    change: ClusterChange,
    progress: ClusterProgress,
    rs_id: str,
    done: frozenset[str],
    begun: frozenset[str],
    policy: ShardedPolicy,
) -> str | None:
    """Why the rolling change of ``rs_id`` must wait for its turn in the cluster's (None: it may go on)."""
    if rs_id not in change.sets or rs_id in done:
        return None
    if progress.balancer_was is None:
        return f"waiting for the balancer of {change.cluster} to be stopped before a member goes down"
    allowed = turn(change, done, begun, policy)
    if rs_id in allowed:
        return None
    if change.config_rs in allowed:
        return f"waiting for the config server replica set {change.config_rs} of {change.cluster} to be done"
    return (
        f"waiting for its turn in {change.cluster}: {', '.join(allowed)} under way "
        f"({PARALLEL_SHARDS_KEY}={policy.parallel_shards} shard(s) at a time)"
    )


def balancer_should_run(
    change: ClusterChange, progress: ClusterProgress, done: frozenset[str]
) -> bool | None:
    """The balancer mode the change needs now: False from before the first member goes down until every set
    and mongos is done, then what it was before (None: the change has not stopped it yet)."""
    if progress.balancer_was is None:
        return None
    finished = set(change.sets) <= done and set(change.mongos) <= set(progress.mongos_done)
    return progress.balancer_was != "off" if finished else False


def next_cluster_move(
    change: ClusterChange, progress: ClusterProgress, done: frozenset[str], running: tuple[str, ...]
) -> ClusterDecision:
    """The cluster's next step (``running``: its mongos that run now, a restarted one once it was seen
    running again, in config order): one mongos at a time, the next once the last is back."""
    if progress.restored:
        return Done(f"the rolling change of {change.cluster} is complete")
    wanted = balancer_should_run(change, progress, done)
    if wanted is None:
        note = f"stop the balancer of {change.cluster}"
        return _by_first(change, running, ClusterMoveName.STOP_BALANCER, note, {"running": False})
    pending_sets = [s for s in change.sets if s not in done]
    if pending_sets:
        return Blocked(
            f"{change.cluster}: the balancer is stopped; rolling {', '.join(pending_sets)}",
            BlockCause.WAITING,
        )
    pending = [m for m in change.mongos if m not in progress.mongos_done]
    back = [m for m in progress.mongos_done if m not in running]
    if pending and back:
        return Blocked(f"waiting for {back[0]} to run again after its restart", BlockCause.WAITING)
    if pending:
        name = pending[0]
        tasks = ", ".join(sorted(t.value for t in change.mongos[name]))
        return ClusterMove(ClusterMoveName.RESTART_MONGOS, name, f"restart the mongos {name} ({tasks})")
    mode = "full" if wanted else "off"
    return _by_first(
        change,
        running,
        ClusterMoveName.RESTORE_BALANCER,
        f"set the balancer of {change.cluster} back to {mode}",
        {"running": wanted},
    )


def _by_first(
    change: ClusterChange,
    running: tuple[str, ...],
    name: ClusterMoveName,
    note: str,
    params: Mapping[str, Any] | None = None,
) -> ClusterMove | Blocked:
    """A balancer move, by the agent of the cluster's first running mongos."""
    if not running:
        return Blocked(f"{note}: waiting for a mongos of {change.cluster} to run", BlockCause.WAITING)
    return ClusterMove(name, running[0], note, dict(params or {}))

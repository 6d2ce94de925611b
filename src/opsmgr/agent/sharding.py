"""Sharded clusters in the agent's one reconcile loop: the pure sub-planner of a ``mongos`` process and of its
cluster's moves, and what sharding adds to a process spec and to a replica set's first config.

The goal is Ops Manager's automation config: ``sharding[]`` entries with ``name``, ``configServerReplica``,
``shards[{_id, rs, tags}]``, ``collections[{_id, key, unique}]`` (``key`` as ``[[field, 1 | "hashed"],
...]``, a ``dropped`` entry left alone) and ``draining[]`` (shard ids); ``mongos`` processes name their
cluster in ``cluster``; mongod members carry ``args2_6.sharding.clusterRole`` (``configsvr``/``shardsvr``),
which their specs keep as they are.

Order, without any agent talking to another: the config server replica set and the shards' replica sets
are replica sets like any other (``agent.plan``; the config servers' set is initiated with ``configsvr``);
a mongos is started with ``sharding.configDB`` ``"<csrs>/<host:port>,..."`` computed from its cluster's
config server members, and waits (WaitForConfigServer) while it cannot read ``listShards``, that is until
its config server set has a primary (before it starts, too, when this host runs a member of that set that
sees no primary). The cluster's own moves are made through ONE mongos, the cluster's coordinator: the first
mongos of the cluster in the config's process order that is not disabled. Through it the agent adds each
shard of ``shards[]`` that ``listShards`` lacks (AddShard), shards each collection of ``collections[]`` not
yet sharded (ShardCollection), and removes each listed shard that is in ``draining[]`` or no longer in
``shards[]`` (RemoveShard, sent again each cycle: every call reports the draining, the one that finds the
shard drained completes the removal; never the last shard). The agents of the other mongos wait for it
(WaitClusterCoordinator) and reach goal once their own mongos shows the cluster as the goal states it.

Pure: no I/O. May import ``opsmgr.agent.moves``, ``opsmgr.agent.rsconfig``, ``opsmgr.automation.config``
(pure accessors) and ``opsmgr.drivers.base`` (types only).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from opsmgr.agent.moves import WAIT, Move, Step
from opsmgr.agent.rsconfig import initial_rs_config, member_host
from opsmgr.automation.config import process_port, processes_by_name, replica_set
from opsmgr.drivers.base import ProcessSpec, ShardedCollection, ShardInfo, ShardingDriver

MONGOS = "mongos"
_SHARDING_METHODS = (
    "list_shards",
    "add_shard",
    "remove_shard",
    "sharded_collections",
    "shard_collection",
    "balancer_status",
    "set_balancer",
)


@dataclass(frozen=True)
class RouterView:
    """What one cycle read through a local running mongos; None where it had no answer (its config server
    replica set without a primary, or a driver that does not drive sharded clusters)."""

    shards: tuple[ShardInfo, ...] | None = None
    collections: tuple[ShardedCollection, ...] | None = None


def sharding_driver(driver: object) -> ShardingDriver | None:
    """The driver's sharding commands, when it has them (a driver that predates sharding has none)."""
    if all(callable(getattr(driver, method, None)) for method in _SHARDING_METHODS):
        return cast(ShardingDriver, driver)
    return None


# --- goal accessors ----------------------------------------------------------------------------------------


def is_mongos(process: Mapping[str, Any]) -> bool:
    return process.get("processType") == MONGOS


def cluster_named(goal: Mapping[str, Any], name: Any) -> dict[str, Any] | None:
    return next((c for c in goal.get("sharding", []) if c.get("name") == name), None)


def config_server_cluster(goal: Mapping[str, Any], rs_id: str) -> dict[str, Any] | None:
    """The sharded cluster whose config server replica set is ``rs_id``, if any."""
    return next((c for c in goal.get("sharding", []) if c.get("configServerReplica") == rs_id), None)


def replica_set_connection(goal: Mapping[str, Any], rs_id: str) -> str:
    """``"<rs>/<host:port>,..."`` of the set's enabled members, as ``addShard`` and ``configDB`` take it."""
    rs = replica_set(goal, rs_id)
    procs = processes_by_name(goal)
    members = [procs[m["host"]] for m in (rs["members"] if rs is not None else []) if m["host"] in procs]
    enabled = [p for p in members if not p.get("disabled", False)] or members
    return f"{rs_id}/" + ",".join(member_host(p) for p in enabled)


def mongos_spec(process: Mapping[str, Any], goal: Mapping[str, Any]) -> ProcessSpec:
    """How the driver starts a mongos of the goal: no replica set, no data, ``sharding.configDB`` naming its
    cluster's config server replica set."""
    args = copy.deepcopy(dict(process.get("args2_6", {})))
    cluster = cluster_named(goal, process.get("cluster"))
    if cluster is not None:
        sharding = dict(args.get("sharding") or {})
        sharding["configDB"] = replica_set_connection(goal, cluster["configServerReplica"])
        args["sharding"] = sharding
    log = args.get("systemLog")
    return ProcessSpec(
        name=process["name"],
        hostname=process["hostname"],
        port=process_port(process),
        version=process["version"],
        args=args,
        repl_set_name=None,
        dbpath="",
        log_path=log.get("path") if isinstance(log, Mapping) else None,
        process_type=MONGOS,
    )


def same_router_options(running: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a running mongos already has the options wanted. ``configDB``'s member list is a seed from
    which a mongos discovers its config servers itself: a different list naming the same set is no reason
    to restart it (it would take every router down at once)."""

    def comparable(args: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(args)
        sharding = out.get("sharding")
        if isinstance(sharding, Mapping) and isinstance(sharding.get("configDB"), str):
            out["sharding"] = {**sharding, "configDB": sharding["configDB"].partition("/")[0]}
        return out

    return comparable(running) == comparable(wanted)


def initial_set_config(goal: Mapping[str, Any], rs: Mapping[str, Any]) -> dict[str, Any]:
    """What ``replSetInitiate`` gets; a config server replica set says so (``configsvr``) as MongoDB needs."""
    config = initial_rs_config(goal, rs)
    if config_server_cluster(goal, rs["_id"]) is not None:
        config["configsvr"] = True
    return config


def coordinator(goal: Mapping[str, Any], cluster: Mapping[str, Any]) -> str | None:
    """The mongos through which the cluster's moves are made: the first enabled one of the cluster."""
    return next(
        (
            p["name"]
            for p in goal.get("processes", [])
            if is_mongos(p) and p.get("cluster") == cluster["name"] and not p.get("disabled", False)
        ),
        None,
    )


def shard_key(key: Any) -> dict[str, Any] | None:
    """A ``collections[].key`` as the ``shardCollection`` document: Ops Manager writes ``[[field, 1 |
    "hashed"], ...]`` (a document is taken as it is); None when it cannot be read as either."""
    if isinstance(key, Mapping):
        return dict(key) or None
    if not isinstance(key, list) or not key:
        return None
    pairs = [k for k in key if isinstance(k, list) and len(k) == 2 and isinstance(k[0], str)]
    return {field: direction for field, direction in pairs} if len(pairs) == len(key) else None


# --- planning ----------------------------------------------------------------------------------------------


def router_steps(
    name: str, goal: Mapping[str, Any], cluster: Mapping[str, Any], view: RouterView | None
) -> list[Step]:
    """A running mongos: wait for its config servers, then the cluster's moves if it is the coordinator, or
    a wait for the coordinator while the cluster is not as the goal states it."""
    if view is None or view.shards is None or view.collections is None:
        return [
            Step(
                Move.WAIT_FOR_CONFIG_SERVER,
                f"waiting for the config server replica set {cluster['configServerReplica']} of "
                f"{cluster['name']} to have a primary (listShards through {name} has no answer)",
                blocked=WAIT,
            )
        ]
    todo = cluster_steps(goal, cluster, view.shards, view.collections)
    lead = coordinator(goal, cluster)
    if lead == name or not todo:
        return todo
    return [
        Step(
            Move.WAIT_CLUSTER_COORDINATOR,
            f"waiting for {lead}, the mongos that coordinates {cluster['name']}: {todo[0].note}",
            blocked=WAIT,
        )
    ]


def cluster_steps(
    goal: Mapping[str, Any],
    cluster: Mapping[str, Any],
    shards: tuple[ShardInfo, ...],
    collections: tuple[ShardedCollection, ...],
) -> list[Step]:
    """What separates the cluster as ``listShards`` and ``config.collections`` show it from the goal:
    shards to add, then collections to shard, then shards to drain and remove."""
    name = cluster["name"]
    draining = set(cluster.get("draining") or [])
    staying = [s for s in cluster.get("shards", []) if s["_id"] not in draining]
    listed = {s.id for s in shards}
    steps = [
        Step(
            Move.ADD_SHARD,
            f"add shard {s['_id']} (replica set {s['rs']}) to {name}",
            command={"addShard": replica_set_connection(goal, s["rs"]), "name": s["_id"]},
        )
        for s in staying
        if s["_id"] not in listed
    ]
    sharded = {c.ns for c in collections}
    for coll in cluster.get("collections") or []:
        if coll.get("dropped") or coll.get("_id") in sharded:
            continue
        steps.append(_shard_collection(name, coll))
    kept = {s["_id"] for s in staying}
    for shard in shards:
        if shard.id in kept:
            continue
        if not kept:
            note = f"shard {shard.id} is the last shard of {name}: a cluster cannot remove its last shard"
            steps.append(Step(Move.REMOVE_SHARD, note, blocked=WAIT))
            continue
        doing = "drain" if not shard.draining else "go on draining"
        steps.append(
            Step(
                Move.REMOVE_SHARD,
                f"{doing} shard {shard.id} of {name} to the other shards, then remove it",
                command={"removeShard": shard.id},
            )
        )
    return steps


def _shard_collection(cluster: str, coll: Mapping[str, Any]) -> Step:
    ns, key = coll.get("_id"), shard_key(coll.get("key"))
    if key is None:
        return Step(
            Move.SHARD_COLLECTION,
            f"collection {ns} of {cluster} has no usable shard key in the config ({coll.get('key')!r})",
            blocked=WAIT,
        )
    unique = bool(coll.get("unique", False))
    return Step(
        Move.SHARD_COLLECTION,
        f"shard collection {ns} of {cluster} on {key}" + (" (unique)" if unique else ""),
        command={"shardCollection": ns, "key": key, "unique": unique},
    )

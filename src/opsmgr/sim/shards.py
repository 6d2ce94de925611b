"""The parts of a simulated sharded cluster as one transaction reaches them: its config server replica set
and its shards' replica sets, their writable primaries, the config documents (the chunk map) read from and
written to the config servers' data, the documents a shard owns, and the routers' cached map.

Writes here are client writes on a set's primary (``oplog.write``): they are oplog entries, replicated and
backed up like any other. Callers check the primaries they need before they change anything, since an
in-memory transaction that fails half-way is not undone. May import ``opsmgr.errors``,
``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsmgr.drivers.base import CommandConflict
from opsmgr.sim import oplog
from opsmgr.sim.ctx import Ctx, due
from opsmgr.sim.data import id_key
from opsmgr.sim.members import primary_of, up_members, writer
from opsmgr.sim.model import GroupRec, NodeRec
from opsmgr.sim.processes import refuse
from opsmgr.sim.replication import cap_oplog
from opsmgr.sim.shardmodel import (
    CONFIG_NAMESPACES,
    DATABASES_NS,
    ChunkMap,
    ClusterEventsRec,
    ClusterRec,
    parse_connection,
)

NO_HOST = 133  # FailedToSatisfyReadPreference: no primary of the set to send the operation to


def config_db(args: dict[str, Any]) -> tuple[str, list[str]] | None:
    """A router's ``sharding.configDB`` as the config server set's name and hosts."""
    value = (args.get("sharding") or {}).get("configDB")
    return parse_connection(value) if isinstance(value, str) else None


def cluster_role(n: NodeRec) -> str | None:
    role = (n.args.get("sharding") or {}).get("clusterRole")
    return str(role) if role is not None else None


def set_at(ctx: Ctx, set_name: str, hosts: list[str]) -> GroupRec | None:
    """The replica set named ``set_name`` that lists one of ``hosts`` as a member."""
    return next(
        (g for g in (ctx.addr_group(h) for h in hosts) if g is not None and g.set_name == set_name), None
    )


def config_set(ctx: Ctx, c: ClusterRec) -> GroupRec | None:
    return set_at(ctx, c.name, c.config_hosts)


def shard_set(ctx: Ctx, shard: dict[str, Any]) -> GroupRec | None:
    return set_at(ctx, *parse_connection(str(shard["host"])))


def primary(
    ctx: Ctx, g: GroupRec | None, t: float, via: NodeRec | None = None, *, reads: bool = False
) -> NodeRec | None:
    """The writable primary of ``g`` (``reads``: the primary, writable or not) that ``via`` (a router;
    None: any client) reaches."""
    if g is None:
        return None
    up = up_members(ctx, g, t)
    p = primary_of(g, up) if reads else writer(ctx, g, up)
    if p is None or p.lineage is None:
        return None
    return p if (ctx.client_reach(p) if via is None else ctx.reach(via, p)) else None


def cluster_groups(ctx: Ctx, c: ClusterRec) -> list[GroupRec]:
    """The config server set and the sets of the shards the routers' map lists."""
    cmap = c.cached_map()
    found = [config_set(ctx, c), *(shard_set(ctx, s) for s in (cmap.shards.values() if cmap else []))]
    out = {g.gid: g for g in found if g is not None}
    return [out[k] for k in sorted(out)]


def config_docs(ctx: Ctx, p: NodeRec) -> list[tuple[str, dict[str, Any]]]:
    assert p.lineage is not None
    return [(ns, doc) for ns, doc in ctx.data.docs_at(p.lineage, p.applied_ts) if ns in CONFIG_NAMESPACES]


def refresh(ctx: Ctx, c: ClusterRec, t: float) -> ChunkMap | None:
    """Read the map from the config servers' primary into the routers' cache; the cache when there is
    none (routers keep routing with the last map they read)."""
    p = primary(ctx, config_set(ctx, c), t)
    if p is None:
        return c.cached_map()
    docs = config_docs(ctx, p)
    c.cache = [[ns, doc] for ns, doc in docs]
    cmap = ChunkMap.of(docs)
    for g in [ctx.group(p.gid), *(shard_set(ctx, s) for s in cmap.shards.values())]:
        if g is not None:
            g.cluster = c.name
    return cmap


def config_primary(ctx: Ctx, c: ClusterRec, t: float, via: NodeRec | None = None) -> NodeRec:
    """The config servers' writable primary, refused when there is none (metadata changes need it)."""
    g = config_set(ctx, c)
    p = primary(ctx, g, t, via)
    if p is None or g is None:
        raise not_reached(f"config server replica set {c.name} has no primary to change the metadata")
    if cluster_role(p) != "configsvr":
        raise refuse(f"{c.name} was not started with sharding.clusterRole 'configsvr'", 96, "OperationFailed")
    return p


def put(ctx: Ctx, g: GroupRec, t: float, ns: str, doc: dict[str, Any]) -> None:
    """Insert or replace ``doc`` (by ``_id``) on ``g``'s primary."""
    p = primary(ctx, g, t)
    assert p is not None and p.lineage is not None, "callers check the primary first"
    exists = ctx.data.get_doc(p.lineage, ns, id_key(doc["_id"]), p.applied_ts) is not None
    oplog.write(ctx, g, t, ns, "u" if exists else "i", doc)


def delete(ctx: Ctx, g: GroupRec, t: float, ns: str, doc_id: Any) -> None:
    oplog.write(ctx, g, t, ns, "d", {"_id": doc_id})


def owned(
    ctx: Ctx, p: NodeRec, keep: Callable[[str, dict[str, Any]], bool]
) -> list[tuple[str, dict[str, Any]]]:
    """The user documents on ``p`` that ``keep`` selects."""
    assert p.lineage is not None
    return [
        (ns, doc)
        for ns, doc in ctx.data.docs_at(p.lineage, p.applied_ts)
        if not ns.startswith(("config.", "admin.", "local.")) and keep(ns, doc)
    ]


def copy_docs(
    ctx: Ctx, donor: GroupRec, recipient: GroupRec, t: float, keep: Callable[[str, dict[str, Any]], bool]
) -> list[tuple[str, dict[str, Any]]]:
    """Copy the documents ``keep`` selects from the donor's primary to the recipient's (both checked by the
    caller); the documents copied."""
    p = primary(ctx, donor, t)
    assert p is not None
    docs = owned(ctx, p, keep)
    for ns, doc in docs:
        put(ctx, recipient, t, ns, doc)
    return docs


def delete_docs(ctx: Ctx, donor: GroupRec, t: float, docs: list[tuple[str, dict[str, Any]]]) -> None:
    """Delete copied documents on the donor (MongoDB's range deleter), then cap its oplog."""
    for ns, doc in docs:
        delete(ctx, donor, t, ns, doc["_id"])
    p = primary(ctx, donor, t)
    if p is not None:
        cap_oplog(ctx, p)


def routers(ctx: Ctx, c: ClusterRec, t: float) -> list[NodeRec]:
    """The cluster's routers that clients reach now."""
    nodes = [ctx.node(key) for key in c.mongos]
    return [
        n
        for n in nodes
        if n is not None
        and n.running
        and n.process_type == "mongos"
        and (config_db(n.args) or ("",))[0] == c.name  # restarted for another cluster: not this one's
        and due(t, n.ready_at)
        and ctx.client_reach(n)
    ]


def assign_database(ctx: Ctx, c: ClusterRec, cmap: ChunkMap, db: str, t: float, via: NodeRec | None) -> str:
    """The primary shard of ``db``, chosen (the shard with fewest databases, then by id) and recorded on
    the config servers when it has none yet."""
    if db in cmap.databases:
        return cmap.databases[db]
    chosen = cmap.least_loaded()
    config_primary(ctx, c, t, via)
    g = config_set(ctx, c)
    assert g is not None
    put(ctx, g, t, DATABASES_NS, {"_id": db, "primary": chosen, "partitioned": True})
    cmap.databases[db] = chosen
    return chosen


def event(ctx: Ctx, c: ClusterRec, t: float, kind: str, **fields: Any) -> None:
    """Add one of the cluster's events (the newest ``SimParams.max_events`` are kept)."""
    rec = ctx.tx.get(ClusterEventsRec, c.name)
    if rec is None:
        rec = ClusterEventsRec(c.name)
        ctx.tx.put(rec)
    rec.events.append({"t": round(t, 3), "kind": kind, **fields})
    del rec.events[: max(0, len(rec.events) - ctx.params.max_events)]


def not_reached(what: str) -> CommandConflict:
    return refuse(what, NO_HOST, "FailedToSatisfyReadPreference")

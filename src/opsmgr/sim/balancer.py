"""A simulated sharded cluster as time passes: its replica sets advanced together, the routers' map
refreshed from the config servers, the write load through the routers, and the balancer's migrations.

``advance_cluster(ctx, cluster, now)`` moves the config server set and the shards' sets to ``now`` in steps
that end at the next balancer event (a round, a migration's commit) and, while a write load runs through
the routers, at least every :data:`LOAD_STEP_S`. At each step's end the routers' map is read again from the
config servers' primary (kept as it was when there is none) and the load's writes of the step are routed by
it: each goes to the shard owning its chunk (or its database's primary shard) and fails, counted, when no
router is reachable or that shard has no writable primary the router reaches.

The balancer runs on the config servers' primary, while it is on (``config.settings``), one migration at a
time. A round picks a migration (``shardmodel.choose_migration``); the migration takes
``SimParams.migration_s`` plus the chunk's documents at ``clone_docs_per_s`` (the clone and the catch-up of
the writes made meanwhile), then commits: the chunk's documents as they stand are copied to the
recipient's primary, the chunk's owner is changed on the config servers and the documents are deleted on
the donor (the range deleter, at once), all in one step, so that a committed migration never leaves a
document on two shards. If the donor, the recipient or the config servers have no writable primary at that
moment, or the chunk is no longer the donor's, the migration aborts and the balancer tries again a round
later (``SimParams.balancer_round_s``). After a commit the next round starts at once; a round with nothing
to do leaves the balancer idle until the map or the balancer's setting changes. May import
``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import math
from typing import Any

from opsmgr.drivers.base import CommandConflict
from opsmgr.sim.ctx import Ctx, due, mix
from opsmgr.sim.engine import advance
from opsmgr.sim.model import GroupRec, NodeRec, WriteLoad
from opsmgr.sim.replication import cap_oplog, load_apply, load_pick, load_walls
from opsmgr.sim.shardmodel import CHUNKS_NS, ChunkMap, ClusterRec, choose_migration, key_hash
from opsmgr.sim.shards import (
    assign_database,
    cluster_groups,
    config_docs,
    config_set,
    copy_docs,
    delete_docs,
    event,
    owned,
    primary,
    put,
    refresh,
    routers,
    shard_set,
)

LOAD_STEP_S = 0.5


def advance_cluster(ctx: Ctx, c: ClusterRec, now: float) -> None:
    """Move the cluster and its replica sets to ``now`` (see the module's docstring)."""
    load = WriteLoad.from_json(c.load)
    while True:
        t = c.t
        scheduled = float(c.migration["commit_at"]) if c.migration else c.next_round
        end = min(now, scheduled if scheduled is not None else math.inf)
        if load.rate > 0:
            end = min(end, t + LOAD_STEP_S)
        end = max(end, t)
        for g in cluster_groups(ctx, c):
            advance(ctx, g, end)
        cmap = refresh(ctx, c, end)
        if end > t and load.rate > 0:
            routed_load(ctx, c, cmap, load, t, end)
        c.t = end
        balance(ctx, c, end)
        if due(end, now):
            return


def balance(ctx: Ctx, c: ClusterRec, t: float) -> None:
    if c.migration is not None and due(t, float(c.migration["commit_at"])):
        finish_migration(ctx, c, t)
    if c.migration is None and c.next_round is not None and due(t, c.next_round):
        balancer_round(ctx, c, t)


def kick(c: ClusterRec, t: float) -> None:
    """Something the balancer acts on changed: a round now (unless a migration is under way)."""
    c.next_round = t


def _stream(c: ClusterRec) -> int:
    return mix(0xC1, *c.name.encode())


def balancer_round(ctx: Ctx, c: ClusterRec, t: float) -> None:
    p = primary(ctx, config_set(ctx, c), t)
    if p is None:
        c.next_round = t + ctx.params.balancer_round_s
        return
    cmap = ChunkMap.of(config_docs(ctx, p))
    move = choose_migration(cmap) if cmap.balancer_on else None
    c.next_round = None
    if move is None:
        return
    donor = primary(ctx, shard_set(ctx, cmap.shards[move.donor]), t)
    docs = len(chunk_docs(ctx, cmap, move.ns, move.chunk, donor)) if donor is not None else 0
    duration = ctx.params.migration_s + docs / ctx.params.clone_docs_per_s
    c.migration = {
        "ns": move.ns,
        "chunk": move.chunk,
        "donor": move.donor,
        "recipient": move.recipient,
        "started": t,
        "commit_at": t + duration,
    }
    event(
        ctx,
        c,
        t,
        "migration started",
        **{k: c.migration[k] for k in ("ns", "chunk", "donor", "recipient")},
    )


def chunk_docs(
    ctx: Ctx, cmap: ChunkMap, ns: str, chunk_id: str, p: NodeRec | None
) -> list[tuple[str, dict[str, Any]]]:
    chunk = next(ch for ch in cmap.chunks[ns] if ch["_id"] == chunk_id)
    return owned(ctx, p, lambda n, d: n == ns and _in_chunk(cmap, ns, chunk, d)) if p is not None else []


def _in_chunk(cmap: ChunkMap, ns: str, chunk: dict[str, Any], doc: dict[str, Any]) -> bool:
    return int(chunk["min"]) <= key_hash(cmap.collections[ns]["key"], doc) < int(chunk["max"])


def finish_migration(ctx: Ctx, c: ClusterRec, t: float) -> None:
    """Commit the migration under way, or abort it when a part it needs is not there."""
    m = c.migration
    assert m is not None
    c.migration = None
    csrs = config_set(ctx, c)
    cp = primary(ctx, csrs, t)
    cmap = ChunkMap.of(config_docs(ctx, cp)) if cp is not None else None
    chunk = (
        next((ch for ch in cmap.chunks.get(m["ns"], []) if ch["_id"] == m["chunk"]), None) if cmap else None
    )
    donor = shard_set(ctx, cmap.shards[m["donor"]]) if cmap and m["donor"] in cmap.shards else None
    recipient = (
        shard_set(ctx, cmap.shards[m["recipient"]]) if cmap and m["recipient"] in cmap.shards else None
    )
    reason = _missing(ctx, t, cp, chunk, m, donor, recipient)
    if reason is not None or cmap is None or chunk is None or csrs is None:
        c.migrations_aborted += 1
        event(ctx, c, t, "migration aborted", chunk=m["chunk"], reason=reason)
        c.next_round = t + ctx.params.balancer_round_s
        return
    assert donor is not None and recipient is not None
    docs = copy_docs(ctx, donor, recipient, t, lambda n, d: n == m["ns"] and _in_chunk(cmap, n, chunk, d))
    put(ctx, csrs, t, CHUNKS_NS, {**chunk, "shard": m["recipient"], "lastmod": int(chunk["lastmod"]) + 1})
    delete_docs(ctx, donor, t, docs)
    c.migrations += 1
    event(
        ctx,
        c,
        t,
        "migration committed",
        chunk=m["chunk"],
        documents=len(docs),
        to=m["recipient"],
    )
    c.next_round = t
    refresh(ctx, c, t)


def _missing(
    ctx: Ctx,
    t: float,
    cp: NodeRec | None,
    chunk: dict[str, Any] | None,
    m: dict[str, Any],
    donor: GroupRec | None,
    recipient: GroupRec | None,
) -> str | None:
    """Why the migration cannot commit now, if it cannot."""
    if cp is None:
        return "the config servers have no primary"
    if chunk is None or chunk["shard"] != m["donor"]:
        return "the chunk is no longer the donor's"
    if primary(ctx, donor, t) is None:
        return f"donor {m['donor']} has no primary"
    if primary(ctx, recipient, t) is None:
        return f"recipient {m['recipient']} has no primary"
    return None


def _route(
    ctx: Ctx, c: ClusterRec, cmap: ChunkMap | None, router: NodeRec | None, ns: str, doc_id: int, t: float
) -> str | None:
    """The shard a load write goes to; None when there is no router or map, or its new database cannot
    be created (no config server primary)."""
    if cmap is None or router is None:
        return None
    owner = cmap.owner(ns, {"_id": doc_id})
    if owner is not None:
        return owner
    try:
        return assign_database(ctx, c, cmap, ns.split(".", 1)[0], t, router)
    except CommandConflict:
        return None


def routed_load(
    ctx: Ctx, c: ClusterRec, cmap: ChunkMap | None, load: WriteLoad, t0: float, t1: float
) -> None:
    """The load's writes from ``t0`` to ``t1`` through the routers, routed by the map."""
    walls, c.load_credit = load_walls(c.load_credit, load, t0, t1)
    router = next(iter(routers(ctx, c, t1)), None)
    touched: dict[int, NodeRec] = {}
    for wall in walls:
        n = c.load_n
        c.load_n += 1
        r, ns, doc_id = load_pick(ctx, _stream(c), n, load)
        owner = _route(ctx, c, cmap, router, ns, doc_id, t1)
        g = shard_set(ctx, cmap.shards[owner]) if cmap is not None and owner in cmap.shards else None
        p = primary(ctx, g, t1, router) if g is not None else None
        if g is None or p is None:
            c.writes_failed += 1
            continue
        op = load_apply(ctx, g, p, load, (r, n, ns, doc_id), wall, None)
        assert router is not None
        router.opcounters[op] = router.opcounters.get(op, 0) + 1
        c.writes += 1
        touched[g.gid] = p
    for p in touched.values():
        cap_oplog(ctx, p)

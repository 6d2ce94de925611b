"""Data moving through a simulated replica set: writes on the primary (client writes, the write load and the
periodic no-op) as MongoDB-shaped oplog entries, secondaries applying them at their rate from their sync
source, oplog truncation by ``oplogSizeMB``, the initial sync of members without the set's data (or whose
data diverged), and RECOVERING for members too stale to catch up. May import ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import math
from typing import Any

from opsmgr.sim.ctx import EPS, Ctx, due, mix, next_ts
from opsmgr.sim.data import Entry, id_key
from opsmgr.sim.members import Member, effective_indexes, electable_now, sync_source, writer
from opsmgr.sim.model import GroupRec, NodeRec, Role, WriteLoad


def append_write(
    ctx: Ctx,
    g: GroupRec,
    p: NodeRec,
    wall: float,
    op: str,
    ns: str,
    o: dict[str, Any],
    o2: dict[str, Any] | None,
    doc_after: tuple[str, dict[str, Any] | None] | None,
    batch: list[Entry] | None = None,
) -> Entry:
    """One oplog entry written by primary ``p``; ``doc_after`` is ``(id key, document or None)``."""
    assert p.lineage is not None
    lin = ctx.lineage(p.lineage)
    ts = next_ts(lin.last_ts, wall)
    entry = Entry.make(ts, lin.last_cum, op, ns, o, o2, int(wall * 1000))
    if doc_after is not None:
        ctx.data.put_doc(lin.lid, ns, doc_after[0], ts, doc_after[1])
        g.writes += 1
        p.opcounters[op] = p.opcounters.get(op, 0) + 1
    if batch is None:
        ctx.data.append(lin.lid, [entry])
    else:
        batch.append(entry)
    lin.last_ts, lin.last_cum = ts, entry.cum
    p.applied_ts, p.applied_cum = ts, entry.cum
    ctx.touch(lin.lid)
    return entry


def cap_oplog(ctx: Ctx, n: NodeRec) -> None:
    """Truncate the oldest entries of ``n``'s oplog beyond its ``oplogSizeMB``."""
    if n.lineage is None or n.applied_cum - n.trunc_cum <= n.cap_bytes:
        return
    first_kept = ctx.data.first_cum_at_least(n.lineage, n.applied_cum - n.cap_bytes)
    if first_kept is not None:
        n.trunc_ts, n.trunc_cum = first_kept.ts, first_kept.cum


# MongoDB's periodic no-op writer writes this entry (``periodicNoopIntervalSecs``).
NOOP = {"msg": "periodic noop"}


def noop_ticks(interval: float, t0: float, t1: float) -> list[float]:
    """The no-op writer's ticks in ``(t0, t1]``: the multiples of ``interval`` (none when it is 0). Both ends
    are rounded the same way, so consecutive steps share no tick and miss none."""
    if interval <= 0:
        return []
    first, last = math.floor(t0 / interval + EPS), math.floor(t1 / interval + EPS)
    return [k * interval for k in range(first + 1, last + 1)]


def load_walls(credit: float, load: WriteLoad, t0: float, t1: float) -> tuple[list[float], float]:
    """When a write load writes from ``t0`` to ``t1``: its rate's whole writes, spread evenly, and the
    fraction of a write carried to the next stretch."""
    if load.rate <= 0:
        return [], credit
    credit += load.rate * (t1 - t0)
    count = int(credit)
    return [t0 + (t1 - t0) * (i + 0.5) / count for i in range(count)], credit - count


def load_pick(ctx: Ctx, stream: int, n: int, load: WriteLoad) -> tuple[int, str, int]:
    """The ``n``-th write of a load's ``stream``: its random draw, namespace and ``_id``."""
    r = mix(ctx.params.seed, stream, n)
    return r, load.namespaces[r % len(load.namespaces)], (r >> 8) % load.keys


def load_apply(
    ctx: Ctx,
    g: GroupRec,
    p: NodeRec,
    load: WriteLoad,
    pick: tuple[int, int, str, int],
    wall: float,
    batch: list[Entry] | None,
) -> str:
    """Write ``pick`` (``(draw, n, namespace, _id)``) on primary ``p``: insert, replace or delete it; the
    op written."""
    assert p.lineage is not None
    r, n, ns, doc_id = pick
    key = id_key(doc_id)
    exists = ctx.data.get_doc(p.lineage, ns, key, p.applied_ts) is not None
    if exists and (r >> 40) % 10_000 < load.delete_ratio * 10_000:
        append_write(ctx, g, p, wall, "d", ns, {"_id": doc_id}, None, (key, None), batch)
        return "d"
    value = mix(r, 1) & 0x7FFF_FFFF_FFFF
    doc = {
        "_id": doc_id,
        "n": n,
        "v": value,
        "at": int(wall * 1000),
        "payload": (f"{value:012x}" * (load.payload_bytes // 12 + 1))[: load.payload_bytes],
    }
    op = "u" if exists else "i"
    append_write(ctx, g, p, wall, op, ns, doc, {"_id": doc_id} if exists else None, (key, doc), batch)
    return op


def load_write(ctx: Ctx, g: GroupRec, p: NodeRec, load: WriteLoad, wall: float, batch: list[Entry]) -> None:
    """One write of the set's load: insert, replace or delete one of its keys."""
    n = g.load_n
    g.load_n += 1
    r, ns, doc_id = load_pick(ctx, g.gid, n, load)
    load_apply(ctx, g, p, load, (r, n, ns, doc_id), wall, batch)


def primary_writes(ctx: Ctx, g: GroupRec, p: NodeRec, t0: float, t1: float) -> None:
    """What primary ``p`` writes from ``t0`` to ``t1``, in time order: the write load, and the periodic no-op
    at each tick of ``SimParams.noop_interval_s`` when nothing was written since the previous tick (MongoDB
    writes it only when the optime has not moved), so that an idle set's optime and oplog window advance."""
    if p.lineage is None:
        return
    load = WriteLoad.from_json(g.load)
    interval = ctx.params.noop_interval_s
    ticks = noop_ticks(interval, t0, t1)
    walls, g.load_credit = load_walls(g.load_credit, load, t0, t1)
    if not ticks and not walls:
        return
    last = ctx.data.entry_at(p.lineage, p.applied_ts) if ticks else None
    last_wall = last.wall_ms / 1000 if last is not None else float(p.applied_ts >> 32)
    batch: list[Entry] = []
    # A tick sorts before a write at the same instant (False < True).
    for wall, is_write in sorted([(x, False) for x in ticks] + [(x, True) for x in walls]):
        if is_write:
            load_write(ctx, g, p, load, wall, batch)
        elif due(wall - interval, last_wall):  # nothing written since the previous tick
            append_write(ctx, g, p, wall, "n", "", NOOP, None, None, batch)
        else:
            continue
        last_wall = wall
    ctx.data.append(p.lineage, batch)


def flow(ctx: Ctx, g: GroupRec, up: list[Member], t0: float, t1: float) -> bool:
    """Writes, replication and oplog truncation from ``t0`` to ``t1``; whether any optime moved."""
    if t1 <= t0:
        return False
    before = [n.applied_ts for _, n in up]
    p = writer(ctx, g, up)
    if p is not None:
        primary_writes(ctx, g, p, t0, t1)
    for m, n in sorted(up, key=lambda mn: -mn[1].applied_ts):
        if m["arbiterOnly"] or n.role != Role.SECONDARY or n.lineage is None:
            continue
        src = sync_source(ctx, g, n, up)
        n.sync_source = src.addr if src is not None else None
        if src is None or n.fsync_locks or src.applied_ts <= n.applied_ts:
            n.apply_credit = 0.0
            continue
        credit = n.apply_credit + ctx.apply_rate(n) * (t1 - t0)
        count = int(credit)
        if count < 1:
            n.apply_credit = credit
            continue
        e = ctx.data.nth_after(n.lineage, n.applied_ts, src.applied_ts, count)
        if e is None:
            continue
        n.apply_credit = 0.0 if e.ts >= src.applied_ts else credit - count
        n.applied_ts, n.applied_cum = e.ts, e.cum
    # Truncate only now: a secondary that keeps up read this step's entries before the primary dropped them.
    for _m, n in up:
        cap_oplog(ctx, n)
    return before != [n.applied_ts for _, n in up]


def busy(ctx: Ctx, g: GroupRec, up: list[Member]) -> bool:
    """Whether a secondary is behind its source. Writes alone need no short steps: a secondary that keeps
    up ends every step caught up whatever its length, and one that does not is behind at the next."""
    for m, n in up:
        if m["arbiterOnly"] or n.role != Role.SECONDARY or n.fsync_locks or ctx.apply_rate(n) <= 0:
            continue
        src = sync_source(ctx, g, n, up)
        if src is not None and src.applied_ts > n.applied_ts:
            return True
    return False


def catch_up_times(ctx: Ctx, g: GroupRec, p: NodeRec, t: float, up: list[Member]) -> list[float]:
    """When each electable secondary will have caught up with a primary that blocks writes."""
    out: list[float] = []
    for m, o in up:
        rate = ctx.apply_rate(o)
        if o is p or not electable_now(g, m, o, t) or o.lineage != p.lineage or rate <= 0:
            continue
        lag = ctx.data.count_between(p.lineage, o.applied_ts, p.applied_ts) if p.lineage is not None else 0
        out.append(t + max(0.0, (lag - o.apply_credit) / rate))
    return out


def data_role(ctx: Ctx, g: GroupRec, n: NodeRec, t: float, up: list[Member], target: NodeRec | None) -> None:
    """Initial sync for members without this set's data, RECOVERING for members too stale to catch up."""
    if n.role == Role.PRIMARY or n.cfg_version == 0:
        return
    if n.role == Role.STARTUP2:
        if n.sync_end is not None and due(t, n.sync_end):
            src = next((o for _, o in up if o.addr == n.sync_source), None)
            if src is not None and can_seed(ctx, n, src, target):
                complete_sync(ctx, g, n, src, t)
                return
            n.sync_end = None
        if n.sync_end is None:
            begin_sync(ctx, n, t, up, target)
        return
    differs = target is not None and target.lineage != n.lineage and ctx.reach(n, target)
    if n.lineage is None or differs:
        n.role = Role.STARTUP2
        ctx.event(g, t, "initial sync", host=n.addr, reason="no data" if n.lineage is None else "diverged")
        begin_sync(ctx, n, t, up, target)
    elif n.role == Role.SECONDARY and too_stale(ctx, n, up):
        n.role = Role.RECOVERING
        ctx.event(g, t, "too stale", host=n.addr)


def can_seed(ctx: Ctx, n: NodeRec, src: NodeRec, target: NodeRec | None) -> bool:
    return (
        src is not n
        and src.lineage is not None
        and src.role in (Role.PRIMARY, Role.SECONDARY)
        and ctx.reach(n, src)
        and (target is None or src.lineage == target.lineage)
    )


def begin_sync(ctx: Ctx, n: NodeRec, t: float, up: list[Member], target: NodeRec | None) -> None:
    sources = [o for m, o in up if not m["arbiterOnly"] and can_seed(ctx, n, o, target)]
    if not sources:
        n.sync_end = n.sync_source = None
        return
    src = target if target in sources else max(sources, key=lambda o: o.applied_ts)
    assert src is not None and src.lineage is not None
    docs = ctx.data.count_docs(src.lineage, src.applied_ts)
    n.sync_source = src.addr
    n.sync_end = t + ctx.params.initial_sync_s + docs / ctx.params.clone_docs_per_s


def complete_sync(ctx: Ctx, g: GroupRec, n: NodeRec, src: NodeRec, t: float) -> None:
    assert src.lineage is not None
    last = ctx.data.entry_at(src.lineage, src.applied_ts)
    n.indexes = effective_indexes(ctx, src)
    ctx.set_lineage(n, src.lineage)
    n.applied_ts, n.applied_cum = src.applied_ts, src.applied_cum
    n.trunc_ts, n.trunc_cum = src.applied_ts - 1, src.applied_cum - (last.size if last else 0)
    n.role = Role.SECONDARY
    n.sync_end = None
    ctx.event(g, t, "initial sync done", host=n.addr, source=src.addr)


def too_stale(ctx: Ctx, n: NodeRec, up: list[Member]) -> bool:
    ahead = [
        o
        for m, o in up
        if o is not n
        and not m["arbiterOnly"]
        and o.lineage == n.lineage
        and o.applied_ts > n.applied_ts
        and ctx.reach(n, o)
    ]
    return bool(ahead) and all(o.trunc_ts > n.applied_ts for o in ahead)

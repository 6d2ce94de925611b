"""Simulated ``mongos`` routers: starting one (it joins the cluster its ``sharding.configDB`` names), the
sharding commands sent to it (``listShards``, ``addShard``, ``removeShard``, ``shardCollection``,
``config.collections``, ``balancerStatus``/``balancerStart``/``balancerStop``) and client reads, writes and
counts routed by the chunk map.

Metadata commands change the config documents on the config servers' primary and are refused without one;
``listShards`` and the client operations use the routers' cached map, so a router whose config servers have
no primary still routes with the last map it read. A client operation fails with
``FailedToSatisfyReadPreference`` (133) when the shard it needs has no primary the router reaches; a count
counts the shards it reaches and names the others. Commands are functions ``(ctx, n, t, ...)`` over the
router's record, as in ``sim.processes``. May import ``opsmgr.errors``, ``opsmgr.drivers.base`` and
``opsmgr.sim`` modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsmgr.drivers.base import (
    BalancerState,
    CommandInvalid,
    ProcessSpec,
    RemoveShardProgress,
    RemoveShardState,
    ShardedCollection,
    ShardInfo,
)
from opsmgr.errors import OpsmgrError
from opsmgr.sim import oplog, processes
from opsmgr.sim.balancer import kick
from opsmgr.sim.ctx import Ctx
from opsmgr.sim.data import id_key
from opsmgr.sim.model import NodeRec, check_namespace
from opsmgr.sim.processes import refuse, up
from opsmgr.sim.shardmodel import (
    CHUNKS_NS,
    COLLECTIONS_NS,
    SETTINGS_NS,
    SHARDS_NS,
    ChunkMap,
    ClusterRec,
    ShardedCount,
    check_key,
    initial_chunks,
    parse_connection,
)
from opsmgr.sim.shards import (
    assign_database,
    cluster_role,
    config_db,
    config_docs,
    config_primary,
    config_set,
    copy_docs,
    delete,
    delete_docs,
    event,
    not_reached,
    owned,
    primary,
    put,
    refresh,
    set_at,
    shard_set,
)

NOT_MONGOS = 59  # CommandNotFound: a mongod does not know the router's commands


def start(ctx: Ctx, n: NodeRec | None, t: float, spec: ProcessSpec, cap_mb: float) -> float:
    """Start a router: a process without data that joins the cluster of its ``sharding.configDB``."""
    configured = config_db(spec.args)
    if configured is None:
        raise CommandInvalid(f"{spec.name}: a mongos needs sharding.configDB '<rs>/<host:port>,...'")
    ready_at = processes.start(ctx, n, t, spec, cap_mb)
    router = ctx.node(f"{spec.hostname}/{spec.name}")
    assert router is not None
    name, hosts = configured
    c = ctx.tx.get(ClusterRec, name)
    if c is None:
        c = ClusterRec(name, t)
        ctx.tx.put(c)
    c.config_hosts = sorted({*c.config_hosts, *hosts})
    if router.key not in c.mongos:
        c.mongos.append(router.key)
    refresh(ctx, c, t)
    return ready_at


def cluster_of(ctx: Ctx, n: NodeRec | None) -> ClusterRec | None:
    configured = config_db(n.args) if n is not None and n.process_type == "mongos" else None
    return ctx.tx.get(ClusterRec, configured[0]) if configured is not None else None


def router(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> tuple[NodeRec, ClusterRec]:
    """The running router ``n`` and its cluster; refused for a process that is not a router."""
    n = up(n, name, t)
    c = cluster_of(ctx, n)
    if c is None:
        raise refuse(f"{name}: not a mongos: sharding commands go to a mongos", NOT_MONGOS, "CommandNotFound")
    return n, c


def _map(c: ClusterRec) -> ChunkMap:
    cmap = c.cached_map()
    if cmap is None:
        raise not_reached(f"no routing table yet: config server replica set {c.name} was never reached")
    return cmap


def _current(ctx: Ctx, c: ClusterRec, n: NodeRec, t: float) -> ChunkMap:
    """The map as the config servers' primary has it (refused without one): what metadata changes read."""
    return ChunkMap.of(config_docs(ctx, config_primary(ctx, c, t, n)))


# -- metadata commands ------------------------------------------------------------------------------------


def list_shards(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> list[ShardInfo]:
    _n, c = router(ctx, n, t, name)
    shards = _map(c).shards.values()
    return [ShardInfo(id=s["_id"], host=s["host"], draining=bool(s.get("draining"))) for s in shards]


def add_shard(ctx: Ctx, n: NodeRec | None, t: float, name: str, shard_id: str, connection: str) -> None:
    """``addShard``: a reachable, initiated replica set started as ``shardsvr`` becomes shard ``shard_id``;
    a no-op when it already is."""
    n, c = router(ctx, n, t, name)
    rs, hosts = parse_connection(connection)
    cmap = _current(ctx, c, n, t)
    existing = cmap.shards.get(shard_id)
    if existing is not None:
        if parse_connection(existing["host"])[0] == rs:
            return
        raise refuse(f"a shard named {shard_id} already exists ({existing['host']})", 96, "OperationFailed")
    other = next((s for s in cmap.shards.values() if parse_connection(s["host"])[0] == rs), None)
    if other is not None:
        raise refuse(f"replica set {rs} is already shard {other['_id']}", 96, "OperationFailed")
    g = set_at(ctx, rs, hosts)
    p = primary(ctx, g, t, n)
    if g is None or p is None:
        raise not_reached(
            f"cannot add shard {shard_id}: no initiated replica set {rs} with a primary at {hosts}"
        )
    if cluster_role(p) != "shardsvr" or g is config_set(ctx, c):
        raise refuse(f"{rs} was not started with sharding.clusterRole 'shardsvr'", 96, "OperationFailed")
    members = ",".join(m["host"] for m in g.config["members"])
    csrs = config_set(ctx, c)
    assert csrs is not None
    put(ctx, csrs, t, SHARDS_NS, {"_id": shard_id, "host": f"{rs}/{members}", "state": 1, "draining": False})
    g.cluster = c.name
    event(ctx, c, t, "shard added", shard=shard_id, host=f"{rs}/{members}")
    kick(c, t)
    refresh(ctx, c, t)


def remove_shard(ctx: Ctx, n: NodeRec | None, t: float, name: str, shard_id: str) -> RemoveShardProgress:
    """``removeShard``: the first call starts draining (the balancer moves its chunks off), later calls
    report progress, the call that finds it drained moves its databases and removes it."""
    n, c = router(ctx, n, t, name)
    cmap = _current(ctx, c, n, t)
    shard = cmap.shards.get(shard_id)
    if shard is None:
        raise refuse(f"shard {shard_id} does not exist", 70, "ShardNotFound")
    csrs = config_set(ctx, c)
    assert csrs is not None
    dbs = tuple(sorted(db for db, s in cmap.databases.items() if s == shard_id))
    if not shard.get("draining"):
        if len(cmap.shards) == 1:
            raise refuse("cannot remove the last shard", 20, "IllegalOperation")
        put(ctx, csrs, t, SHARDS_NS, {**shard, "draining": True})
        event(ctx, c, t, "draining started", shard=shard_id)
        kick(c, t)
        refresh(ctx, c, t)
        return RemoveShardProgress(RemoveShardState.STARTED, cmap.shard_chunks(shard_id), dbs)
    remaining = cmap.shard_chunks(shard_id)
    if remaining or not _move_databases(ctx, c, cmap, shard_id, dbs, n, t):
        return RemoveShardProgress(RemoveShardState.ONGOING, remaining, dbs)
    delete(ctx, csrs, t, SHARDS_NS, shard_id)
    event(ctx, c, t, "shard removed", shard=shard_id)
    refresh(ctx, c, t)
    return RemoveShardProgress(RemoveShardState.COMPLETED, 0, ())


def _move_databases(
    ctx: Ctx, c: ClusterRec, cmap: ChunkMap, shard_id: str, dbs: tuple[str, ...], n: NodeRec, t: float
) -> bool:
    """Move the databases whose primary is the drained shard (MongoDB's ``movePrimary``, which the sim
    does itself): their unsharded collections' documents go to the shard with fewest databases. False
    when a primary it needs is missing."""
    if not dbs:
        return True
    donor = shard_set(ctx, cmap.shards[shard_id])
    if primary(ctx, donor, t, n) is None:
        return False
    csrs = config_set(ctx, c)
    assert csrs is not None and donor is not None
    rest = ChunkMap(
        shards={s: d for s, d in cmap.shards.items() if s != shard_id},
        databases={d: s for d, s in cmap.databases.items() if s != shard_id},
    )
    for db in dbs:
        recipient = shard_set(ctx, rest.shards[rest.least_loaded()])
        if recipient is None or primary(ctx, recipient, t, n) is None:
            return False
        assign_database(ctx, c, rest, db, t, n)
        delete_docs(ctx, donor, t, copy_docs(ctx, donor, recipient, t, _unsharded_of(cmap, db)))
    return True


def _unsharded_of(cmap: ChunkMap, db: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda ns, _doc: ns.split(".", 1)[0] == db and ns not in cmap.collections


def sharded_collections(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> list[ShardedCollection]:
    _n, c = router(ctx, n, t, name)
    colls = _map(c).collections.values()
    return [ShardedCollection(ns=d["_id"], key=dict(d["key"]), unique=bool(d.get("unique"))) for d in colls]


def shard_collection(
    ctx: Ctx, n: NodeRec | None, t: float, name: str, ns: str, key: dict[str, Any], unique: bool
) -> None:
    """``shardCollection`` (``enableSharding`` implied): the collection is split into
    ``SimParams.initial_chunks`` chunks on its database's primary shard; a no-op when already sharded with
    the same key."""
    check_namespace(ns)
    check_key(key)
    n, c = router(ctx, n, t, name)
    cmap = _current(ctx, c, n, t)
    sharded = cmap.collections.get(ns)
    if sharded is not None:
        if sharded["key"] == key and bool(sharded.get("unique")) == unique:
            return
        raise refuse(f"{ns} is already sharded with key {sharded['key']}", 23, "AlreadyInitialized")
    home = assign_database(ctx, c, cmap, ns.split(".", 1)[0], t, n)
    csrs = config_set(ctx, c)
    assert csrs is not None
    put(ctx, csrs, t, COLLECTIONS_NS, {"_id": ns, "key": key, "unique": unique})
    for chunk in initial_chunks(ns, home, ctx.params.initial_chunks):
        put(ctx, csrs, t, CHUNKS_NS, chunk)
    event(ctx, c, t, "collection sharded", ns=ns, key=key)
    kick(c, t)
    refresh(ctx, c, t)


def balancer_status(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> BalancerState:
    _n, c = router(ctx, n, t, name)
    return BalancerState(mode="full" if _map(c).balancer_on else "off", in_round=c.migration is not None)


def set_balancer(ctx: Ctx, n: NodeRec | None, t: float, name: str, running: bool) -> None:
    """``balancerStart``/``balancerStop``: the setting on the config servers (a migration under way
    finishes; the driver waits for it)."""
    n, c = router(ctx, n, t, name)
    config_primary(ctx, c, t, n)
    csrs = config_set(ctx, c)
    assert csrs is not None
    put(
        ctx,
        csrs,
        t,
        SETTINGS_NS,
        {"_id": "balancer", "stopped": not running, "mode": "full" if running else "off"},
    )
    if running:
        kick(c, t)
    refresh(ctx, c, t)


# -- client operations ------------------------------------------------------------------------------------


def _target(ctx: Ctx, c: ClusterRec, cmap: ChunkMap, shard: str, n: NodeRec, t: float, why: str) -> NodeRec:
    """The primary of ``shard`` that router ``n`` reaches, or the clear refusal."""
    p = primary(ctx, shard_set(ctx, cmap.shards[shard]), t, n, reads=why != "write")
    if p is None:
        raise not_reached(f"shard {shard} has no reachable primary: cannot {why} the documents of its chunks")
    return p


def write(ctx: Ctx, n: NodeRec | None, t: float, name: str, ns: str, op: str, doc: dict[str, Any]) -> int:
    """One client write through the router, to the shard owning the document's chunk (or its database's
    primary shard); the document carries its shard key. A failure is counted in the cluster's writes
    failed. Returns the entry's ``ts``."""
    oplog.check_write(ns, op, doc)
    n, c = router(ctx, n, t, name)
    cmap = _map(c)
    try:
        owner = cmap.owner(ns, doc) or assign_database(ctx, c, cmap, ns.split(".", 1)[0], t, n)
        p = _target(ctx, c, cmap, owner, n, t, "write")
    except OpsmgrError:
        c.writes_failed += 1
        raise
    g = ctx.group(p.gid)
    assert g is not None
    ts = oplog.write(ctx, g, t, ns, op, doc)
    n.opcounters[op] = n.opcounters.get(op, 0) + 1  # a router counts the operations it routes
    c.writes += 1
    return ts


def find(ctx: Ctx, n: NodeRec | None, t: float, name: str, ns: str, doc_id: Any) -> dict[str, Any] | None:
    """The document of ``ns`` with ``_id`` ``doc_id`` (a shard key on ``_id`` alone targets one shard,
    another key asks every shard holding chunks of ``ns``)."""
    n, c = router(ctx, n, t, name)
    cmap = _map(c)
    for shard in _shards_of(cmap, ns, {"_id": doc_id}):
        p = _target(ctx, c, cmap, shard, n, t, "read")
        assert p.lineage is not None
        doc = ctx.data.get_doc(p.lineage, ns, id_key(doc_id), p.applied_ts)
        if doc is not None and cmap.owner(ns, doc) == shard:
            return doc
    return None


def _shards_of(cmap: ChunkMap, ns: str, doc: dict[str, Any] | None) -> list[str]:
    """The shards a read of ``ns`` (of ``doc``, if it names the whole shard key) needs."""
    coll = cmap.collections.get(ns)
    if coll is None:
        home = cmap.databases.get(ns.split(".", 1)[0])
        return [home] if home is not None else []
    if doc is not None and all(f in doc for f in coll["key"]):
        owner = cmap.owner(ns, doc)
        return [owner] if owner is not None else []
    return sorted({ch["shard"] for ch in cmap.chunks[ns]})


def _owned_by(cmap: ChunkMap, ns: str, shard: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda x, doc: x == ns and cmap.owner(ns, doc) == shard


def count(ctx: Ctx, n: NodeRec | None, t: float, name: str, ns: str) -> ShardedCount:
    """The documents of ``ns`` over the shards the router reaches; the others are named."""
    n, c = router(ctx, n, t, name)
    cmap = _map(c)
    shards = _shards_of(cmap, ns, None)
    total, missing = 0, []
    for shard in shards:
        p = primary(ctx, shard_set(ctx, cmap.shards[shard]), t, n, reads=True)
        if p is None:
            missing.append(shard)
            continue
        total += len(owned(ctx, p, _owned_by(cmap, ns, shard)))
    return ShardedCount(count=total, shards=len(shards), unreachable=tuple(missing))

"""What the simulated world shows of itself (tests, the fleet and the UI read it): each replica set with its
members, primary, elections, time without a writable primary, connections, writes, rollbacks, write load and
events; each process with its mode, port, version and state; each sharded cluster with its shards, chunks,
documents per shard, balancer, migrations and the writes through its routers. Pure reads over a
:class:`~opsmgr.sim.ctx.Ctx`. May import ``opsmgr.drivers.base`` (``MemberState``) and ``opsmgr.sim``
modules.
"""

from __future__ import annotations

import copy

from opsmgr.drivers.base import MemberState
from opsmgr.sim import rsconfig
from opsmgr.sim.ctx import Ctx, due
from opsmgr.sim.members import own_state, primary_of, up_members
from opsmgr.sim.model import GroupRec, MemberView, NodeRec, ProcessView, ReplicaSetView, WriteLoad
from opsmgr.sim.shardmodel import (
    ChunkMap,
    ClusterEventsRec,
    ClusterRec,
    MigrationView,
    ShardedClusterView,
    ShardView,
    parse_connection,
)
from opsmgr.sim.shards import config_set, owned, primary, shard_set


def replica_set(ctx: Ctx, g: GroupRec) -> ReplicaSetView:
    up = {n.addr: (m, n) for m, n in up_members(ctx, g, g.t)}
    primary = primary_of(g, list(up.values()))
    members = []
    for m in g.config["members"]:
        found = up.get(m["host"])
        listening = ctx.listening(m["host"])
        process = listening.key if listening is not None else None
        config = (m["priority"], m["votes"], m["hidden"], m["arbiterOnly"])
        if found is None:
            members.append(MemberView(m["host"], process, MemberState.DOWN, False, 0, None, *config))
            continue
        n = found[1]
        lag = (
            ((primary.applied_ts >> 32) - (n.applied_ts >> 32))
            if primary and n.lineage == primary.lineage
            else None
        )
        members.append(
            MemberView(
                m["host"],
                process,
                own_state(g, m, n),
                ctx.client_reach(n),
                n.applied_ts,
                float(lag) if lag is not None and not m["arbiterOnly"] else None,
                *config,
            )
        )
    outage = g.outage_total + (g.t - g.outage_since if g.outage_since is not None else 0.0)
    return ReplicaSetView(
        id=g.gid,
        name=g.set_name,
        term=g.term,
        config_version=int(g.config["version"]),
        primary=primary.addr if primary is not None else None,
        members=tuple(members),
        elections=g.elections,
        no_primary_s=outage,
        connections=g.connected,
        connections_dropped=g.dropped,
        writes=g.writes,
        rolled_back_ops=g.rolled_back,
        write_load=WriteLoad.from_json(g.load),
        events=tuple(copy.deepcopy(ctx.events(g).events)),
        cluster=g.cluster,
    )


def process(ctx: Ctx, n: NodeRec, t: float) -> ProcessView:
    g = ctx.group(n.gid)
    state = None
    if g is not None and n.listens_replset() and due(t, n.ready_at) and n.cfg_version:
        state = own_state(g, rsconfig.member_for(g.config, n.addr), n)
    return ProcessView(
        hostname=n.hostname,
        name=n.name,
        running=n.running,
        mode=n.mode if n.running else None,
        port=n.port if n.running else None,
        version=n.version or None,
        state=state,
        set_id=n.gid,
        process_type=n.process_type,
    )


def sharded_cluster(ctx: Ctx, c: ClusterRec, t: float) -> ShardedClusterView:
    """The cluster as its routers' map says, each shard with its chunks and the documents it owns."""
    cmap = c.cached_map() or ChunkMap()
    m = c.migration
    csrs = config_set(ctx, c)
    events = ctx.tx.get(ClusterEventsRec, c.name)
    return ShardedClusterView(
        name=c.name,
        config_set_id=csrs.gid if csrs is not None else None,
        mongos=tuple(c.mongos),
        shards=tuple(_shard(ctx, cmap, s, t) for s in sorted(cmap.shards)),
        collections={
            ns: {"key": d["key"], "unique": bool(d.get("unique"))} for ns, d in cmap.collections.items()
        },
        chunks={ns: cmap.chunk_counts(ns) for ns in sorted(cmap.chunks)},
        balancer_on=cmap.balancer_on,
        migration=MigrationView(
            m["ns"], m["chunk"], m["donor"], m["recipient"], float(m["started"]), float(m["commit_at"])
        )
        if m is not None
        else None,
        migrations=c.migrations,
        migrations_aborted=c.migrations_aborted,
        writes=c.writes,
        writes_failed=c.writes_failed,
        write_load=WriteLoad.from_json(c.load),
        events=tuple(copy.deepcopy(events.events)) if events is not None else (),
    )


def _shard(ctx: Ctx, cmap: ChunkMap, shard: str, t: float) -> ShardView:
    doc = cmap.shards[shard]
    g = shard_set(ctx, doc)
    p = primary(ctx, g, t, reads=True)
    documents = len(owned(ctx, p, lambda ns, d: cmap.owner(ns, d) == shard)) if p is not None else None
    return ShardView(
        id=shard,
        set_name=parse_connection(str(doc["host"]))[0],
        set_id=g.gid if g is not None else None,
        draining=bool(doc.get("draining")),
        reachable=p is not None,
        chunks=cmap.shard_chunks(shard),
        documents=documents,
    )

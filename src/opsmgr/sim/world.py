"""``SimWorld``: the simulated hosts, processes and replica sets, and everything one may do to them.

Three audiences use it. The sim driver (``opsmgr.drivers.sim``) calls the command methods for the processes
of its host (``start``, ``stop``, ``rs_status``, ``initiate``, ``reconfig``, ``request_step_down``,
``freeze``, ``fsync_lock``, ``create_index``, ``oplog_read``, ``dump``, ``load``, ...). Tests, the fleet and
the UI use the fault API (``kill``, ``cut_host``, ``reconnect_host``, ``stall_replication``, ``fail_start``,
``heal``, ``wipe_data``), the write-load API (``set_write_load``, ``write``) and the inspection API
(``replica_sets``, ``replica_set``, ``processes``, ``set_id_of``). Sharded clusters: the commands a router
takes (``list_shards``, ``add_shard``, ``remove_shard``, ``sharded_collections``, ``shard_collection``,
``balancer_status``, ``set_balancer``), client operations through a router (``mongos_write``,
``mongos_find``, ``mongos_count``), the load through the routers (``set_cluster_write_load``) and the views
(``sharded_cluster``, ``sharded_clusters``).

Every call is one transaction that first advances the replica sets it touches to the clock's ``now`` and
then applies the call. A command that MongoDB would refuse raises a ``DriverError`` subclass after the
advance is kept. State lives in the backend, not in any process, so simulated ``mongod`` processes go on
"running" when the agent that started them dies, and two ``SimWorld`` objects opened on the same file (in
two agent processes) see one world.

``SimWorld`` is the façade: it runs the transactions, and each call is one function of a part, applied to
the records it touches: ``processes`` (start, stop, crash, connections), ``replset`` (replica set commands),
``indexes``, ``oplog`` (client writes, fsync lock, oplog and dump), ``restore`` (load, wipe), ``faults`` and
``views``, and for sharded clusters ``mongos`` (a router's commands) and ``balancer`` (a cluster in time,
advanced before any of its replica sets); the state machine that advances a set is ``engine``'s. May
import ``opsmgr.errors``, ``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from opsmgr.drivers.base import (
    BalancerState,
    OplogRecord,
    OplogWindow,
    ProcessObservation,
    ProcessSpec,
    RemoveShardProgress,
    RsStatus,
    ShardedCollection,
    ShardInfo,
    StorageSample,
)
from opsmgr.errors import InvalidInput, NotFound, OpsmgrError
from opsmgr.sim import faults, indexes, measure, mongos, oplog, processes, replset, restore, views
from opsmgr.sim.balancer import advance_cluster
from opsmgr.sim.clock import Clock, SystemClock
from opsmgr.sim.ctx import Ctx
from opsmgr.sim.engine import advance, evaluate
from opsmgr.sim.members import groups_of
from opsmgr.sim.model import (
    GroupRec,
    HostRec,
    Meta,
    NodeRec,
    ProcessView,
    ReplicaSetView,
    SimParams,
    WriteLoad,
    check_namespace,
    node_key,
)
from opsmgr.sim.shardmodel import ClusterRec, ShardedClusterView, ShardedCount
from opsmgr.sim.store import Backend, MemoryBackend, SqliteBackend

T = TypeVar("T")
OnNode = Callable[[Ctx, NodeRec | None, float], T]


class _Session:
    """One transaction. A refusal (``OpsmgrError``) is raised after the advance that preceded it, and
    whatever the command changed before refusing (by design: nothing), is committed; any other error
    rolls the transaction back."""

    def __init__(self, backend: Backend, params: SimParams) -> None:
        self._cm = backend.transaction()
        self._params = params

    def __enter__(self) -> Ctx:
        self._ctx = Ctx(self._cm.__enter__(), self._params)
        return self._ctx

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if ev is None or isinstance(ev, OpsmgrError):
            try:
                self._ctx.finish()
            except BaseException as exc:
                self._cm.__exit__(type(exc), exc, exc.__traceback__)
                raise
            self._cm.__exit__(None, None, None)
        else:
            self._cm.__exit__(et, ev, tb)


class SimWorld:
    """The simulated world. Create with :meth:`in_memory` or :meth:`open` (a SQLite file)."""

    def __init__(
        self, backend: Backend, *, clock: Clock | None = None, params: SimParams | None = None
    ) -> None:
        self._backend = backend
        self.clock: Clock = clock or SystemClock()
        with backend.transaction() as tx:
            meta = tx.get(Meta, "meta")
            if meta is None:
                meta = Meta(params=(params or SimParams()).to_json())
                tx.put(meta)
            self.params = SimParams.from_json(meta.params)

    @classmethod
    def in_memory(cls, *, clock: Clock | None = None, params: SimParams | None = None) -> SimWorld:
        return cls(MemoryBackend(), clock=clock, params=params)

    @classmethod
    def open(
        cls, path: str | Path, *, clock: Clock | None = None, params: SimParams | None = None
    ) -> SimWorld:
        """Open (or create) the world in a SQLite file; ``params`` only apply to a new file."""
        return cls(SqliteBackend(path), clock=clock, params=params)

    def close(self) -> None:
        self._backend.close()

    # -- transactions ------------------------------------------------------------------------------------

    def _ctx(self) -> _Session:
        return _Session(self._backend, self.params)

    def _advance(self, ctx: Ctx, groups: list[GroupRec]) -> float:
        """Bring ``groups`` to now; the sharded clusters they belong to first (their sets move together)."""
        now = self.clock.now()
        for name in sorted({g.cluster for g in groups if g.cluster is not None}):
            cluster = ctx.tx.get(ClusterRec, name)
            if cluster is not None:
                advance_cluster(ctx, cluster, now)
        for g in groups:
            advance(ctx, g, now)
        return max([now, *(g.t for g in groups)])

    def _on_node(
        self, hostname: str, name: str, fn: OnNode[T], *, addr: str | None = None, reads: bool = False
    ) -> T:
        """Advance the sets of one process (and of ``addr``, where it is about to listen), apply ``fn``,
        then (unless it only ``reads``) let the sets react at once."""
        with self._ctx() as ctx:
            key = node_key(hostname, name)
            n = ctx.node(key)
            groups = groups_of(ctx, [n] if n else [])
            listed = ctx.addr_group(addr) if addr is not None else None
            t = self._advance(ctx, [*groups, *([listed] if listed else [])])
            result = fn(ctx, n, t)
            if reads:
                return result
            n = ctx.node(key)
            for g in groups_of(ctx, [n] if n else []):
                advance(ctx, g, t)
                evaluate(ctx, g, g.t)
            return result

    def _on_host_groups(self, hostnames: list[str], fn: Callable[[Ctx], None]) -> None:
        with self._ctx() as ctx:
            nodes = [n for h in hostnames for n in ctx.host_nodes(h)]
            groups = groups_of(ctx, nodes)
            t = self._advance(ctx, groups)
            fn(ctx)
            for g in groups:
                evaluate(ctx, g, max(g.t, t))

    def _on_set(self, set_id: int, fn: Callable[[Ctx, GroupRec, float], T]) -> T:
        with self._ctx() as ctx:
            g = ctx.group(set_id)
            if g is None:
                raise NotFound(f"no simulated replica set with id {set_id}")
            t = self._advance(ctx, [g])
            result = fn(ctx, g, t)
            evaluate(ctx, g, g.t)
            return result

    # -- the process ------------------------------------------------------------------------------------

    def observe(self, hostname: str, name: str) -> ProcessObservation:
        return self._on_node(hostname, name, lambda c, n, t: processes.observe(c, n, t, name), reads=True)

    def start(self, spec: ProcessSpec) -> float:
        """Start the process (it accepts connections at the returned time); a no-op if it already runs so.
        A ``mongos`` spec starts a router of the cluster its ``sharding.configDB`` names."""
        cap_mb = processes.oplog_mb(spec.args, self.params.default_oplog_mb)
        how = mongos.start if spec.process_type == "mongos" else processes.start
        return self._on_node(
            spec.hostname,
            spec.name,
            lambda c, n, t: how(c, n, t, spec, cap_mb),
            addr=f"{spec.hostname}:{spec.port}",
        )

    def stop(self, hostname: str, name: str, *, force: bool = False) -> str | None:
        """Stop the process. A primary first steps down: this returns a request id to poll with
        :meth:`request_result` while it waits (up to the shutdown timeout) for a secondary to catch up."""
        return self._on_node(hostname, name, lambda c, n, t: processes.stop(c, n, t, force))

    def request_result(self, hostname: str, name: str, req: str) -> str | None:
        """None while a step-down or shutdown request is pending; then "ok" or "CodeName: message"."""
        return self._on_node(
            hostname, name, lambda c, n, t: processes.request_result(c, n, t, hostname, name, req), reads=True
        )

    def connections(self, hostname: str, name: str) -> int:
        return self._on_node(hostname, name, lambda c, n, t: processes.connections(c, n, t, name), reads=True)

    def server_sample(self, hostname: str, name: str) -> dict[str, float]:
        """The Ops Manager measurements ``serverStatus`` gives (see ``sim.measure``)."""
        return self._on_node(hostname, name, lambda c, n, t: measure.server_sample(c, n, t, name), reads=True)

    def storage_sample(self, hostname: str, name: str) -> StorageSample:
        """The data partition and the databases' ``dbStats`` (see ``sim.measure``)."""
        return self._on_node(
            hostname, name, lambda c, n, t: measure.storage_sample(c, n, t, name), reads=True
        )

    # -- replication commands ---------------------------------------------------------------------------

    def rs_status(self, hostname: str, name: str) -> RsStatus | None:
        return self._on_node(hostname, name, lambda c, n, t: replset.rs_status(c, n, t, name), reads=True)

    def rs_config(self, hostname: str, name: str) -> dict[str, Any] | None:
        return self._on_node(hostname, name, lambda c, n, t: replset.rs_config(c, n, t, name), reads=True)

    def set_parameter(self, hostname: str, name: str, parameters: dict[str, Any]) -> None:
        """``setParameter`` on a running process: its options show the new values from now on."""
        self._on_node(hostname, name, lambda c, n, t: replset.set_parameter(c, n, t, name, parameters))

    def rename_replica_set(self, hostname: str, name: str, new_name: str) -> None:
        """Rename the set in the data of a standalone process (see ``replset.rename``)."""
        self._on_node(hostname, name, lambda c, n, t: replset.rename(c, n, t, name, new_name))

    def initiate(self, hostname: str, name: str, config: dict[str, Any]) -> None:
        self._on_node(hostname, name, lambda c, n, t: replset.initiate(c, n, t, name, config))

    def reconfig(self, hostname: str, name: str, config: dict[str, Any], *, force: bool = False) -> None:
        self._on_node(hostname, name, lambda c, n, t: replset.reconfig(c, n, t, name, config, force))

    def request_step_down(
        self, hostname: str, name: str, *, step_down_secs: float, catch_up_secs: float
    ) -> str:
        """Start ``replSetStepDown``; poll :meth:`request_result` with the returned id for the outcome."""
        return self._on_node(
            hostname,
            name,
            lambda c, n, t: replset.request_step_down(c, n, t, name, step_down_secs, catch_up_secs),
        )

    def freeze(self, hostname: str, name: str, secs: float) -> None:
        self._on_node(hostname, name, lambda c, n, t: replset.freeze(c, n, t, name, secs))

    def fsync_lock(self, hostname: str, name: str) -> int:
        return self._on_node(hostname, name, lambda c, n, t: oplog.fsync_lock(c, n, t, name))

    def fsync_unlock(self, hostname: str, name: str) -> int:
        return self._on_node(hostname, name, lambda c, n, t: oplog.fsync_unlock(c, n, t, name))

    # -- indexes ----------------------------------------------------------------------------------------

    def create_index(
        self, hostname: str, name: str, ns: str, keys: list[tuple[str, Any]], options: dict[str, Any]
    ) -> None:
        spec = indexes.index_spec(ns, keys, options)
        self._on_node(hostname, name, lambda c, n, t: indexes.create_index(c, n, t, name, ns, spec))

    def list_indexes(self, hostname: str, name: str, ns: str) -> list[dict[str, Any]]:
        check_namespace(ns)
        return self._on_node(
            hostname, name, lambda c, n, t: indexes.list_indexes(c, n, t, name, ns), reads=True
        )

    def drop_index(self, hostname: str, name: str, ns: str, index_name: str) -> None:
        """Drop an index this node built itself (see ``indexes.drop_index``)."""
        check_namespace(ns)
        self._on_node(hostname, name, lambda c, n, t: indexes.drop_index(c, n, t, name, ns, index_name))

    # -- oplog and data ---------------------------------------------------------------------------------

    def oplog_window(self, hostname: str, name: str) -> OplogWindow | None:
        return self._on_node(hostname, name, lambda c, n, t: oplog.oplog_window(c, n, t, name), reads=True)

    def oplog_read(self, hostname: str, name: str, after_ts: int, limit: int = 1000) -> list[OplogRecord]:
        return self._on_node(
            hostname, name, lambda c, n, t: oplog.oplog_read(c, n, t, name, after_ts, limit), reads=True
        )

    def dump(self, hostname: str, name: str) -> list[tuple[str, dict[str, Any]]]:
        return self._on_node(hostname, name, lambda c, n, t: oplog.dump(c, n, t, name), reads=True)

    def load(self, hostname: str, name: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        """Replace the process's user data (it must be stopped or standalone); its oplog restarts."""
        by_key = restore.documents(docs)
        self._on_node(hostname, name, lambda c, n, t: restore.load(c, n, t, hostname, name, by_key))

    def wipe_data(self, hostname: str, name: str) -> None:
        """Empty the stopped process's data directory (it will do an initial sync when it starts)."""
        self._on_node(hostname, name, lambda c, n, t: restore.wipe(c, n, t, hostname, name))

    # -- faults -----------------------------------------------------------------------------------------

    def kill(self, hostname: str, name: str) -> bool:
        """Crash the process (no step-down, no handoff); False if it was not running."""
        return self._on_node(hostname, name, processes.kill)

    def cut_host(self, hostname: str) -> None:
        """Partition the host: its processes and the rest of the world (clients included) stop seeing
        each other. Processes on the same host still see each other."""
        self._on_host_groups([hostname], lambda c: faults.cut(c, hostname))

    def reconnect_host(self, hostname: str) -> None:
        self._on_host_groups([hostname], lambda c: faults.reconnect(c, hostname))

    def stall_replication(self, hostname: str, name: str, *, rate: float = 0.0) -> None:
        """The member applies at most ``rate`` oplog entries per second (0: not at all) until healed."""
        if not rate >= 0:
            raise InvalidInput("rate must be >= 0", field="rate")
        self._on_node(hostname, name, lambda c, n, t: faults.stall(c, node_key(hostname, name), rate))

    def fail_start(self, hostname: str, name: str) -> None:
        """The next starts of the process fail (it exits during startup) until healed."""
        with self._ctx() as ctx:
            faults.fail_start(ctx, node_key(hostname, name))

    def heal(self) -> None:
        """Undo every injected fault (partitions, stalls, failing starts); crashed processes stay down."""
        with self._ctx() as ctx:
            hosts = faults.faulty_hosts(ctx)
        self._on_host_groups(hosts, faults.clear)

    # -- the application ---------------------------------------------------------------------------------

    def set_write_load(self, set_id: int, load: WriteLoad) -> None:
        self._on_set(set_id, lambda ctx, g, t: setattr(g, "load", load.to_json()))

    def write_load(self, set_id: int) -> WriteLoad:
        return self._on_set(set_id, lambda ctx, g, t: WriteLoad.from_json(g.load))

    def write(self, set_id: int, ns: str, op: str, doc: dict[str, Any]) -> int:
        """One client write on the primary: ``op`` "i" (insert), "u" (replace by ``_id``) or "d" (delete
        by ``_id``), checked against unique indexes. Returns the entry's ``ts``."""
        oplog.check_write(ns, op, doc)
        return self._on_set(set_id, lambda c, g, t: oplog.write(c, g, t, ns, op, doc))

    # -- sharded clusters: commands to a router, client operations through it, the load, the views ----------

    def _on_router(self, hostname: str, name: str, fn: OnNode[T]) -> T:
        """Advance the cluster of router ``name`` (if it is one), then apply ``fn``."""
        with self._ctx() as ctx:
            n = ctx.node(node_key(hostname, name))
            cluster = mongos.cluster_of(ctx, n)
            t = self.clock.now()
            if cluster is not None:
                advance_cluster(ctx, cluster, t)
                t = max(t, cluster.t)
            return fn(ctx, n, t)

    def _on_cluster(self, cluster: str, fn: Callable[[Ctx, ClusterRec, float], T]) -> T:
        with self._ctx() as ctx:
            c = ctx.tx.get(ClusterRec, cluster)
            if c is None:
                raise NotFound(f"no simulated sharded cluster {cluster!r}")
            advance_cluster(ctx, c, self.clock.now())
            return fn(ctx, c, c.t)

    def list_shards(self, hostname: str, name: str) -> list[ShardInfo]:
        return self._on_router(hostname, name, lambda c, n, t: mongos.list_shards(c, n, t, name))

    def add_shard(self, hostname: str, name: str, shard_id: str, connection: str) -> None:
        self._on_router(hostname, name, lambda c, n, t: mongos.add_shard(c, n, t, name, shard_id, connection))

    def remove_shard(self, hostname: str, name: str, shard_id: str) -> RemoveShardProgress:
        return self._on_router(hostname, name, lambda c, n, t: mongos.remove_shard(c, n, t, name, shard_id))

    def sharded_collections(self, hostname: str, name: str) -> list[ShardedCollection]:
        return self._on_router(hostname, name, lambda c, n, t: mongos.sharded_collections(c, n, t, name))

    def shard_collection(
        self, hostname: str, name: str, ns: str, key: dict[str, Any], *, unique: bool = False
    ) -> None:
        self._on_router(
            hostname, name, lambda c, n, t: mongos.shard_collection(c, n, t, name, ns, dict(key), unique)
        )

    def balancer_status(self, hostname: str, name: str) -> BalancerState:
        return self._on_router(hostname, name, lambda c, n, t: mongos.balancer_status(c, n, t, name))

    def set_balancer(self, hostname: str, name: str, *, running: bool) -> None:
        self._on_router(hostname, name, lambda c, n, t: mongos.set_balancer(c, n, t, name, running))

    def mongos_write(self, hostname: str, name: str, ns: str, op: str, doc: dict[str, Any]) -> int:
        """One client write through router ``name`` (see :meth:`write`), routed by the shard key the
        document carries; returns the entry's ``ts`` on the shard."""
        return self._on_router(hostname, name, lambda c, n, t: mongos.write(c, n, t, name, ns, op, doc))

    def mongos_find(self, hostname: str, name: str, ns: str, doc_id: Any) -> dict[str, Any] | None:
        """The document with ``_id`` ``doc_id`` through the router; refused when its shard is unreachable."""
        return self._on_router(hostname, name, lambda c, n, t: mongos.find(c, n, t, name, ns, doc_id))

    def mongos_count(self, hostname: str, name: str, ns: str) -> ShardedCount:
        """The documents of ``ns`` through the router, and the shards it could not reach."""
        return self._on_router(hostname, name, lambda c, n, t: mongos.count(c, n, t, name, ns))

    def set_cluster_write_load(self, cluster: str, load: WriteLoad) -> None:
        """An application writing through the cluster's routers (failed writes are counted)."""
        self._on_cluster(cluster, lambda ctx, c, t: setattr(c, "load", load.to_json()))

    def sharded_cluster(self, cluster: str) -> ShardedClusterView:
        """The cluster named after its config server replica set."""
        return self._on_cluster(cluster, views.sharded_cluster)

    def sharded_clusters(self) -> list[ShardedClusterView]:
        with self._ctx() as ctx:
            names = sorted(ctx.tx.keys(ClusterRec))
        return [self._on_cluster(name, views.sharded_cluster) for name in names]

    # -- inspection -------------------------------------------------------------------------------------

    def advance(self) -> None:
        """Bring every replica set to the clock's now."""
        with self._ctx() as ctx:
            self._advance(ctx, self._all_groups(ctx))

    @staticmethod
    def _all_groups(ctx: Ctx) -> list[GroupRec]:
        return [
            g for g in (ctx.group(int(k)) for k in sorted(ctx.tx.keys(GroupRec), key=int)) if g is not None
        ]

    def set_id_of(self, hostname: str, name: str) -> int | None:
        with self._ctx() as ctx:
            n = ctx.node(node_key(hostname, name))
            groups = groups_of(ctx, [n]) if n is not None else []
            return n.gid if n is not None and n.gid is not None else (groups[0].gid if groups else None)

    def replica_sets(self) -> list[ReplicaSetView]:
        with self._ctx() as ctx:
            groups = self._all_groups(ctx)
            self._advance(ctx, groups)
            return [views.replica_set(ctx, g) for g in groups]

    def replica_set(self, set_id: int) -> ReplicaSetView:
        return self._on_set(set_id, lambda ctx, g, t: views.replica_set(ctx, g))

    def processes(self, hostname: str | None = None) -> list[ProcessView]:
        with self._ctx() as ctx:
            hosts = [hostname] if hostname is not None else sorted(ctx.tx.keys(HostRec))
            nodes = [n for h in hosts for n in ctx.host_nodes(h)]
            t = self._advance(ctx, groups_of(ctx, nodes))
            return [views.process(ctx, n, t) for n in nodes]

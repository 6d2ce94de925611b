"""``SimWorld``: the simulated hosts, processes and replica sets, and everything one may do to them.

Three audiences use it. The sim driver (``opsmgr.drivers.sim``) calls the command methods for the processes
of its host (``start``, ``stop``, ``rs_status``, ``initiate``, ``reconfig``, ``request_step_down``,
``freeze``, ``fsync_lock``, ``create_index``, ``oplog_read``, ``dump``, ``load``, ...). Tests, the fleet and
the UI use the fault API (``kill``, ``cut_host``, ``reconnect_host``, ``stall_replication``, ``fail_start``,
``heal``, ``wipe_data``), the write-load API (``set_write_load``, ``write``) and the inspection API
(``replica_sets``, ``replica_set``, ``processes``, ``set_id_of``).

Every call is one transaction that first advances the replica sets it touches to the clock's ``now`` and
then applies the call. A command that MongoDB would refuse raises a ``DriverError`` subclass after the
advance is kept. State lives in the backend, not in any process, so simulated ``mongod`` processes go on
"running" when the agent that started them dies, and two ``SimWorld`` objects opened on the same file (in
two agent processes) see one world.

May import ``opsmgr.errors``, ``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from opsmgr.drivers.base import (
    CommandConflict,
    CommandInvalid,
    DriverError,
    MemberState,
    MemberStatus,
    OplogRecord,
    OplogWindow,
    ProcessObservation,
    ProcessSpec,
    ProcessUnreachable,
    RsStatus,
    RunMode,
)
from opsmgr.errors import InvalidInput, NotFound, OplogGap, OpsmgrError
from opsmgr.sim import engine, rsconfig
from opsmgr.sim.clock import Clock, SystemClock
from opsmgr.sim.data import Entry, id_key
from opsmgr.sim.engine import Ctx, advance, evaluate, groups_of, up_members
from opsmgr.sim.model import (
    MB,
    AddrRec,
    GroupRec,
    HostRec,
    MemberView,
    Meta,
    NodeRec,
    ProcessView,
    ReplicaSetView,
    Role,
    SimParams,
    WriteLoad,
    check_namespace,
    node_key,
)
from opsmgr.sim.store import Backend, MemoryBackend, SqliteBackend

T = TypeVar("T")

NOT_PRIMARY = 10107


def _refuse(detail: str, code: int, code_name: str) -> CommandConflict:
    return CommandConflict(detail, code=code, code_name=code_name)


def _oplog_mb(args: dict[str, Any], default: float) -> float:
    value = (args.get("replication") or {}).get("oplogSizeMB", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput("replication.oplogSizeMB must be a positive number", field="args2_6.replication")
    return float(value)


def _index_name(keys: list[tuple[str, Any]]) -> str:
    return "_".join(f"{k}_{v}" for k, v in keys)


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
        now = self.clock.now()
        for g in groups:
            advance(ctx, g, now)
        return max([now, *(g.t for g in groups)])

    def _on_node(
        self,
        hostname: str,
        name: str,
        fn: Callable[[Ctx, NodeRec | None, float], T],
        *,
        addr: str | None = None,
        reads: bool = False,
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

    def _on_host_groups(self, hostnames: list[str], fn: Callable[[Ctx, float], None]) -> None:
        with self._ctx() as ctx:
            nodes = [n for h in hostnames for n in ctx.host_nodes(h)]
            groups = groups_of(ctx, nodes)
            t = self._advance(ctx, groups)
            fn(ctx, t)
            for g in groups:
                evaluate(ctx, g, max(g.t, t))

    # -- the process ------------------------------------------------------------------------------------

    @staticmethod
    def _up(n: NodeRec | None, name: str, t: float) -> NodeRec:
        if n is None or not n.running:
            raise ProcessUnreachable(
                f"{name}: not running (connection refused)", code=6, code_name="HostUnreachable"
            )
        if not engine.due(t, n.ready_at):
            raise ProcessUnreachable(
                f"{name}: still starting, not accepting connections yet", code=6, code_name="HostUnreachable"
            )
        return n

    def observe(self, hostname: str, name: str) -> ProcessObservation:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> ProcessObservation:
            if n is None or not n.running:
                return ProcessObservation(name=name, running=False)
            return ProcessObservation(
                name=name,
                running=True,
                mode=RunMode(n.mode),
                port=n.port,
                version=n.version,
                args=copy.deepcopy(n.args),
                pid=n.pid,
                uptime_s=max(0.0, t - n.started_at),
            )

        return self._on_node(hostname, name, run, reads=True)

    def start(self, spec: ProcessSpec) -> float:
        """Start the process (it accepts connections at the returned time); a no-op if it already runs so."""
        mode = RunMode.REPLSET if spec.repl_set_name is not None else RunMode.STANDALONE
        cap_mb = _oplog_mb(spec.args, self.params.default_oplog_mb)

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> float:
            if n is not None and n.running:
                if (n.port, n.mode, n.args) == (spec.port, mode.value, spec.args):
                    return n.ready_at
                raise CommandConflict(
                    f"{spec.name} already runs on port {n.port} in {n.mode} mode; stop it first"
                )
            busy = next((o for o in ctx.host_nodes(spec.hostname) if o.running and o.port == spec.port), None)
            if busy is not None:
                raise DriverError(
                    f"{spec.name}: Failed to set up listener: SocketException: Address already in use "
                    f"({spec.hostname}:{spec.port} is used by {busy.name})",
                    code=9001,
                    code_name="SocketException",
                )
            if n is None:
                n = NodeRec(spec.hostname, spec.name, cap_bytes=int(cap_mb * MB), dbpath=spec.dbpath)
                ctx.add_node(n)
            if n.key in ctx.meta.fail_start:
                raise DriverError(
                    f"{spec.name}: exited with code 1 during startup (simulated fault: fails to start)",
                    code=1,
                    code_name="ProcessExited",
                )
            if n.dbpath != spec.dbpath:
                self._forget_data(ctx, n)
                n.dbpath = spec.dbpath
            n.running = True
            n.port, n.mode, n.version = spec.port, mode.value, spec.version
            ctx.ports_changed()
            n.args = copy.deepcopy(spec.args)
            n.repl_set_name = spec.repl_set_name
            n.cap_bytes = int(cap_mb * MB)
            n.pid = ctx.meta.next_pid
            ctx.meta.next_pid += 1
            n.started_at, n.ready_at = t, t + self.params.startup_s
            n.role = Role.SECONDARY
            n.stepdown_until = n.frozen_until = 0.0
            engine.cap_oplog(ctx, n)
            return n.ready_at

        return self._on_node(spec.hostname, spec.name, run, addr=f"{spec.hostname}:{spec.port}")

    def _forget_data(self, ctx: Ctx, n: NodeRec) -> None:
        """A different (empty) data directory: no replica set, no oplog, no documents, no indexes."""
        g = ctx.group(n.gid)
        if g is not None and n.key in g.bound:
            g.bound.remove(n.key)
        ctx.set_lineage(n, None)
        n.gid, n.cfg_version, n.term = None, 0, 0
        n.applied_ts = n.applied_cum = n.trunc_ts = n.trunc_cum = 0
        n.indexes = {}

    def stop(self, hostname: str, name: str, *, force: bool = False) -> str | None:
        """Stop the process. A primary first steps down: this returns a request id to poll with
        :meth:`request_result` while it waits (up to the shutdown timeout) for a secondary to catch up."""

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> str | None:
            if n is None or not n.running:
                return None
            g = ctx.group(n.gid)
            others = [m for m in g.config["members"] if m["host"] != n.addr] if g is not None else []
            if g is None or n.role != Role.PRIMARY or not any(rsconfig.electable(m) for m in others):
                # Nothing to step down to (a secondary, a standalone, a one-electable-member set).
                engine.halt(ctx, g, n, t, "shutdown")
                return None
            up = up_members(ctx, g, t)
            if force:
                caught = engine.handoff_candidates(ctx, g, n, t, up)
                engine.step_down(ctx, g, n, t, "forced shutdown")
                if caught:
                    engine.hand_off(ctx, g, t, caught[0][1])
                engine.halt(ctx, g, n, t, "shutdown")
                return None
            return self._request(ctx, n, t, catch_up_s=self._shutdown_timeout(n), until=t, shutdown=True)

        return self._on_node(hostname, name, run)

    @staticmethod
    def _shutdown_timeout(n: NodeRec) -> float:
        major = n.version.split(".")[0]
        return 15.0 if major.isdigit() and int(major) >= 5 else 10.0

    @staticmethod
    def _request(ctx: Ctx, n: NodeRec, t: float, *, catch_up_s: float, until: float, shutdown: bool) -> str:
        if n.stepdown is not None:
            raise _refuse(
                f"{n.name}: a step-down is already in progress", 117, "ConflictingOperationInProgress"
            )
        req = ctx.new_req()
        n.stepdown = {"req": req, "deadline": t + catch_up_s, "until": until, "shutdown": shutdown}
        return req

    def request_result(self, hostname: str, name: str, req: str) -> str | None:
        """None while a step-down or shutdown request is pending; then "ok" or "CodeName: message"."""

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> str | None:
            if n is None:
                return f"NotFound: no process {name} on {hostname}"
            if n.stepdown is not None and str(n.stepdown["req"]) == req:
                return None
            return n.results.get(req, "ok" if not n.running else f"NoSuchRequest: request {req} is not known")

        return self._on_node(hostname, name, run, reads=True)

    # -- replication commands ---------------------------------------------------------------------------

    def rs_status(self, hostname: str, name: str) -> RsStatus | None:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> RsStatus | None:
            n = self._up(n, name, t)
            g = ctx.group(n.gid)
            if n.mode != RunMode.REPLSET.value or g is None or n.cfg_version == 0:
                return None
            me = rsconfig.member_for(g.config, n.addr)
            if me is None or n.repl_set_name != g.set_name:
                return RsStatus(
                    set_name=g.set_name, my_state=MemberState.REMOVED, term=0, members=(), config_version=0
                )
            up = {o.addr: (m, o) for m, o in up_members(ctx, g, t)}
            members = []
            for m in g.config["members"]:
                found = up.get(m["host"])
                if found is None or not ctx.reach(n, found[1]):
                    members.append(
                        MemberStatus(host=m["host"], state=MemberState.DOWN, health=False, optime_ts=0)
                    )
                    continue
                o = found[1]
                state = engine.own_state(g, m, o)
                members.append(
                    MemberStatus(
                        host=m["host"],
                        state=state,
                        health=True,
                        optime_ts=0 if m["arbiterOnly"] else o.applied_ts,
                        self=o is n,
                        config_version=o.cfg_version,
                        sync_source=o.sync_source if state is MemberState.SECONDARY else None,
                    )
                )
            return RsStatus(
                set_name=g.set_name,
                my_state=engine.own_state(g, me, n),
                term=n.term,
                members=tuple(members),
                config_version=n.cfg_version,
            )

        return self._on_node(hostname, name, run, reads=True)

    def rs_config(self, hostname: str, name: str) -> dict[str, Any] | None:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> dict[str, Any] | None:
            n = self._up(n, name, t)
            g = ctx.group(n.gid)
            if n.mode != RunMode.REPLSET.value or g is None or n.cfg_version == 0:
                return None
            return {**copy.deepcopy(g.config), "term": g.term}

        return self._on_node(hostname, name, run, reads=True)

    def set_parameter(self, hostname: str, name: str, parameters: dict[str, Any]) -> None:
        """``setParameter`` on a running process: its options show the new values from now on."""

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            n = self._up(n, name, t)
            current = dict(n.args.get("setParameter") or {})
            n.args = {**n.args, "setParameter": {**current, **copy.deepcopy(parameters)}}

        self._on_node(hostname, name, run)

    def rename_replica_set(self, hostname: str, name: str, new_name: str) -> None:
        """Rename the set in the data of a standalone process (its ``local.system.replset``). The set's
        config is shared in this model, so its other members, still under the old name, drop out of it
        (REMOVED) until they are restarted under the new one, as the offline rename procedure does."""

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            n = self._up(n, name, t)
            if n.mode != RunMode.STANDALONE.value:
                raise _refuse(f"{name}: rename the replica set while standalone", 20, "IllegalOperation")
            g = ctx.group(n.gid)
            if g is None:
                raise _refuse(f"{name}: has no replica set config to rename", 76, "NoReplicationEnabled")
            if g.set_name != new_name:
                g.set_name = new_name
                g.config = {**g.config, "_id": new_name}
                ctx.event(g, t, "rename", host=n.addr, name=new_name)
                # A primary still under the old name is no member of the set any more: it steps down.
                for key in list(g.bound):
                    o = ctx.node(key)
                    if o is not None and o.running and o.role == Role.PRIMARY and o.repl_set_name != new_name:
                        engine.step_down(ctx, g, o, t, "is no longer a member of the renamed set")

        self._on_node(hostname, name, run)

    def initiate(self, hostname: str, name: str, config: dict[str, Any]) -> None:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            n = self._up(n, name, t)
            if n.mode != RunMode.REPLSET.value:
                raise _refuse(
                    f"{name}: This node was not started with replication enabled.", 76, "NoReplicationEnabled"
                )
            if ctx.group(n.gid) is not None and n.cfg_version:
                raise _refuse(f"{name}: already initialized", 23, "AlreadyInitialized")
            cfg = rsconfig.normalize(config)
            rsconfig.validate(cfg)
            if cfg["_id"] != n.repl_set_name:
                raise CommandInvalid(
                    f"Attempting to initiate a replica set with name {cfg['_id']}, but command line reports "
                    f"{n.repl_set_name}; rejecting",
                    code=93,
                    code_name="InvalidReplicaSetConfig",
                )
            version = cfg.get("version", 1)
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise CommandInvalid(
                    "version must be a positive integer", code=93, code_name="InvalidReplicaSetConfig"
                )
            me = rsconfig.member_for(cfg, n.addr)
            if me is None:
                raise CommandInvalid(
                    f"No host described in new configuration with {{version: {version}, term: 0}} for "
                    f"replica set {cfg['_id']} maps to this node",
                    code=74,
                    code_name="NodeNotFound",
                )
            if me["arbiterOnly"]:
                raise CommandInvalid(
                    "an arbiter cannot initiate the replica set", code=93, code_name="InvalidReplicaSetConfig"
                )
            for m in cfg["members"]:
                if m is not me:
                    self._check_initiate_peer(ctx, n, m["host"], cfg["_id"], t)
            self._create_set(ctx, n, cfg, version, t)

        self._on_node(hostname, name, run)

    @staticmethod
    def _check_initiate_peer(ctx: Ctx, n: NodeRec, host: str, set_name: str, t: float) -> None:
        def fail(why: str) -> CommandConflict:
            return _refuse(
                "replSetInitiate quorum check failed because not all proposed set members responded "
                f"affirmatively: {host} failed with {why}",
                74,
                "NodeNotFound",
            )

        o = ctx.listening(host)
        if o is None or not engine.due(t, o.ready_at) or not ctx.reach(n, o):
            raise fail("Connection refused")
        if o.mode != RunMode.REPLSET.value:
            raise fail("not running with --replSet")
        if o.repl_set_name != set_name:
            raise fail(f"replica set name {o.repl_set_name} does not match {set_name}")
        if ctx.group(o.gid) is not None and o.cfg_version:
            raise fail("already initialized")
        if o.lineage is not None and ctx.data.count_docs(o.lineage, o.applied_ts):
            raise fail("has data already, cannot initiate set")

    def _create_set(self, ctx: Ctx, n: NodeRec, cfg: dict[str, Any], version: int, t: float) -> None:
        gid = ctx.meta.next_gid
        ctx.meta.next_gid += 1
        cfg["version"] = version
        cfg["settings"].setdefault(
            "replicaSetId", f"{engine.mix(self.params.seed, gid) & ((1 << 96) - 1):024x}"
        )
        load = self.params.default_write_load or WriteLoad()
        g = GroupRec(gid=gid, set_name=cfg["_id"], config=cfg, t=t, load=load.to_json(), bound=[n.key])
        ctx.tx.put(g)
        for m in cfg["members"]:
            ctx.tx.put(AddrRec(m["host"], gid))
        if n.gid is not None and n.gid != gid:
            old = ctx.group(n.gid)
            if old is not None and n.key in old.bound:
                old.bound.remove(n.key)
        n.gid, n.cfg_version, n.role = gid, version, Role.SECONDARY
        self._own_lineage(ctx, n, t, "initiating set")
        # The initiator calls an election straight away, as a freshly initiated mongod does.
        n.no_primary_since = t - engine.election_timeout_s(g)
        ctx.event(g, t, "initiate", host=n.addr, version=version)

    @staticmethod
    def _own_lineage(ctx: Ctx, n: NodeRec, t: float, msg: str) -> None:
        """Give ``n`` a lineage of its own holding its current documents, then write a no-op entry."""
        docs = ctx.data.docs_at(n.lineage, n.applied_ts) if n.lineage is not None else []
        indexes = engine.effective_indexes(ctx, n)
        lin = ctx.new_lineage()
        ts = engine.next_ts(0, t)
        for ns, doc in docs:
            ctx.data.put_doc(lin.lid, ns, id_key(doc["_id"]), ts, doc)
        entry = Entry.make(ts, 0, "n", "", {"msg": msg}, None, int(t * 1000))
        ctx.data.append(lin.lid, [entry])
        lin.last_ts, lin.last_cum = ts, entry.cum
        ctx.set_lineage(n, lin.lid)
        n.indexes = indexes
        n.applied_ts, n.applied_cum = ts, entry.cum
        # Nothing was ever truncated from a brand-new oplog; restored or copied data is not in it.
        n.trunc_ts, n.trunc_cum = (ts - 1, 0) if docs else (0, 0)

    def reconfig(self, hostname: str, name: str, config: dict[str, Any], *, force: bool = False) -> None:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            n = self._up(n, name, t)
            g = ctx.group(n.gid)
            if n.mode != RunMode.REPLSET.value or g is None or n.cfg_version == 0:
                raise _refuse(f"{name}: no replset config has been received", 94, "NotYetInitialized")
            if not force and n.role != Role.PRIMARY:
                raise _refuse(
                    f"{name}: replSetReconfig should only be run on a writable PRIMARY",
                    NOT_PRIMARY,
                    "NotWritablePrimary",
                )
            cfg = rsconfig.normalize(config)
            rsconfig.validate(cfg)
            rsconfig.validate_change(g.config, cfg, force=force)
            old_version = int(g.config["version"])
            version = cfg.get("version", old_version + 1)
            if isinstance(version, bool) or not isinstance(version, int):
                raise CommandInvalid(
                    "version must be an integer", code=93, code_name="InvalidReplicaSetConfig"
                )
            if force:
                version = (
                    max(version, old_version)
                    + 10_000
                    + engine.mix(self.params.seed, g.gid, int(t * 1000)) % 90_000
                )
            elif version <= old_version:
                raise CommandInvalid(
                    f"New config version {version} must be greater than old version {old_version}",
                    code=103,
                    code_name="NewReplicaSetConfigurationIncompatible",
                )
            if rsconfig.member_for(cfg, n.addr) is None and not force:
                raise CommandInvalid(
                    f"No host described in new configuration with {{version: {version}}} for replica set "
                    f"{g.set_name} maps to this node",
                    code=74,
                    code_name="NodeNotFound",
                )
            if not force:
                self._check_reconfig_quorum(ctx, g, n, cfg, t)
            cfg["version"] = version
            cfg["settings"]["replicaSetId"] = g.config["settings"].get("replicaSetId")
            cfg.pop("term", None)
            old_hosts = {m["host"] for m in g.config["members"]}
            new_hosts = {m["host"] for m in cfg["members"]}
            for host in old_hosts - new_hosts:
                rec = ctx.tx.get(AddrRec, host)
                if rec is not None and rec.gid == g.gid:
                    ctx.tx.delete(rec)
            for host in new_hosts - old_hosts:
                ctx.tx.put(AddrRec(host, g.gid))
            g.config = cfg
            n.cfg_version = version
            ctx.event(g, t, "reconfig", host=n.addr, version=version, force=force)

        self._on_node(hostname, name, run)

    @staticmethod
    def _check_reconfig_quorum(ctx: Ctx, g: GroupRec, n: NodeRec, cfg: dict[str, Any], t: float) -> None:
        up = 0
        for m in cfg["members"]:
            o = ctx.listening(m["host"])
            if (
                o is not None
                and o.mode == "replset"
                and o.repl_set_name == g.set_name
                and engine.due(t, o.ready_at)
            ):
                other = ctx.group(o.gid)
                if other is not None and other.gid != g.gid and rsconfig.member_for(other.config, o.addr):
                    raise _refuse(
                        f"{m['host']} is a member of another replica set (id {other.gid})",
                        103,
                        "NewReplicaSetConfigurationIncompatible",
                    )
                if m["votes"] == 1 and ctx.reach(n, o):
                    up += 1
        if up < rsconfig.majority(cfg):
            raise _refuse(
                "replSetReconfig quorum check failed: not enough voting members of the new config are up "
                f"({up} of the {rsconfig.majority(cfg)} needed)",
                74,
                "NodeNotFound",
            )

    def request_step_down(
        self, hostname: str, name: str, *, step_down_secs: float, catch_up_secs: float
    ) -> str:
        """Start ``replSetStepDown``; poll :meth:`request_result` with the returned id for the outcome."""

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> str:
            n = self._up(n, name, t)
            if n.mode != RunMode.REPLSET.value or n.role != Role.PRIMARY or ctx.group(n.gid) is None:
                raise _refuse(f"{name}: not primary so can't step down", NOT_PRIMARY, "NotWritablePrimary")
            if step_down_secs <= catch_up_secs:
                raise CommandInvalid(
                    "stepdown period must be longer than secondaryCatchUpPeriodSecs",
                    code=2,
                    code_name="BadValue",
                )
            return self._request(
                ctx, n, t, catch_up_s=catch_up_secs, until=t + step_down_secs, shutdown=False
            )

        return self._on_node(hostname, name, run)

    def freeze(self, hostname: str, name: str, secs: float) -> None:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            n = self._up(n, name, t)
            g = ctx.group(n.gid)
            if n.mode != RunMode.REPLSET.value or g is None or n.cfg_version == 0:
                raise _refuse(f"{name}: no replset config has been received", 94, "NotYetInitialized")
            if secs < 0:
                raise CommandInvalid(
                    "replSetFreeze needs a non-negative number of seconds", code=2, code_name="BadValue"
                )
            running_for = g.election is not None and g.election["candidate"] == n.key
            if n.role == Role.PRIMARY or running_for:
                state = "Primary" if n.role == Role.PRIMARY else "Secondary (running for election)"
                raise _refuse(
                    f"{name}: cannot freeze node when primary or running for election. state: {state}",
                    95,
                    "NotSecondary",
                )
            n.frozen_until = t + secs

        self._on_node(hostname, name, run)

    def fsync_lock(self, hostname: str, name: str) -> int:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> int:
            n = self._up(n, name, t)
            n.fsync_locks += 1
            return n.fsync_locks

        return self._on_node(hostname, name, run)

    def fsync_unlock(self, hostname: str, name: str) -> int:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> int:
            n = self._up(n, name, t)
            if not n.fsync_locks:
                raise _refuse(f"{name}: fsyncUnlock called when not locked", 125, "CommandFailed")
            n.fsync_locks -= 1
            return n.fsync_locks

        return self._on_node(hostname, name, run)

    # -- indexes and connections ------------------------------------------------------------------------

    def create_index(
        self, hostname: str, name: str, ns: str, keys: list[tuple[str, Any]], options: dict[str, Any]
    ) -> None:
        check_namespace(ns)
        if not keys:
            raise CommandInvalid("an index needs at least one key", code=67, code_name="CannotCreateIndex")
        spec: dict[str, Any] = {"v": 2, "key": dict(keys), "name": options.get("name") or _index_name(keys)}
        spec.update((k, copy.deepcopy(v)) for k, v in options.items() if k != "name")

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            n = self._up(n, name, t)
            g = ctx.group(n.gid)
            primary = n.mode == RunMode.REPLSET.value
            if primary and (g is None or n.role != Role.PRIMARY):
                raise _refuse(f"{name}: not primary (createIndexes)", NOT_PRIMARY, "NotWritablePrimary")
            if primary and n.fsync_locks:
                raise _refuse(f"{name}: writes are locked by fsyncLock", 46, "LockBusy")
            existing = engine.effective_indexes(ctx, n).get(ns, [])
            same_name = next((s for s in existing if s["name"] == spec["name"]), None)
            if same_name is not None:
                if same_name == spec:
                    return
                raise _refuse(
                    f"{name}: an index named {spec['name']} already exists with different options",
                    86,
                    "IndexKeySpecsConflict",
                )
            if any(s["key"] == spec["key"] for s in existing):
                raise _refuse(
                    f"{name}: an index with the key {spec['key']} already exists under another name",
                    85,
                    "IndexOptionsConflict",
                )
            if spec.get("unique"):
                self._check_unique(ctx, n, ns, spec)
            if primary:
                assert g is not None
                db, coll = ns.split(".", 1)
                entry = engine.append_write(
                    ctx,
                    g,
                    n,
                    t,
                    "c",
                    f"{db}.$cmd",
                    {"createIndexes": coll, **{k: v for k, v in spec.items()}},
                    None,
                    None,
                )
                assert n.lineage is not None
                ctx.lineage(n.lineage).index_ops.append({"ts": entry.ts, "ns": ns, "spec": spec})
                engine.cap_oplog(ctx, n)
            else:
                n.indexes.setdefault(ns, []).append(spec)

        self._on_node(hostname, name, run)

    @staticmethod
    def _check_unique(
        ctx: Ctx, n: NodeRec, ns: str, spec: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> None:
        if n.lineage is None:
            return
        fields = list(spec["key"])
        seen: dict[str, Any] = {}
        docs = [d for dns, d in ctx.data.docs_at(n.lineage, n.applied_ts) if dns == ns]
        if extra is not None:
            docs = [d for d in docs if d.get("_id") != extra.get("_id")] + [extra]
        for doc in docs:
            value = id_key([doc.get(f) for f in fields])
            if value in seen and seen[value] != doc.get("_id"):
                dup = ", ".join(f"{f}: {doc.get(f)!r}" for f in fields)
                raise _refuse(
                    f"E11000 duplicate key error collection: {ns} index: {spec['name']} dup key: {{ {dup} }}",
                    11000,
                    "DuplicateKey",
                )
            seen[value] = doc.get("_id")

    def list_indexes(self, hostname: str, name: str, ns: str) -> list[dict[str, Any]]:
        check_namespace(ns)

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> list[dict[str, Any]]:
            n = self._up(n, name, t)
            specs = engine.effective_indexes(ctx, n).get(ns, [])
            return [{"v": 2, "key": {"_id": 1}, "name": "_id_"}, *copy.deepcopy(specs)]

        return self._on_node(hostname, name, run, reads=True)

    def drop_index(self, hostname: str, name: str, ns: str, index_name: str) -> None:
        """Drop an index this node built itself (standalone); a no-op when it has none of that name. An
        index it has through replication is refused: dropping it is a replicated write, not modelled."""
        check_namespace(ns)

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            n = self._up(n, name, t)
            own = n.indexes.get(ns, [])
            if any(s["name"] == index_name for s in own):
                n.indexes[ns] = [s for s in own if s["name"] != index_name]
                return
            if any(s["name"] == index_name for s in engine.effective_indexes(ctx, n).get(ns, [])):
                raise _refuse(
                    f"{name}: {index_name} on {ns} came through replication; the sim does not model "
                    "dropping it",
                    67,
                    "CannotDropIndex",
                )

        self._on_node(hostname, name, run)

    def connections(self, hostname: str, name: str) -> int:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> int:
            n = self._up(n, name, t)
            g = ctx.group(n.gid)
            return g.connected if g is not None and g.primary == n.key and n.role == Role.PRIMARY else 0

        return self._on_node(hostname, name, run, reads=True)

    # -- oplog and data ---------------------------------------------------------------------------------

    def oplog_window(self, hostname: str, name: str) -> OplogWindow | None:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> OplogWindow | None:
            n = self._up(n, name, t)
            if n.lineage is None:
                return None
            first = ctx.data.entries(n.lineage, n.trunc_ts, n.applied_ts, 1)
            if not first:
                return None
            return OplogWindow(
                size_mb=n.cap_bytes / MB,
                used_mb=(n.applied_cum - n.trunc_cum) / MB,
                first_ts=first[0].ts,
                last_ts=n.applied_ts,
                window_hours=((n.applied_ts >> 32) - (first[0].ts >> 32)) / 3600.0,
            )

        return self._on_node(hostname, name, run, reads=True)

    def oplog_read(self, hostname: str, name: str, after_ts: int, limit: int = 1000) -> list[OplogRecord]:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> list[OplogRecord]:
            n = self._up(n, name, t)
            if n.lineage is None:
                raise CommandConflict(
                    f"{name}: has no oplog to read (not a replica set member, or not initiated)"
                )
            if after_ts < n.trunc_ts:
                first = ctx.data.entries(n.lineage, n.trunc_ts, n.applied_ts, 1)
                raise OplogGap(after_ts, first[0].ts if first else None)
            return [e.record() for e in ctx.data.entries(n.lineage, after_ts, n.applied_ts, limit)]

        return self._on_node(hostname, name, run, reads=True)

    def dump(self, hostname: str, name: str) -> list[tuple[str, dict[str, Any]]]:
        def run(ctx: Ctx, n: NodeRec | None, t: float) -> list[tuple[str, dict[str, Any]]]:
            n = self._up(n, name, t)
            if n.lineage is None:
                return []
            docs = ctx.data.docs_at(n.lineage, n.applied_ts)
            return sorted(docs, key=lambda nd: (nd[0], id_key(nd[1].get("_id"))))

        return self._on_node(hostname, name, run, reads=True)

    def load(self, hostname: str, name: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        """Replace the process's user data (it must be stopped or standalone); its oplog restarts."""
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        for ns, doc in docs:
            check_namespace(ns)
            if not isinstance(doc, dict) or "_id" not in doc:
                raise InvalidInput(f"every document needs an _id (in {ns})", field="docs")
            by_key[(ns, id_key(doc["_id"]))] = copy.deepcopy(doc)

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            if n is None:
                raise NotFound(f"no process {name} on {hostname}")
            if n.running and n.mode == RunMode.REPLSET.value:
                raise CommandConflict(f"{name}: stop it or start it standalone before replacing its data")
            indexes = engine.effective_indexes(ctx, n)
            lin = ctx.new_lineage()
            ts = engine.next_ts(0, t)
            for (ns, key), doc in by_key.items():
                ctx.data.put_doc(lin.lid, ns, key, ts, doc)
            entry = Entry.make(ts, 0, "n", "", {"msg": "data replaced (restore)"}, None, int(t * 1000))
            ctx.data.append(lin.lid, [entry])
            lin.last_ts, lin.last_cum = ts, entry.cum
            ctx.set_lineage(n, lin.lid)
            n.indexes = indexes
            n.applied_ts, n.applied_cum = ts, entry.cum
            n.trunc_ts, n.trunc_cum = ts - 1, 0

        self._on_node(hostname, name, run)

    # -- faults -----------------------------------------------------------------------------------------

    def kill(self, hostname: str, name: str) -> bool:
        """Crash the process (no step-down, no handoff); False if it was not running."""

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> bool:
            if n is None or not n.running:
                return False
            engine.halt(ctx, ctx.group(n.gid), n, t, "crash")
            return True

        return self._on_node(hostname, name, run)

    def cut_host(self, hostname: str) -> None:
        """Partition the host: its processes and the rest of the world (clients included) stop seeing
        each other. Processes on the same host still see each other."""

        def run(ctx: Ctx, t: float) -> None:
            if hostname not in ctx.meta.cut_hosts:
                ctx.meta.cut_hosts.append(hostname)
            ctx.cut.add(hostname)

        self._on_host_groups([hostname], run)

    def reconnect_host(self, hostname: str) -> None:
        def run(ctx: Ctx, t: float) -> None:
            if hostname in ctx.meta.cut_hosts:
                ctx.meta.cut_hosts.remove(hostname)
            ctx.cut.discard(hostname)

        self._on_host_groups([hostname], run)

    def stall_replication(self, hostname: str, name: str, *, rate: float = 0.0) -> None:
        """The member applies at most ``rate`` oplog entries per second (0: not at all) until healed."""
        if not rate >= 0:
            raise InvalidInput("rate must be >= 0", field="rate")

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            ctx.meta.stalled[node_key(hostname, name)] = rate

        self._on_node(hostname, name, run)

    def fail_start(self, hostname: str, name: str) -> None:
        """The next starts of the process fail (it exits during startup) until healed."""
        with self._ctx() as ctx:
            key = node_key(hostname, name)
            if key not in ctx.meta.fail_start:
                ctx.meta.fail_start.append(key)

    def heal(self) -> None:
        """Undo every injected fault (partitions, stalls, failing starts); crashed processes stay down."""
        with self._ctx() as ctx:
            hosts = set(ctx.meta.cut_hosts) | {k.split("/", 1)[0] for k in ctx.meta.stalled}
        self._on_host_groups(sorted(hosts), self._clear_faults)

    @staticmethod
    def _clear_faults(ctx: Ctx, t: float) -> None:
        ctx.meta.cut_hosts.clear()
        ctx.meta.stalled.clear()
        ctx.meta.fail_start.clear()
        ctx.cut.clear()

    def wipe_data(self, hostname: str, name: str) -> None:
        """Empty the stopped process's data directory (it will do an initial sync when it starts)."""

        def run(ctx: Ctx, n: NodeRec | None, t: float) -> None:
            if n is None:
                raise NotFound(f"no process {name} on {hostname}")
            if n.running:
                raise CommandConflict(f"{name}: stop it before wiping its data")
            lid = n.lineage
            ctx.set_lineage(n, None)
            if lid is not None:
                ctx.lineage(lid).refs.pop(n.key, None)
            n.applied_ts = n.applied_cum = n.trunc_ts = n.trunc_cum = 0
            n.indexes = {}

        self._on_node(hostname, name, run)

    # -- the application ---------------------------------------------------------------------------------

    def set_write_load(self, set_id: int, load: WriteLoad) -> None:
        self._on_set(set_id, lambda ctx, g, t: setattr(g, "load", load.to_json()))

    def write_load(self, set_id: int) -> WriteLoad:
        return self._on_set(set_id, lambda ctx, g, t: WriteLoad.from_json(g.load))

    def write(self, set_id: int, ns: str, op: str, doc: dict[str, Any]) -> int:
        """One client write on the primary: ``op`` "i" (insert), "u" (replace by ``_id``) or "d" (delete
        by ``_id``), checked against unique indexes. Returns the entry's ``ts``."""
        check_namespace(ns)
        if op not in ("i", "u", "d") or "_id" not in doc:
            raise InvalidInput("op must be 'i', 'u' or 'd' and the document must have an _id", field="op")

        def run(ctx: Ctx, g: GroupRec, t: float) -> int:
            p = engine.writer(ctx, g, up_members(ctx, g, t))
            if p is None or p.lineage is None:
                raise _refuse(
                    f"replica set {g.set_name}: no writable primary", NOT_PRIMARY, "NotWritablePrimary"
                )
            key = id_key(doc["_id"])
            exists = ctx.data.get_doc(p.lineage, ns, key, p.applied_ts) is not None
            if op == "i" and exists:
                raise _refuse(
                    f"E11000 duplicate key error collection: {ns} index: _id_", 11000, "DuplicateKey"
                )
            if op in ("u", "d") and not exists:
                raise NotFound(f"no document with _id {doc['_id']!r} in {ns}")
            if op != "d":
                for spec in engine.effective_indexes(ctx, p).get(ns, []):
                    if spec.get("unique"):
                        self._check_unique(ctx, p, ns, spec, extra=doc)
            body = copy.deepcopy(doc)
            if op == "d":
                entry = engine.append_write(ctx, g, p, t, "d", ns, {"_id": body["_id"]}, None, (key, None))
            else:
                o2 = {"_id": body["_id"]} if op == "u" else None
                entry = engine.append_write(ctx, g, p, t, op, ns, body, o2, (key, body))
            engine.cap_oplog(ctx, p)
            return entry.ts

        return self._on_set(set_id, run)

    def _on_set(self, set_id: int, fn: Callable[[Ctx, GroupRec, float], T]) -> T:
        with self._ctx() as ctx:
            g = ctx.group(set_id)
            if g is None:
                raise NotFound(f"no simulated replica set with id {set_id}")
            t = self._advance(ctx, [g])
            result = fn(ctx, g, t)
            evaluate(ctx, g, g.t)
            return result

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
            return [self._view(ctx, g) for g in groups]

    def replica_set(self, set_id: int) -> ReplicaSetView:
        return self._on_set(set_id, lambda ctx, g, t: self._view(ctx, g))

    @staticmethod
    def _view(ctx: Ctx, g: GroupRec) -> ReplicaSetView:
        up = {n.addr: (m, n) for m, n in up_members(ctx, g, g.t)}
        primary = engine.primary_of(g, list(up.values()))
        members = []
        for m in g.config["members"]:
            found = up.get(m["host"])
            listening = ctx.listening(m["host"])
            process = listening.key if listening is not None else None
            if found is None:
                members.append(
                    MemberView(
                        m["host"],
                        process,
                        MemberState.DOWN,
                        False,
                        0,
                        None,
                        m["priority"],
                        m["votes"],
                        m["hidden"],
                        m["arbiterOnly"],
                    )
                )
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
                    engine.own_state(g, m, n),
                    ctx.client_reach(n),
                    n.applied_ts,
                    float(lag) if lag is not None and not m["arbiterOnly"] else None,
                    m["priority"],
                    m["votes"],
                    m["hidden"],
                    m["arbiterOnly"],
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
        )

    def processes(self, hostname: str | None = None) -> list[ProcessView]:
        with self._ctx() as ctx:
            hosts = [hostname] if hostname is not None else sorted(ctx.tx.keys(HostRec))
            nodes = [n for h in hosts for n in ctx.host_nodes(h)]
            t = self._advance(ctx, groups_of(ctx, nodes))
            out = []
            for n in nodes:
                g = ctx.group(n.gid)
                state = None
                if g is not None and n.listens_replset() and engine.due(t, n.ready_at) and n.cfg_version:
                    state = engine.own_state(g, rsconfig.member_for(g.config, n.addr), n)
                out.append(
                    ProcessView(
                        hostname=n.hostname,
                        name=n.name,
                        running=n.running,
                        mode=n.mode if n.running else None,
                        port=n.port if n.running else None,
                        version=n.version or None,
                        state=state,
                        set_id=n.gid,
                    )
                )
            return out

"""The state of the simulated world as records, its parameters, and the read-only views it hands out.

Records are plain dataclasses whose fields are JSON values, so that one code path serves the in-memory world
(records are live objects) and the SQLite world (records are loaded as JSON at the start of a transaction
and written back at commit). Each record kind has a ``KIND`` and a ``key``:

- ``Meta`` (one): the parameters, id counters and the injected faults;
- ``HostRec``: the process names on one host;
- ``NodeRec``: one process, with what it was started with and its data directory (``dbpath``) state:
  replica set binding, config version, term, oplog pointers, indexes, role;
- ``GroupRec``: one replica set (created by ``replSetInitiate``): config, term, primary, pending election,
  write load, client connections and statistics;
- ``EventsRec``: a replica set's recent events (elections, step-downs, crashes, rollbacks, ...);
- ``LineageRec``: one history of writes shared by the members that replicate it (see ``sim.data``);
- ``AddrRec``: which replica set lists ``host:port`` as a member;
- ``ClusterRec`` (``sim.shardmodel``): a sharded cluster; a ``GroupRec`` names the cluster it is part of.

May import ``opsmgr.errors`` and ``opsmgr.drivers.base`` (for ``MemberState``) only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from opsmgr.drivers.base import MemberState
from opsmgr.errors import InvalidInput

MB = 1024 * 1024

_NAMESPACE = re.compile(r"^[^.\s$/\\\"]+\.[^\s$]+$")


def check_namespace(ns: str) -> None:
    if not _NAMESPACE.match(ns):
        raise InvalidInput(f"{ns!r} is not a namespace of the form 'db.collection'", field="ns")


@dataclass(frozen=True)
class WriteLoad:
    """An application writing to a replica set's primary.

    ``rate`` writes per second (0 = off) spread over ``namespaces``; each write picks one of ``keys``
    ``_id`` values per namespace, inserting it when absent, otherwise updating it (full replacement) or,
    with probability ``delete_ratio``, deleting it. The key space bounds the data; ``payload_bytes`` sizes
    each document and therefore each oplog entry. ``clients`` is the number of client connections the
    application holds on the primary (dropped when the primary steps down or dies, re-established on the
    new one). The load respects unique indexes by construction only (``_id``, ``n`` and ``v`` are unique);
    client writes through ``SimWorld.write`` are checked against them.
    """

    rate: float = 0.0
    namespaces: tuple[str, ...] = ("app.orders",)
    keys: int = 1000
    payload_bytes: int = 64
    delete_ratio: float = 0.1
    clients: int = 10

    def __post_init__(self) -> None:
        if not self.rate >= 0:
            raise InvalidInput("rate must be >= 0 writes per second", field="rate")
        if not self.namespaces:
            raise InvalidInput("at least one namespace is required", field="namespaces")
        for ns in self.namespaces:
            check_namespace(ns)
        if self.keys < 1:
            raise InvalidInput("keys must be >= 1", field="keys")
        if not 0 <= self.payload_bytes <= 1_000_000:
            raise InvalidInput("payload_bytes must be between 0 and 1000000", field="payload_bytes")
        if not 0.0 <= self.delete_ratio <= 1.0:
            raise InvalidInput("delete_ratio must be between 0 and 1", field="delete_ratio")
        if self.clients < 0:
            raise InvalidInput("clients must be >= 0", field="clients")

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["namespaces"] = list(self.namespaces)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> WriteLoad:
        return cls(**{**raw, "namespaces": tuple(raw.get("namespaces", cls.namespaces))})


@dataclass(frozen=True)
class SimParams:
    """Constants of the world (MongoDB's own settings come from each replica set's config)."""

    seed: int = 0
    startup_s: float = 0.5  # from start until the process accepts connections
    apply_rate: float = 20_000.0  # oplog entries per second a secondary applies
    initial_sync_s: float = 2.0  # fixed part of an initial sync ...
    clone_docs_per_s: float = 50_000.0  # ... plus the documents to copy at this rate
    election_s: float = 0.2  # from standing for election to winning it (dry run + vote round trips)
    election_handoff: bool = True  # MongoDB's enableElectionHandoff (on by default since 4.0.2)
    default_oplog_mb: float = 990.0  # when args2_6 has no replication.oplogSizeMB
    default_write_load: WriteLoad | None = None  # given to every replica set at replSetInitiate
    max_events: int = 200  # events kept per replica set
    # MongoDB's periodicNoopIntervalSecs: an idle primary writes a no-op entry this often (0 = off, for tests
    # that need an oplog holding only the writes they made).
    noop_interval_s: float = 10.0
    # Sharded clusters (sim.balancer): a chunk migration's fixed part (plus its documents at
    # clone_docs_per_s), the balancer's retry interval, and the chunks a collection is split into.
    migration_s: float = 0.5
    balancer_round_s: float = 10.0
    initial_chunks: int = 16

    def __post_init__(self) -> None:
        if not self.noop_interval_s >= 0:
            raise InvalidInput("noop_interval_s must be >= 0 seconds (0 = off)", field="noop_interval_s")
        if not (self.migration_s >= 0 and self.balancer_round_s > 0 and self.initial_chunks >= 1):
            raise InvalidInput(
                "migration_s must be >= 0, balancer_round_s > 0 and initial_chunks >= 1", field="params"
            )

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["default_write_load"] = self.default_write_load.to_json() if self.default_write_load else None
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SimParams:
        load = raw.get("default_write_load")
        return cls(**{**raw, "default_write_load": WriteLoad.from_json(load) if load else None})


R = TypeVar("R", bound="Record")


class Record:
    KIND: ClassVar[str]

    @property
    def key(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The fields as they are (JSON values already): serialised at once, so no copy is needed."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[R], raw: dict[str, Any]) -> R:
        return cls(**raw)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)


@dataclass
class Meta(Record):
    KIND: ClassVar[str] = "meta"
    params: dict[str, Any]
    next_gid: int = 1
    next_lid: int = 1
    next_pid: int = 4000
    next_req: int = 1
    cut_hosts: list[str] = field(default_factory=list)
    stalled: dict[str, float] = field(default_factory=dict)  # node key -> apply rate (0: stalled)
    fail_start: list[str] = field(default_factory=list)  # node keys

    @property
    def key(self) -> str:
        return "meta"


@dataclass
class HostRec(Record):
    KIND: ClassVar[str] = "host"
    hostname: str
    names: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.hostname


@dataclass
class AddrRec(Record):
    KIND: ClassVar[str] = "addr"
    addr: str
    gid: int

    @property
    def key(self) -> str:
        return self.addr


class Role:
    """What a replSet-mode member is doing with its data; ``MemberState`` adds STARTUP/ARBITER/REMOVED."""

    PRIMARY = "primary"
    SECONDARY = "secondary"
    STARTUP2 = "startup2"  # initial sync
    RECOVERING = "recovering"  # too stale to catch up: needs a resync


ROLE_STATE = {
    Role.PRIMARY: MemberState.PRIMARY,
    Role.SECONDARY: MemberState.SECONDARY,
    Role.STARTUP2: MemberState.STARTUP2,
    Role.RECOVERING: MemberState.RECOVERING,
}


def node_key(hostname: str, name: str) -> str:
    return f"{hostname}/{name}"


@dataclass
class NodeRec(Record):
    KIND: ClassVar[str] = "node"
    hostname: str
    name: str
    cap_bytes: int
    # As started (kept after a stop so that observe() can say what last ran).
    running: bool = False
    process_type: str = "mongod"  # or "mongos": a router, no data, in no replica set
    port: int = 0
    mode: str = ""  # RunMode value
    version: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    repl_set_name: str | None = None
    dbpath: str = ""
    pid: int = 0
    started_at: float = 0.0
    ready_at: float = 0.0
    # The data directory: survives restarts, in any mode.
    gid: int | None = None
    cfg_version: int = 0
    term: int = 0
    lineage: int | None = None
    applied_ts: int = 0
    applied_cum: int = 0
    trunc_ts: int = 0  # the oplog holds the lineage's entries with trunc_ts < ts <= applied_ts
    trunc_cum: int = 0
    indexes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Replication state of a running member.
    role: str = Role.SECONDARY
    sync_end: float | None = None
    sync_source: str | None = None
    apply_credit: float = 0.0
    no_primary_since: float | None = None
    minority_since: float | None = None
    takeover_since: float | None = None
    stepdown_until: float = 0.0
    frozen_until: float = 0.0
    stepdown: dict[str, Any] | None = None  # pending: {req, deadline, until, shutdown}
    results: dict[str, str] = field(default_factory=dict)  # req -> "ok" or the error
    fsync_locks: int = 0
    # serverStatus().opcounters: the client writes this node took as primary, by op ("i", "u", "d").
    opcounters: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return node_key(self.hostname, self.name)

    @property
    def addr(self) -> str:
        return f"{self.hostname}:{self.port}"

    def listens_replset(self) -> bool:
        return self.running and self.mode == "replset"


@dataclass
class GroupRec(Record):
    KIND: ClassVar[str] = "group"
    gid: int
    set_name: str
    config: dict[str, Any]
    t: float
    load: dict[str, Any]
    term: int = 0
    bound: list[str] = field(default_factory=list)  # node keys whose data belongs to this set
    primary: str | None = None  # node key of the primary of the newest term
    election: dict[str, Any] | None = None  # {candidate, at, reason}
    load_credit: float = 0.0
    load_n: int = 0
    connected: int = 0
    dropped: int = 0
    elections: int = 0
    writes: int = 0
    rolled_back: int = 0
    ever_primary: bool = False
    outage_since: float | None = None
    outage_total: float = 0.0
    cluster: str | None = None  # the sharded cluster it is the config servers or a shard of (sim.shardmodel)

    @property
    def key(self) -> str:
        return str(self.gid)


@dataclass
class EventsRec(Record):
    """A replica set's recent events, apart from its state so that a call only loads them to add one."""

    KIND: ClassVar[str] = "events"
    gid: int
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.gid)


@dataclass
class LineageRec(Record):
    KIND: ClassVar[str] = "lineage"
    lid: int
    last_ts: int = 0
    last_cum: int = 0
    refs: dict[str, list[int]] = field(default_factory=dict)  # node key -> [trunc_ts, applied_ts]
    index_ops: list[dict[str, Any]] = field(default_factory=list)  # {ts, ns, spec}

    @property
    def key(self) -> str:
        return str(self.lid)


# ---------------------------------------------------------------------------------------------------------
# Views handed out by the inspection API


@dataclass(frozen=True)
class MemberView:
    host: str
    process: str | None  # "hostname/name" of the process listening there, if any
    state: MemberState
    health: bool
    optime_ts: int
    lag_s: float | None  # behind the primary, seconds; None without a primary or when down
    priority: float
    votes: int
    hidden: bool
    arbiter: bool


@dataclass(frozen=True)
class ReplicaSetView:
    id: int
    name: str
    term: int
    config_version: int
    primary: str | None  # host:port
    members: tuple[MemberView, ...]
    elections: int
    no_primary_s: float  # total time without a writable primary since the first one
    connections: int
    connections_dropped: int
    writes: int
    rolled_back_ops: int
    write_load: WriteLoad
    events: tuple[dict[str, Any], ...]
    cluster: str | None = None  # the sharded cluster it is the config servers or a shard of


@dataclass(frozen=True)
class ProcessView:
    hostname: str
    name: str
    running: bool
    mode: str | None
    port: int | None
    version: str | None
    state: MemberState | None  # own view; None when stopped, standalone or without a config
    set_id: int | None
    process_type: str = "mongod"  # or "mongos"

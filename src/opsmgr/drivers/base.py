"""The narrow interface through which the agent touches MongoDB processes on its host.

Owns the types that cross the seam (process specs, observations, replica set status, oplog windows), the
errors every driver raises (:class:`DriverError` and its subclasses) and the :class:`Driver` protocol, which
includes the sharding commands of :class:`ShardingDriver` (sent to a local ``mongos``). Two
implementations: ``drivers.mongod`` (real ``mongod`` processes administered through pymongo) and
``drivers.sim`` (processes of the simulated world in ``opsmgr.sim``). Everything above this seam (the agent,
maintenance, backup) is the same code for both. May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from opsmgr.errors import Conflict, InvalidInput, OpsmgrError


class DriverError(OpsmgrError):
    """A process could not be started, stopped or administered; ``code``/``code_name`` are MongoDB's.

    Shared by every driver so that the agent can catch one family whatever it drives. The two subclasses
    below that also derive from ``Conflict``/``InvalidInput`` say whether the refusal is about the current
    state (not primary, already initiated, ...) or about a malformed request (a bad replica set config).
    """

    http_status = 503
    error_code = "DRIVER_ERROR"

    def __init__(self, detail: str, *, code: int | None = None, code_name: str | None = None) -> None:
        params: dict[str, Any] = {}
        if code is not None:
            params["code"] = code
        if code_name:
            params["codeName"] = code_name
        super().__init__(detail, **params)
        self.code = code
        self.code_name = code_name


class ProcessUnreachable(DriverError):
    """No answer from the process: it is not running, not listening yet, or not reachable."""

    error_code = "PROCESS_UNREACHABLE"


class CommandConflict(DriverError, Conflict):
    """The process refused the command in its current state (not primary, already initiated, ...)."""

    http_status = 409
    error_code = "COMMAND_CONFLICT"


class CommandInvalid(DriverError, InvalidInput):
    """The process rejected the command as malformed (a bad replica set config, bad index options, ...)."""

    http_status = 400
    error_code = "COMMAND_INVALID"


class MemberState(StrEnum):
    """Replica set member states, as ``replSetGetStatus`` names them (``stateStr``)."""

    STARTUP = "STARTUP"
    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"
    RECOVERING = "RECOVERING"
    STARTUP2 = "STARTUP2"
    UNKNOWN = "UNKNOWN"
    ARBITER = "ARBITER"
    DOWN = "DOWN"
    ROLLBACK = "ROLLBACK"
    REMOVED = "REMOVED"


class RunMode(StrEnum):
    REPLSET = "replset"
    STANDALONE = "standalone"


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one process: its automation-config name, where it listens, and its options.

    ``repl_set_name`` is None to start it standalone (maintenance), in which case ``port`` is usually a
    maintenance port different from the configured one, so that clients and members cannot reach it.
    ``args`` is the process's ``args2_6`` document (``net.port``, ``storage.dbPath``, ``replication``...).
    """

    name: str
    hostname: str
    port: int
    version: str
    args: dict[str, Any]
    repl_set_name: str | None
    dbpath: str
    log_path: str | None = None
    # "mongos" runs a router: no dbpath, no replica set; ``args["sharding"]["configDB"]`` names the config
    # server replica set as ``"<rs>/<host:port>,..."``.
    process_type: str = "mongod"


@dataclass(frozen=True)
class ProcessObservation:
    """What the driver sees of one process right now."""

    name: str
    running: bool
    mode: RunMode | None = None
    port: int | None = None
    version: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    uptime_s: float | None = None
    # "mongos" for a router (which runs in ``RunMode.STANDALONE``: it is in no replica set).
    process_type: str = "mongod"


@dataclass(frozen=True)
class MemberStatus:
    """One entry of ``replSetGetStatus().members`` as seen from the asked process."""

    host: str  # "hostname:port"
    state: MemberState
    health: bool
    optime_ts: int  # seconds*2**32 + increment, like a BSON Timestamp; 0 when unknown
    self: bool = False
    config_version: int | None = None
    sync_source: str | None = None


@dataclass(frozen=True)
class RsStatus:
    set_name: str
    my_state: MemberState
    term: int
    members: tuple[MemberStatus, ...]
    config_version: int

    def primary(self) -> MemberStatus | None:
        return next((m for m in self.members if m.state is MemberState.PRIMARY), None)


@dataclass(frozen=True)
class ShardInfo:
    """One document of ``listShards`` (``config.shards``): ``host`` is ``"<rs>/<host:port>,..."``."""

    id: str
    host: str
    draining: bool = False


class RemoveShardState(StrEnum):
    """``removeShard``'s ``state``: each call reports where the draining is."""

    STARTED = "started"
    ONGOING = "ongoing"
    COMPLETED = "completed"


@dataclass(frozen=True)
class RemoveShardProgress:
    state: RemoveShardState
    remaining_chunks: int
    dbs_to_move: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShardedCollection:
    """One document of ``config.collections`` that is sharded: the namespace, its key and uniqueness."""

    ns: str
    key: dict[str, Any]
    unique: bool = False


@dataclass(frozen=True)
class BalancerState:
    """``balancerStatus``: ``mode`` is ``"full"`` or ``"off"``; ``in_round`` while a migration runs."""

    mode: str
    in_round: bool


@dataclass(frozen=True)
class OplogWindow:
    """The oplog as ``rs.printReplicationInfo()`` reports it."""

    size_mb: float
    used_mb: float
    first_ts: int
    last_ts: int
    window_hours: float


@dataclass(frozen=True)
class OplogRecord:
    """One oplog entry of a MongoDB source (``ts`` as seconds<<32 | inc), in MongoDB's field names."""

    ts: int
    op: str  # "i", "u", "d", "c", "n"
    ns: str
    o: dict[str, Any]
    o2: dict[str, Any] | None = None
    wall_ms: int = 0


MAX_DATABASES = 100  # a process's databases sampled per cycle (dbStats each): the first, by name


@dataclass(frozen=True)
class StorageSample:
    """A process's storage as Ops Manager measures it: per disk partition of its data (``partitions``, by
    partition name: ``DISK_PARTITION_SPACE_*``) and per database (``databases``, by name, at most
    :data:`MAX_DATABASES`: ``DATABASE_*`` from ``dbStats``)."""

    partitions: dict[str, dict[str, float]] = field(default_factory=dict)
    databases: dict[str, dict[str, float]] = field(default_factory=dict)


class ShardingDriver(Protocol):
    """The sharding commands. Every one is sent to the local ``mongos`` process ``name`` (as MongoDB
    requires), which routes it to the config server replica set."""

    def list_shards(self, name: str) -> list[ShardInfo]: ...

    def add_shard(self, name: str, shard_id: str, connection: str) -> None:
        """``addShard`` of replica set ``connection`` (``"<rs>/<host:port>,..."``) named ``shard_id``; a
        no-op when that shard is already there with the same replica set."""
        ...

    def remove_shard(self, name: str, shard_id: str) -> RemoveShardProgress:
        """``removeShard``: the first call starts draining, later calls report progress, the call that
        finds the shard drained completes the removal."""
        ...

    def sharded_collections(self, name: str) -> list[ShardedCollection]: ...

    def shard_collection(self, name: str, ns: str, key: dict[str, Any], *, unique: bool = False) -> None:
        """``shardCollection`` (and ``enableSharding`` of its database); a no-op when already sharded with
        the same key, ``CommandConflict`` with another."""
        ...

    def balancer_status(self, name: str) -> BalancerState: ...

    def set_balancer(self, name: str, *, running: bool) -> None:
        """``balancerStart`` / ``balancerStop`` (which waits for the migration in progress to finish)."""
        ...


class Driver(ShardingDriver, Protocol):
    """Everything the agent may do to the MongoDB processes of its host (the sharding commands included,
    which a driver sends to a local ``mongos``)."""

    def observe(self, name: str) -> ProcessObservation: ...

    def start(self, spec: ProcessSpec) -> None: ...

    def stop(self, name: str, *, force: bool = False) -> None: ...

    def rs_status(self, name: str) -> RsStatus | None:
        """None when the process is not running in replSet mode or has no replica set config yet."""
        ...

    def rs_config(self, name: str) -> dict[str, Any] | None: ...

    def initiate(self, name: str, config: dict[str, Any]) -> None: ...

    def reconfig(self, name: str, config: dict[str, Any], *, force: bool = False) -> None: ...

    def step_down(self, name: str, *, step_down_secs: int = 60, catch_up_secs: int = 10) -> None: ...

    def freeze(self, name: str, secs: int) -> None: ...

    def set_parameter(self, name: str, parameters: dict[str, Any]) -> None:
        """``setParameter`` on the running process; its observed ``args`` show the new values under
        ``setParameter`` (so a runtime change needs no restart to reach goal)."""
        ...

    def rename_replica_set(self, name: str, new_name: str) -> None:
        """Rename the replica set in the data of a process running standalone (MongoDB keeps the set's
        name in ``local.system.replset``); it rejoins under ``new_name`` when restarted with it."""
        ...

    def fsync_lock(self, name: str) -> None: ...

    def fsync_unlock(self, name: str) -> None: ...

    def create_index(
        self, name: str, ns: str, keys: list[tuple[str, int]], options: dict[str, Any]
    ) -> None: ...

    def list_indexes(self, name: str, ns: str) -> list[dict[str, Any]]: ...

    def drop_index(self, name: str, ns: str, index_name: str) -> None:
        """``dropIndexes`` of one index by name; a no-op when the process has no such index or collection."""
        ...

    def connections(self, name: str) -> int:
        """Current client connections (``serverStatus().connections.current``)."""
        ...

    def server_sample(self, name: str) -> dict[str, float]:
        """The Ops Manager host measurements ``serverStatus`` gives (``OPCOUNTER_*`` and
        ``EXTRA_INFO_PAGE_FAULTS`` cumulative since the process started, ``MEMORY_*`` in MB,
        ``TICKETS_*``), and the disk of its data directory ``dbStats`` gives (``DISK_PARTITION_SPACE_USED``
        and ``_FREE``, bytes)."""
        ...

    def storage_sample(self, name: str) -> StorageSample:
        """The partition of the process's data directory and its databases' ``dbStats`` (see
        :class:`StorageSample`); what the process cannot answer is left out."""
        ...

    def oplog_window(self, name: str) -> OplogWindow | None: ...

    def oplog_read(self, name: str, after_ts: int, limit: int = 1000) -> list[OplogRecord]:
        """Entries with ``ts > after_ts``; raises ``opsmgr.errors.OplogGap`` when ``after_ts`` fell off."""
        ...

    def dump(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        """Every user document as ``(namespace, document)``, for an initial sync; a config server's cluster
        metadata (``config.shards``, ``config.chunks``, ...) included: restoring it restores the map."""
        ...

    def load(self, name: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        """Replace the process's user data with ``docs`` (the process is stopped or standalone), and a
        config server's cluster metadata when ``docs`` carry some."""
        ...

"""The ``mongod`` driver's administrative commands: the Driver protocol's questions and changes to a running
process (``replSetGetStatus``, ``replSetInitiate``, ``replSetReconfig``, ``replSetStepDown``,
``replSetFreeze``, ``setParameter``, ``fsync``/``fsyncUnlock``, ``createIndexes``, the oplog, dump and load
of the user data and of a config server's cluster metadata),
sent as MongoDB documents them through the pymongo client of the process, and pymongo's errors turned into
the ``drivers.base`` error family: ``ProcessUnreachable`` when mongod does not answer, ``CommandConflict``
when it refuses in its current state, ``CommandInvalid`` when it rejects the request, ``DriverError``
otherwise, each with the server's code and message.

Which processes there are, their clients and their lifecycle are ``drivers.mongod``'s (:class:`MongodDriver`
supplies :meth:`MongodAdmin._require`, ``_client`` and ``_save``). May import ``opsmgr.errors``,
``opsmgr.drivers.base``, ``opsmgr.drivers.mongod_commands``, pymongo/bson and the standard library.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, NotPrimaryError, OperationFailure, PyMongoError

from opsmgr.drivers.base import (
    MAX_DATABASES,
    CommandConflict,
    CommandInvalid,
    DriverError,
    MemberState,
    OplogRecord,
    OplogWindow,
    ProcessUnreachable,
    RsStatus,
    StorageSample,
)
from opsmgr.drivers.mongod_commands import (
    Doc,
    database_names,
    database_sample,
    db_stats_sample,
    disk_space_sample,
    index_name,
    int_to_ts,
    oplog_record,
    oplog_window,
    parse_rs_status,
    partition_name,
    plain,
    server_status_sample,
    split_namespace,
    ts_to_int,
)
from opsmgr.errors import OplogGap

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEM_DATABASES = frozenset({"admin", "local", "config"})
# A config server's cluster metadata (the chunk map, in ``config``): dumped and loaded with the user data, so
# that restoring the config servers restores the map, as the sim's do. Elsewhere these collections are absent.
CLUSTER_METADATA = frozenset({"shards", "databases", "collections", "chunks", "settings", "version", "tags"})

# Server error codes (src/mongo/base/error_codes.yml) that mean "not now, in this state".
_CONFLICT_CODES = frozenset(
    {
        11000,  # DuplicateKey: a unique index cannot be built over the existing documents
        10107,  # NotWritablePrimary
        13435,  # NotPrimaryNoSecondaryOk
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit: no electable secondary caught up in time (step down, shutdown)
        23,  # AlreadyInitialized
        85,  # IndexOptionsConflict
        86,  # IndexKeySpecsConflict
        95,  # NotSecondary: freeze asked of a primary
        103,  # NewReplicaSetConfigurationIncompatible
        109,  # ConfigurationInProgress
        91,  # ShutdownInProgress
    }
)
# ...and those that mean "this request is wrong".
_INVALID_CODES = frozenset(
    {
        2,  # BadValue
        9,  # FailedToParse
        14,  # TypeMismatch
        67,  # CannotCreateIndex
        72,  # InvalidOptions
        73,  # InvalidNamespace
        93,  # InvalidReplicaSetConfig
        40415,  # unknown field in an IDL-parsed command
    }
)
_NAMESPACE_NOT_FOUND = 26
_INDEX_NOT_FOUND = 27
_NO_REPLICATION_ENABLED = 76
_NOT_YET_INITIALIZED = 94
_INVALID_REPLICA_SET_CONFIG = 93


@dataclass
class ProcessRecord:
    """What the driver knows of one process. ``pid`` is None for an attached process it did not start."""

    name: str
    host: str
    port: int
    mode: str
    repl_set_name: str | None
    tls: bool
    args: Doc
    pid: int | None = None
    conf: str | None = None
    started_at: float | None = None
    version: str | None = None
    log: str | None = None
    process_type: str = "mongod"  # or "mongos"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def data_partition(args: Mapping[str, object]) -> dict[str, dict[str, float]]:
    """The partition of the data directory (``storage.dbPath``) of a process on this host, read from the
    filesystem (``shutil.disk_usage``); none when the directory is unknown or unreadable."""
    storage = args.get("storage")
    dbpath = storage.get("dbPath") if isinstance(storage, Mapping) else None
    if not isinstance(dbpath, str) or not dbpath:
        return {}
    try:
        path = os.path.realpath(dbpath)
        usage = shutil.disk_usage(path)
        mounts = Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else ""
    except OSError as exc:
        log.debug("no disk figures for %s: %s", dbpath, exc)
        return {}
    return {partition_name(path, mounts): disk_space_sample(usage.total, usage.free)}


class MongodAdmin(ABC):
    """The administrative commands of the Driver protocol, on the processes a subclass knows."""

    hostname: str
    _lock: threading.RLock

    @abstractmethod
    def _require(self, name: str) -> ProcessRecord:
        """The record of ``name``; ProcessUnreachable when there is none."""

    @abstractmethod
    def _client(self, proc: ProcessRecord) -> MongoClient[Doc]:
        """The pymongo client of ``proc``."""

    @abstractmethod
    def _save(self, proc: ProcessRecord) -> None:
        """Keep ``proc``'s record (for a process this driver started)."""

    @contextmanager
    def _errors(self, proc: ProcessRecord, what: str) -> Iterator[None]:
        where = f"{proc.name} ({proc.address})"
        try:
            yield
        except OperationFailure as exc:
            details = exc.details or {}
            detail = f"{where}: {what} failed: {details.get('errmsg') or exc}"
            code_name = details.get("codeName")
            cls = (
                CommandConflict
                if exc.code in _CONFLICT_CODES
                else CommandInvalid
                if exc.code in _INVALID_CODES
                else DriverError
            )
            raise cls(detail, code=exc.code, code_name=code_name) from exc
        except NotPrimaryError as exc:  # pymongo raises this, a ConnectionFailure, for "not primary" replies
            details = exc.details if isinstance(exc.details, Mapping) else {}
            raise CommandConflict(
                f"{where}: {what} failed: {details.get('errmsg', exc)}",
                code=details.get("code"),
                code_name=details.get("codeName"),
            ) from exc
        except ConnectionFailure as exc:
            raise ProcessUnreachable(f"{where}: {what} failed: mongod did not answer: {exc}") from exc
        except PyMongoError as exc:
            raise DriverError(f"{where}: {what} failed: {exc}") from exc

    def _run(self, proc: ProcessRecord, what: str, action: Callable[[MongoClient[Doc]], T]) -> T:
        with self._errors(proc, what):
            return action(self._client(proc))

    def _command(self, name: str, command: Doc, *, db: str = "admin") -> Doc:
        proc = self._require(name)
        what = next(iter(command))
        return self._run(proc, what, lambda c: c[db].command(command))

    def rs_status(self, name: str) -> RsStatus | None:
        try:
            return parse_rs_status(self._command(name, {"replSetGetStatus": 1}))
        except DriverError as exc:
            if exc.code in (_NOT_YET_INITIALIZED, _NO_REPLICATION_ENABLED):
                return None
            if exc.code == _INVALID_REPLICA_SET_CONFIG:  # this member is not in the set's config any more
                set_name = self._require(name).repl_set_name or ""
                return RsStatus(
                    set_name=set_name, my_state=MemberState.REMOVED, term=0, members=(), config_version=0
                )
            raise

    def rs_config(self, name: str) -> Doc | None:
        try:
            config: Doc = self._command(name, {"replSetGetConfig": 1})["config"]
        except DriverError as exc:
            if exc.code in (_NOT_YET_INITIALIZED, _NO_REPLICATION_ENABLED):
                return None
            raise
        return config

    def initiate(self, name: str, config: Doc) -> None:
        """``replSetInitiate`` with ``config`` (members' ``host`` as host:port). A set already initiated with
        the same ``_id`` is left as it is, so a plan resumed after a restart can repeat this move."""
        try:
            self._command(name, {"replSetInitiate": config})
        except CommandConflict as exc:
            current = self.rs_config(name) if exc.code == 23 else None
            if current is None or current.get("_id") != config.get("_id"):
                raise

    def reconfig(self, name: str, config: Doc, *, force: bool = False) -> None:
        """``replSetReconfig`` of ``config`` laid over the current config, with the version one past the
        current one, as ``cfg = rs.conf(); ...; rs.reconfig(cfg)`` does.

        Laying it over keeps what the caller does not manage (``protocolVersion``, ``settings.replicaSetId``,
        which a reconfig must not change). ``term`` is left out because the server sets it; with ``force``
        the server also bumps the version by a large random amount itself.
        """
        current = self.rs_config(name)
        if current is None:
            raise CommandConflict(f"{name}: cannot reconfigure: the replica set is not initiated")
        new = {**current, **config}
        if "settings" in current or "settings" in config:
            new["settings"] = {**current.get("settings", {}), **config.get("settings", {})}
        new.pop("term", None)
        new["version"] = int(current.get("version", 0)) + 1
        self._command(name, {"replSetReconfig": new, "force": force})

    def step_down(self, name: str, *, step_down_secs: int = 60, catch_up_secs: int = 10) -> None:
        try:
            self._command(
                name, {"replSetStepDown": step_down_secs, "secondaryCatchUpPeriodSecs": catch_up_secs}
            )
        except ProcessUnreachable:
            # Before 4.2 a primary closes every connection when it steps down, so no answer is success.
            log.info("%s closed the connection on replSetStepDown", name)

    def freeze(self, name: str, secs: int) -> None:
        self._command(name, {"replSetFreeze": secs})

    def set_parameter(self, name: str, parameters: Doc) -> None:
        self._command(name, {"setParameter": 1, **parameters})
        with self._lock:
            proc = self._require(name)
            current = dict(proc.args.get("setParameter") or {})
            proc.args = {**proc.args, "setParameter": {**current, **parameters}}
            if proc.pid is not None:
                self._save(proc)

    def rename_replica_set(self, name: str, new_name: str) -> None:
        def rename(client: MongoClient[Doc]) -> None:
            replset = client.local["system.replset"]
            config = replset.find_one({})
            if config is None:
                raise CommandConflict(f"{name}: no replica set config in local.system.replset to rename")
            if config["_id"] != new_name:
                replset.delete_one({"_id": config["_id"]})
                replset.insert_one({**config, "_id": new_name})

        self._run(self._require(name), "rename the replica set", rename)

    def fsync_lock(self, name: str) -> None:
        self._command(name, {"fsync": 1, "lock": True})

    def fsync_unlock(self, name: str) -> None:
        self._command(name, {"fsyncUnlock": 1})

    # -- Driver: indexes, connections ---------------------------------------------------------------------

    def create_index(self, name: str, ns: str, keys: list[tuple[str, int]], options: Doc) -> None:
        db, coll = split_namespace(ns)
        spec: Doc = {"key": dict(keys), "name": options.get("name") or index_name(list(keys))}
        spec.update((k, v) for k, v in options.items() if k != "name")
        self._command(name, {"createIndexes": coll, "indexes": [spec]}, db=db)

    def list_indexes(self, name: str, ns: str) -> list[Doc]:
        db, coll = split_namespace(ns)
        proc = self._require(name)
        return self._run(proc, "listIndexes", lambda c: [plain(ix) for ix in c[db][coll].list_indexes()])

    def drop_index(self, name: str, ns: str, index_name: str) -> None:
        db, coll = split_namespace(ns)
        try:
            self._command(name, {"dropIndexes": coll, "index": index_name}, db=db)
        except DriverError as exc:
            if exc.code not in (_NAMESPACE_NOT_FOUND, _INDEX_NOT_FOUND):
                raise

    def connections(self, name: str) -> int:
        return int(self._command(name, {"serverStatus": 1})["connections"]["current"])

    def server_sample(self, name: str) -> dict[str, float]:
        sample = server_status_sample(self._command(name, {"serverStatus": 1}))
        try:
            sample.update(db_stats_sample(self._command(name, {"dbStats": 1})))
        except DriverError as exc:  # a user without dbStats on admin still has serverStatus's figures
            log.debug("%s: no disk figures: %s", name, exc)
        return sample

    def storage_sample(self, name: str) -> StorageSample:
        proc = self._require(name)
        listed = self._command(name, {"listDatabases": 1, "nameOnly": True})
        databases = {}
        for db in database_names(listed, MAX_DATABASES):
            try:
                databases[db] = database_sample(self._command(name, {"dbStats": 1}, db=db))
            except DriverError as exc:  # dropped since it was listed, or not ours to read
                log.debug("%s: no dbStats of %s: %s", name, db, exc)
        return StorageSample(partitions=data_partition(proc.args), databases=databases)

    # -- Driver: oplog ------------------------------------------------------------------------------------

    def _oplog_edge(self, proc: ProcessRecord, direction: int) -> Doc | None:
        return self._run(
            proc,
            "find local.oplog.rs",
            lambda c: c.local["oplog.rs"].find_one({}, sort=[("$natural", direction)]),
        )

    def oplog_window(self, name: str) -> OplogWindow | None:
        """None for a process without an oplog (standalone, not initiated) or with an empty one."""
        proc = self._require(name)
        try:
            stats = self._run(
                proc,
                "$collStats local.oplog.rs",
                lambda c: list(c.local["oplog.rs"].aggregate([{"$collStats": {"storageStats": {}}}])),
            )
        except DriverError as exc:
            if exc.code == _NAMESPACE_NOT_FOUND:
                return None
            raise
        first, last = self._oplog_edge(proc, 1), self._oplog_edge(proc, -1)
        if not stats or first is None or last is None:
            return None
        return oplog_window(stats[0].get("storageStats", {}), first, last)

    def oplog_read(self, name: str, after_ts: int, limit: int = 1000) -> list[OplogRecord]:
        """Entries with ``ts > after_ts``, oldest first, of every namespace (filtering is the reader's)."""
        proc = self._require(name)
        entries = self._run(
            proc,
            "find local.oplog.rs",
            lambda c: list(
                c.local["oplog.rs"].find(
                    {"ts": {"$gt": int_to_ts(after_ts)}}, sort=[("$natural", 1)], limit=limit
                )
            ),
        )
        # Checked after the read: truncation only moves the first entry forward, so if it is still at or
        # before after_ts now, nothing after after_ts was lost before or during the read.
        first = self._oplog_edge(proc, 1)
        if first is None:
            raise CommandConflict(
                f"{name}: has no oplog to read (not a replica set member, or not initiated)"
            )
        first_ts = ts_to_int(first["ts"])
        if first_ts > after_ts:
            raise OplogGap(after_ts, first_ts)
        return [oplog_record(e) for e in entries]

    # -- Driver: data -------------------------------------------------------------------------------------

    def _user_databases(self, client: MongoClient[Doc]) -> list[str]:
        return [db for db in client.list_database_names() if db not in SYSTEM_DATABASES]

    def dump(self, name: str) -> list[tuple[str, Doc]]:
        proc = self._require(name)

        def read(client: MongoClient[Doc]) -> list[tuple[str, Doc]]:
            out: list[tuple[str, Doc]] = []
            names = client.list_database_names()
            for db_name in [*(db for db in names if db not in SYSTEM_DATABASES), *({"config"} & set(names))]:
                db = client[db_name]
                for coll in sorted(db.list_collection_names(filter={"type": "collection"})):
                    if coll in CLUSTER_METADATA if db_name == "config" else not coll.startswith("system."):
                        out.extend((f"{db_name}.{coll}", doc) for doc in db[coll].find())
            return out

        return self._run(proc, "dump", read)

    def load(self, name: str, docs: list[tuple[str, Doc]]) -> None:
        proc = self._require(name)
        by_ns: dict[str, list[Doc]] = {}
        for ns, doc in docs:
            split_namespace(ns)
            by_ns.setdefault(ns, []).append(doc)

        def write(client: MongoClient[Doc]) -> None:
            for db_name in self._user_databases(client):
                client.drop_database(db_name)
            if any(ns.startswith("config.") for ns in by_ns):  # a config server's: its metadata is replaced
                for coll in sorted(CLUSTER_METADATA):
                    client.config[coll].delete_many({})
            for ns, batch in by_ns.items():
                db, coll = split_namespace(ns)
                for i in range(0, len(batch), 1000):
                    client[db][coll].insert_many(batch[i : i + 1000], ordered=True)

        self._run(proc, "load", write)

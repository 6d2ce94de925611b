"""The ``mongod`` driver: real ``mongod`` processes on this host, administered through pymongo.

Owns two things; the config files it writes and the replies it reads are ``drivers.mongod_commands``'.
(1) Supervising the processes it starts without ``--fork``: each is a child in its own session, recorded in
``state_dir`` (pid, port, mode, args) so that an agent that restarts finds its processes again instead of
starting duplicates; stopping is the ``shutdown`` command, then SIGTERM, then SIGKILL, each after a deadline.
(2) The administrative commands of the Driver protocol, sent as MongoDB documents them (``replSetInitiate``,
``replSetReconfig``, ``replSetGetStatus``, ``replSetStepDown``, ``replSetFreeze``, ``fsync``/``fsyncUnlock``,
``createIndexes``, ...) through a direct pymongo connection with short timeouts. A process started elsewhere
can be administered too: ``attach(name, port)``.

pymongo errors become the ``drivers.base`` error family: ``ProcessUnreachable`` when mongod does not
answer, ``CommandConflict`` when it refuses in its current state, ``CommandInvalid`` when it rejects the
request, ``DriverError`` otherwise, each with the server's code and message.

May import ``opsmgr.errors``, ``opsmgr.drivers.base``, ``opsmgr.drivers.mongod_commands``, pymongo/bson and
the standard library.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, NotPrimaryError, OperationFailure, PyMongoError

from opsmgr.drivers.base import (
    CommandConflict,
    CommandInvalid,
    DriverError,
    MemberState,
    OplogRecord,
    OplogWindow,
    ProcessObservation,
    ProcessSpec,
    ProcessUnreachable,
    RsStatus,
    RunMode,
)
from opsmgr.drivers.mongod_commands import (
    Doc,
    admin_host,
    index_name,
    int_to_ts,
    mongod_options,
    oplog_record,
    oplog_window,
    parse_rs_status,
    plain,
    render_config,
    requires_tls,
    split_namespace,
    ts_to_int,
)
from opsmgr.errors import OplogGap

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEM_DATABASES = frozenset({"admin", "local", "config"})

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

# ---------------------------------------------------------------------------------------------------------
# Supervision


@dataclass
class _Process:
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

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Credentials:
    """The user the agent authenticates as when the process has authorization on."""

    username: str
    password: str
    source: str = "admin"
    mechanism: str = "SCRAM-SHA-256"


class MongodDriver:
    """The Driver protocol for real ``mongod`` processes on this host.

    ``binary`` may contain ``{version}``, filled from each ``ProcessSpec.version``, so a host can keep one
    install per MongoDB version (``/opt/mongodb/{version}/bin/mongod``). ``state_dir`` keeps one record and
    one generated config file per process.
    """

    def __init__(
        self,
        binary: str,
        hostname: str,
        state_dir: Path,
        *,
        credentials: Credentials | None = None,
        tls_ca_file: str | None = None,
        tls_certificate_key_file: str | None = None,
        connect_timeout_s: float = 2.0,
        command_timeout_s: float = 300.0,
        start_deadline_s: float = 120.0,
        stop_deadline_s: float = 60.0,
        kill_grace_s: float = 10.0,
        shutdown_timeout_secs: int = 10,
        poll_interval_s: float = 0.1,
    ) -> None:
        self.binary = binary
        self.hostname = hostname
        self.state_dir = Path(state_dir)
        self._records_dir = self.state_dir / "mongod"
        self._credentials = credentials
        self._tls_ca_file = tls_ca_file
        self._tls_certificate_key_file = tls_certificate_key_file
        self._connect_timeout_ms = int(connect_timeout_s * 1000)
        self._command_timeout_ms = int(command_timeout_s * 1000)
        self._start_deadline_s = start_deadline_s
        self._stop_deadline_s = stop_deadline_s
        self._kill_grace_s = kill_grace_s
        self._shutdown_timeout_secs = shutdown_timeout_secs
        self._poll_interval_s = poll_interval_s
        self._lock = threading.RLock()
        self._attached: dict[str, _Process] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._clients: dict[str, tuple[tuple[str, int, bool], MongoClient[Doc]]] = {}

    # -- records ------------------------------------------------------------------------------------------

    def _file(self, name: str, suffix: str) -> Path:
        # Quoted, not stemmed: a process name may contain dots.
        return self._records_dir / f"{quote(name, safe='')}{suffix}"

    def _load(self, name: str) -> _Process | None:
        if name in self._attached:
            return self._attached[name]
        path = self._file(name, ".json")
        try:
            return _Process(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise DriverError(f"{name}: unreadable process record {path}: {exc}") from exc

    def _save(self, proc: _Process) -> None:
        self._records_dir.mkdir(parents=True, exist_ok=True)
        path = self._file(proc.name, ".json")
        tmp = self._file(proc.name, ".json.tmp")
        tmp.write_text(json.dumps(asdict(proc), indent=1, sort_keys=True))
        os.replace(tmp, path)

    def _forget(self, name: str) -> None:
        with self._lock:
            self._file(name, ".json").unlink(missing_ok=True)
            self._children.pop(name, None)
            self._close_client(name)

    def processes(self) -> list[str]:
        """Names of the processes this driver started (and has not stopped) or was attached to."""
        recorded = [json.loads(p.read_text())["name"] for p in sorted(self._records_dir.glob("*.json"))]
        return sorted({*recorded, *self._attached})

    def attach(
        self,
        name: str,
        port: int,
        *,
        host: str = "127.0.0.1",
        mode: RunMode = RunMode.REPLSET,
        repl_set_name: str | None = None,
        tls: bool = False,
    ) -> None:
        """Administer a mongod this driver did not start, at ``host:port``; it is never signalled, only sent
        ``shutdown``, and stays attached after it stops."""
        with self._lock:
            self._close_client(name)
            self._attached[name] = _Process(
                name=name,
                host=host,
                port=port,
                mode=mode.value,
                repl_set_name=repl_set_name,
                tls=tls,
                args={},
            )

    def _alive(self, proc: _Process) -> bool:
        if proc.pid is None:
            return self._answers(proc)
        child = self._children.get(proc.name)
        if child is not None and child.pid == proc.pid:
            return child.poll() is None
        return _pid_runs(proc.pid, proc.conf)

    def _answers(self, proc: _Process) -> bool:
        try:
            self._run(proc, "ping", lambda c: c.admin.command("ping"))
        except DriverError:
            return False
        return True

    # -- clients ------------------------------------------------------------------------------------------

    def _client(self, proc: _Process) -> MongoClient[Doc]:
        key = (proc.host, proc.port, proc.tls)
        with self._lock:
            cached = self._clients.get(proc.name)
            if cached is not None and cached[0] == key:
                return cached[1]
            self._close_client(proc.name)
            options: dict[str, Any] = {}
            if proc.tls:
                options.update(tls=True, tlsAllowInvalidHostnames=True)
                ca = self._tls_ca_file or (proc.args.get("net", {}).get("tls") or {}).get("CAFile")
                if ca:
                    options["tlsCAFile"] = ca
                if self._tls_certificate_key_file:
                    options["tlsCertificateKeyFile"] = self._tls_certificate_key_file
            if self._credentials is not None:
                options.update(
                    username=self._credentials.username,
                    password=self._credentials.password,
                    authSource=self._credentials.source,
                    authMechanism=self._credentials.mechanism,
                )
            client: MongoClient[Doc] = MongoClient(
                proc.host,
                proc.port,
                directConnection=True,
                appname="opsmgr-agent",
                document_class=dict,
                tz_aware=True,
                # Every command is sent once: the agent's plan decides whether to try again.
                retryReads=False,
                retryWrites=False,
                serverSelectionTimeoutMS=self._connect_timeout_ms,
                connectTimeoutMS=self._connect_timeout_ms,
                socketTimeoutMS=self._command_timeout_ms,
                **options,
            )
            self._clients[proc.name] = (key, client)
            return client

    def _close_client(self, name: str) -> None:
        with self._lock:
            cached = self._clients.pop(name, None)
        if cached is not None:
            cached[1].close()

    def close(self) -> None:
        """Close every connection; the processes keep running."""
        with self._lock:
            for name in list(self._clients):
                self._close_client(name)

    # -- commands -----------------------------------------------------------------------------------------

    def _require(self, name: str) -> _Process:
        proc = self._load(name)
        if proc is None:
            raise ProcessUnreachable(f"{name}: no such process on {self.hostname} (not started nor attached)")
        return proc

    @contextmanager
    def _errors(self, proc: _Process, what: str) -> Iterator[None]:
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

    def _run(self, proc: _Process, what: str, action: Callable[[MongoClient[Doc]], T]) -> T:
        with self._errors(proc, what):
            return action(self._client(proc))

    def _command(self, name: str, command: Doc, *, db: str = "admin") -> Doc:
        proc = self._require(name)
        what = next(iter(command))
        return self._run(proc, what, lambda c: c[db].command(command))

    # -- Driver: processes --------------------------------------------------------------------------------

    def observe(self, name: str) -> ProcessObservation:
        proc = self._load(name)
        if proc is None or not self._alive(proc):
            return ProcessObservation(name=name, running=False)
        if proc.version is None:
            try:
                proc.version = str(
                    self._run(proc, "buildInfo", lambda c: c.admin.command("buildInfo"))["version"]
                )
            except DriverError as exc:
                log.debug("version of %s not known yet: %s", name, exc)
            else:
                if proc.pid is not None:
                    self._save(proc)
        return ProcessObservation(
            name=name,
            running=True,
            mode=RunMode(proc.mode),
            port=proc.port,
            version=proc.version,
            args=proc.args,
            pid=proc.pid,
            uptime_s=time.time() - proc.started_at if proc.started_at is not None else None,
        )

    def start(self, spec: ProcessSpec) -> None:
        """Start ``spec`` and wait until it serves its port; a no-op when it already runs exactly so."""
        mode = RunMode.REPLSET if spec.repl_set_name is not None else RunMode.STANDALONE
        with self._lock:
            running = self._load(spec.name)
            if running is not None and self._alive(running):
                if (running.port, running.mode, running.args) == (spec.port, mode.value, spec.args):
                    return
                raise CommandConflict(
                    f"{spec.name} already runs on port {running.port} in {running.mode} mode; stop it first"
                )
            proc = self._spawn(spec, mode)
        self._wait_ready(proc)

    def _spawn(self, spec: ProcessSpec, mode: RunMode) -> _Process:
        conf = self._file(spec.name, ".conf")
        options = mongod_options(spec, default_log_path=str(self._file(spec.name, ".log")))
        binary = self.binary.format(version=spec.version) if "{version}" in self.binary else self.binary
        self._records_dir.mkdir(parents=True, exist_ok=True)
        Path(spec.dbpath).mkdir(parents=True, exist_ok=True)
        log_path = options["systemLog"].get("path")
        if log_path:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(render_config(options))
        # Output before mongod opens its log (bad options, a missing library) lands here.
        with open(self._file(spec.name, ".out"), "ab") as out:
            try:
                child = subprocess.Popen(
                    [binary, "--config", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    # Its own session: Ctrl-C to the agent or its exit must not take the database down.
                    start_new_session=True,
                )
            except OSError as exc:
                raise DriverError(f"{spec.name}: cannot run {binary}: {exc}") from exc
        log.info("started %s: pid %s, port %s, %s mode", spec.name, child.pid, spec.port, mode.value)
        proc = _Process(
            name=spec.name,
            host=admin_host(options),
            port=spec.port,
            mode=mode.value,
            repl_set_name=spec.repl_set_name,
            tls=requires_tls(options),
            args=spec.args,
            pid=child.pid,
            conf=str(conf),
            started_at=time.time(),
            log=log_path,
        )
        self._children[spec.name] = child
        self._attached.pop(spec.name, None)
        self._close_client(spec.name)
        self._save(proc)
        return proc

    def _wait_ready(self, proc: _Process) -> None:
        deadline = time.monotonic() + self._start_deadline_s
        while True:
            child = self._children.get(proc.name)
            if child is not None and child.poll() is not None:
                self._forget(proc.name)
                raise DriverError(
                    f"{proc.name}: mongod exited with status {child.returncode} while starting: "
                    f"{self._output_tail(proc)}"
                )
            if self._serves(proc):
                return
            if time.monotonic() > deadline:
                raise ProcessUnreachable(
                    f"{proc.name}: mongod (pid {proc.pid}) did not answer on port {proc.port} within "
                    f"{self._start_deadline_s:.0f}s: {self._output_tail(proc)}"
                )
            time.sleep(self._poll_interval_s)

    def _serves(self, proc: _Process) -> bool:
        """Whether ``proc`` answers on its port and it is really that process answering, not another one
        that held the port first (ours then exits with "address already in use")."""
        try:
            status = self._run(proc, "serverStatus", lambda c: c.admin.command({"serverStatus": 1}))
        except ProcessUnreachable:
            return False
        except DriverError as exc:
            # It answers; without privileges yet (the localhost exception) it will not say more.
            log.debug("%s answers but does not tell its pid: %s", proc.name, exc)
            return True
        return status.get("pid") in (None, proc.pid)

    def _output_tail(self, proc: _Process, lines: int = 5) -> str:
        tails = []
        for path in (self._file(proc.name, ".out"), Path(proc.log) if proc.log else None):
            if path is not None and path.exists():
                tails.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return " | ".join(tails) or "no output"

    def stop(self, name: str, *, force: bool = False) -> None:
        """``shutdown`` (with ``force``), then SIGTERM and SIGKILL for a process that outlives its deadline.

        A refusal by the server (a primary with no caught-up secondary) is raised unless ``force``; an
        attached process is only sent ``shutdown``, never a signal.
        """
        proc = self._load(name)
        if proc is None:
            return
        if not self._alive(proc):
            self._forget(name)
            return
        try:
            self._run(
                proc,
                "shutdown",
                lambda c: c.admin.command(
                    {"shutdown": 1, "force": force, "timeoutSecs": self._shutdown_timeout_secs}
                ),
            )
        except ProcessUnreachable:
            pass  # the expected answer: mongod closes the connection as it goes down
        except CommandConflict:
            if not force:
                raise
            log.warning("%s refused a forced shutdown; signalling it", name)
        except DriverError as exc:
            log.warning("shutdown of %s failed (%s); signalling it", name, exc)
        self._close_client(name)
        if proc.pid is None:
            if not self._await(lambda: not self._answers(proc), self._stop_deadline_s):
                raise DriverError(
                    f"{name} ({proc.address}) still answers {self._stop_deadline_s:.0f}s after shutdown"
                )
        else:
            self._terminate(proc)
        self._forget(name)

    def _terminate(self, proc: _Process) -> None:
        assert proc.pid is not None
        pid = proc.pid

        def gone() -> bool:
            return not self._alive(proc)

        steps = (
            (None, self._stop_deadline_s),
            (signal.SIGTERM, self._kill_grace_s),
            (signal.SIGKILL, self._kill_grace_s),
        )
        for sig, wait_s in steps:
            if sig is not None:
                log.warning("%s (pid %s) still running; sending %s", proc.name, pid, sig.name)
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    return
            if self._await(gone, wait_s):
                return
        raise DriverError(f"{proc.name}: pid {pid} survived SIGKILL")

    def _await(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(self._poll_interval_s)
        return True

    # -- Driver: replica set --------------------------------------------------------------------------------

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

    # -- Driver: oplog ------------------------------------------------------------------------------------

    def _oplog_edge(self, proc: _Process, direction: int) -> Doc | None:
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
            for db_name in self._user_databases(client):
                db = client[db_name]
                for coll in sorted(db.list_collection_names(filter={"type": "collection"})):
                    if not coll.startswith("system."):
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
            for ns, batch in by_ns.items():
                db, coll = split_namespace(ns)
                for i in range(0, len(batch), 1000):
                    client[db][coll].insert_many(batch[i : i + 1000], ordered=True)

        self._run(proc, "load", write)


def _pid_runs(pid: int, marker: str | None) -> bool:
    """Whether ``pid`` is still the mongod recorded under it: alive, not a zombie, and (where /proc tells)
    started with our config file, so a pid reused by another program is never taken for it."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not Path("/proc/self").exists():
        return True  # no /proc here: kill(0) is all there is
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False  # exited since kill(0)
    if stat.rpartition(")")[2].split()[0] == "Z":
        return False
    return marker is None or marker in cmdline

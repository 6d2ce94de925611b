"""The ``mongod`` driver: real ``mongod`` (and ``mongos``) processes on this host, administered through
pymongo.

Owns supervising the processes it starts without ``--fork``: each is a child in its own session, recorded in
``state_dir`` (pid, port, mode, args) so that an agent that restarts finds its processes again instead of
starting duplicates; stopping is the ``shutdown`` command, then SIGTERM, then SIGKILL, each after a deadline.
It holds a direct pymongo connection with short timeouts to each process; a process started elsewhere can be
administered too: ``attach(name, port)``. The administrative commands are ``drivers.mongod_admin``'s, the
sharding commands (sent to a ``mongos``) ``drivers.mongod_sharding``'s, the config files it writes and the
replies it reads ``drivers.mongod_commands``'.

May import ``opsmgr.errors``, ``opsmgr.drivers.base``, ``opsmgr.drivers.mongod_admin``,
``opsmgr.drivers.mongod_commands``, ``opsmgr.drivers.mongod_sharding``, pymongo/bson and the standard
library.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from pymongo import MongoClient

from opsmgr.drivers.base import (
    CommandConflict,
    Driver,
    DriverError,
    ProcessObservation,
    ProcessSpec,
    ProcessUnreachable,
    RunMode,
)
from opsmgr.drivers.mongod_admin import ProcessRecord
from opsmgr.drivers.mongod_commands import (
    Doc,
    admin_host,
    mongod_options,
    render_config,
    requires_tls,
)
from opsmgr.drivers.mongod_sharding import ShardingAdmin

log = logging.getLogger(__name__)

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------------------
# Supervision


@dataclass(frozen=True)
class Credentials:
    """The user the agent authenticates as when the process has authorization on."""

    username: str
    password: str
    source: str = "admin"
    mechanism: str = "SCRAM-SHA-256"


class MongodDriver(ShardingAdmin):
    """The Driver protocol for real ``mongod`` and ``mongos`` processes on this host.

    ``binary`` may contain ``{version}``, filled from each ``ProcessSpec.version``, so a host can keep one
    install per MongoDB version (``/opt/mongodb/{version}/bin/mongod``); ``mongos_binary`` likewise, by
    default the ``mongos`` next to ``binary``. ``state_dir`` keeps one record and one generated config file
    per process.
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
        mongos_binary: str | None = None,
    ) -> None:
        self.binary = binary
        head, sep, tail = binary.rpartition("mongod")
        self.mongos_binary = mongos_binary or (f"{head}mongos{tail}" if sep else "mongos")
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
        self._attached: dict[str, ProcessRecord] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._clients: dict[str, tuple[tuple[str, int, bool], MongoClient[Doc]]] = {}

    # -- records ------------------------------------------------------------------------------------------

    def _file(self, name: str, suffix: str) -> Path:
        # Quoted, not stemmed: a process name may contain dots.
        return self._records_dir / f"{quote(name, safe='')}{suffix}"

    def _load(self, name: str) -> ProcessRecord | None:
        if name in self._attached:
            return self._attached[name]
        path = self._file(name, ".json")
        try:
            return ProcessRecord(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise DriverError(f"{name}: unreadable process record {path}: {exc}") from exc

    def _save(self, proc: ProcessRecord) -> None:
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
        process_type: str = "mongod",
    ) -> None:
        """Administer a mongod this driver did not start, at ``host:port``; it is never signalled, only sent
        ``shutdown``, and stays attached after it stops."""
        with self._lock:
            self._close_client(name)
            self._attached[name] = ProcessRecord(
                name=name,
                host=host,
                port=port,
                mode=mode.value,
                repl_set_name=repl_set_name,
                tls=tls,
                args={},
                process_type=process_type,
            )

    def _alive(self, proc: ProcessRecord) -> bool:
        if proc.pid is None:
            return self._answers(proc)
        child = self._children.get(proc.name)
        if child is not None and child.pid == proc.pid:
            return child.poll() is None
        return _pid_runs(proc.pid, proc.conf)

    def _answers(self, proc: ProcessRecord) -> bool:
        try:
            self._run(proc, "ping", lambda c: c.admin.command("ping"))
        except DriverError:
            return False
        return True

    # -- clients ------------------------------------------------------------------------------------------

    def _client(self, proc: ProcessRecord) -> MongoClient[Doc]:
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

    def _require(self, name: str) -> ProcessRecord:
        proc = self._load(name)
        if proc is None:
            raise ProcessUnreachable(f"{name}: no such process on {self.hostname} (not started nor attached)")
        return proc

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
            process_type=proc.process_type,
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

    def _spawn(self, spec: ProcessSpec, mode: RunMode) -> ProcessRecord:
        conf = self._file(spec.name, ".conf")
        options = mongod_options(spec, default_log_path=str(self._file(spec.name, ".log")))
        template = self.mongos_binary if spec.process_type == "mongos" else self.binary
        binary = template.format(version=spec.version) if "{version}" in template else template
        self._records_dir.mkdir(parents=True, exist_ok=True)
        if spec.process_type != "mongos":
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
        proc = ProcessRecord(
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
            process_type=spec.process_type,
        )
        self._children[spec.name] = child
        self._attached.pop(spec.name, None)
        self._close_client(spec.name)
        self._save(proc)
        return proc

    def _wait_ready(self, proc: ProcessRecord) -> None:
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

    def _serves(self, proc: ProcessRecord) -> bool:
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

    def _output_tail(self, proc: ProcessRecord, lines: int = 5) -> str:
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

    def _terminate(self, proc: ProcessRecord) -> None:
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


if TYPE_CHECKING:
    # mypy proves here that the class implements the whole protocol, sharding commands included.
    def _implements_driver(driver: MongodDriver) -> Driver:
        return driver

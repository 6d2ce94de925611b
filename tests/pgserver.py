"""A throwaway PostgreSQL server for tests and benchmarks.

``initdb`` into a fresh temporary directory, ``pg_ctl start`` listening on 127.0.0.1 only (its unix socket
inside that directory), trust authentication, and on :meth:`PgServer.stop` (or interpreter exit) the server
is stopped and the directory removed. PostgreSQL refuses to run as root, so when this process is root the
server runs as the ``postgres`` system user, created with ``useradd`` if it is missing.

The binaries are found through ``$OPSMGR_PG_BINDIR``, ``pg_config --bindir``, ``PATH`` or Debian's
``/usr/lib/postgresql/<version>/bin``, newest first. Used by the ``pg_server`` fixture in
``tests/conftest.py`` and by ``benchmarks/``; imports nothing from opsmgr.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

SERVICE_USER = "postgres"
SUPERUSER = "postgres"

# Test-friendly settings: nothing a test asserts depends on surviving a power cut, so skip the fsyncs.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PgServerError(RuntimeError):
    pass


def _has_initdb(bindir: str | Path) -> bool:
    return (Path(bindir) / "initdb").is_file() and (Path(bindir) / "pg_ctl").is_file()


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[Path] = []
    if env := os.environ.get("OPSMGR_PG_BINDIR"):
        candidates.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(out.stdout.strip()))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for c in candidates:
        if _has_initdb(c):
            return c
    raise PgServerError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL "
        "(Debian: apt-get install postgresql) or set OPSMGR_PG_BINDIR"
    )


def _service_account() -> pwd.struct_passwd:
    """The unprivileged account the server runs as when we are root, created if missing."""
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temporary directory; use as a context manager or call start/stop."""

    def __init__(self, settings: Mapping[str, str] | None = None, *, start_timeout_s: int = 60) -> None:
        self.settings = {
            "max_connections": "200",
            "shared_buffers": "32MB",
            **(FAST if settings is None else settings),
        }
        self.start_timeout_s = start_timeout_s
        self.bindir = find_bindir()
        self.dir: Path | None = None
        self.port: int | None = None
        self._account = _service_account() if os.geteuid() == 0 else None

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None, "server not started"
        return self.dir / "data"

    @property
    def uri(self) -> str:
        """The URI of the ``postgres`` database as the superuser."""
        return self.database_uri("postgres")

    def database_uri(self, dbname: str) -> str:
        assert self.port is not None, "server not started"
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        kw: dict[str, Any] = {}
        if self._account is not None:
            kw = {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if self._account is not None:
            env["HOME"] = str(self.dir)
        proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=self.dir, **kw)
        if proc.returncode != 0:
            raise PgServerError(
                f"{Path(args[0]).name} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def start(self) -> PgServer:
        self.dir = Path(tempfile.mkdtemp(prefix="opsmgr-pg-"))
        atexit.register(self.stop)
        try:
            if self._account is not None:
                os.chown(self.dir, self._account.pw_uid, self._account.pw_gid)
            self._run(
                str(self.bindir / "initdb"),
                "-D", str(self.data_dir),
                "-U", SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )  # fmt: skip
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_on_free_port(self) -> None:
        # Another process may grab the port between our probe and the server's bind: try a few.
        for attempt in range(5):
            self.port = free_port()
            opts = [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-k {self.dir}",
                *(f"-c {k}={v}" for k, v in self.settings.items()),
            ]
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "start", "-w",
                    "-t", str(self.start_timeout_s),
                    "-D", str(self.data_dir),
                    "-l", str(self.log_path),
                    "-o", " ".join(opts),
                )  # fmt: skip
                return
            except PgServerError:
                if attempt == 4 or "could not bind" not in self.log():
                    raise PgServerError(f"postgres did not start; its log:\n{self.log()}") from None

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "postgres.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URI."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"unsafe database name {name!r}")
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_uri(name)

    def stop(self) -> None:
        """Stop the server (immediately: its data is thrown away) and remove its directory. Idempotent."""
        if self.dir is None:
            return
        atexit.unregister(self.stop)
        try:
            if (self.data_dir / "postmaster.pid").exists():
                with contextlib.suppress(PgServerError):
                    self._run(
                        str(self.bindir / "pg_ctl"), "stop", "-m", "immediate", "-w", "-D", str(self.data_dir)
                    )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self.port = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

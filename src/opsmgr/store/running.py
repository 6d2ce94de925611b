"""Whether a server is running on a set of backing databases: the lock a running server holds and a restore
of those databases checks.

Owns two locks that are released by the operating system (or PostgreSQL) when their holder dies, so a crashed
server never leaves a stale "running" marker behind, and nothing is written into the backed-up data:

- a lock file ``opsmgr-server.lock`` in the server's configuration directory (its data dir in an embedded
  setup), locked with ``flock``; its text says who holds it (pid, URL, role), for the message of whoever
  is refused;
- when the application database is PostgreSQL (which servers on other hosts may share), a session-level
  advisory lock on it: each running server holds it shared, a restore takes it exclusively. The holders are
  named through ``application_name``.

A server refuses to start while a restore holds either lock (:func:`hold_for_server`); a restore refuses
while any server holds one (:func:`hold_for_restore`), naming the running server's pid and URL. May import
``opsmgr.errors``, psycopg and SQLAlchemy's URL parser.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from opsmgr.errors import Conflict, PreflightFailure, StoreError

LOCK_FILE = "opsmgr-server.lock"
# An arbitrary constant, distinct from the store's writer lock: the "server running" advisory lock.
_PG_RUNNING_LOCK = 0x6F70726E
_APP_NAME_PREFIX = "opsmgr "


class ServerRunning(Conflict):
    """A restore of backing databases was refused because a server is running on them."""

    error_code = "SERVER_RUNNING"


@dataclass(frozen=True, slots=True)
class Holder:
    role: str  # "server" or "restore"
    pid: int
    host: str
    url: str
    since: str

    @classmethod
    def me(cls, role: str, url: str = "") -> Holder:
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(role, os.getpid(), socket.gethostname(), url, now)

    def describe(self) -> str:
        where = f" serving {self.url}" if self.url else ""
        return f"{self.role} pid {self.pid} on {self.host}{where} (since {self.since})"

    def app_name(self) -> str:
        return f"{_APP_NAME_PREFIX}{self.role} pid={self.pid} host={self.host} url={self.url}"[:63]


def lock_path(conf_dir: Path) -> Path:
    return conf_dir / LOCK_FILE


def _read_holder(path: Path) -> str:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Holder(**raw).describe()
    except (OSError, ValueError, TypeError):
        return f"an unknown process (its lock file {path} says nothing readable)"


@contextmanager
def _file_lock(path: Path, me: Holder) -> Iterator[str | None]:
    """Yields None while holding the lock, or the description of whoever holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield _read_holder(path)
            return
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(asdict(me)))
        handle.flush()
        yield None
    finally:
        handle.close()  # releases the flock


def _libpq(url: str) -> str | None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    return str(parsed.set(drivername="postgresql").render_as_string(hide_password=False))


@contextmanager
def _pg_lock(app_db_uri: str, me: Holder, *, shared: bool) -> Iterator[str | None]:
    """Yields None while holding the advisory lock on a PostgreSQL application database (or when it is
    SQLite), else a description of its holders."""
    conninfo = _libpq(app_db_uri)
    if conninfo is None:
        yield None
        return
    import psycopg

    try:
        conn = psycopg.connect(conninfo, autocommit=True, application_name=me.app_name(), connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot reach the application database to check for a running server: {exc}"
        ) from exc
    try:
        fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        row = conn.execute(f"SELECT {fn}(%s)", (_PG_RUNNING_LOCK,)).fetchone()
        if row is not None and row[0]:
            yield None
            return
        holders = conn.execute(
            "SELECT a.application_name, a.client_addr::text FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted AND a.pid <> pg_backend_pid()",
            (_PG_RUNNING_LOCK,),
        ).fetchall()
        names = [f"{name or '?'} (from {addr or 'local socket'})" for name, addr in holders]
        yield ", ".join(names) or "another session"
    finally:
        conn.close()


@contextmanager
def hold_for_server(conf_dir: Path, app_db_uri: str, url: str) -> Iterator[Holder]:
    """Held by ``opsmgr server`` while it runs; PreflightFailure when a restore (or another server on the
    same configuration directory) holds it."""
    me = Holder.me("server", url)
    with ExitStack() as stack:
        other = stack.enter_context(_file_lock(lock_path(conf_dir), me))
        if other is not None:
            raise PreflightFailure(
                f"Refusing to start: {lock_path(conf_dir)} is held by {other}. Another server or a restore "
                "of the backing databases is using this configuration; wait for it to end.",
                error_code="SERVER_LOCKED",
            )
        other = stack.enter_context(_pg_lock(app_db_uri, me, shared=True))
        if other is not None:
            raise PreflightFailure(
                f"Refusing to start: a restore of the application database holds it ({other}); wait for it "
                "to end.",
                error_code="SERVER_LOCKED",
            )
        yield me


@contextmanager
def hold_for_restore(conf_dir: Path | None, app_db_uri: str) -> Iterator[Holder]:
    """Held by a restore of the backing databases; :class:`ServerRunning` while a server runs on them."""
    me = Holder.me("restore")
    with ExitStack() as stack:
        if conf_dir is not None:
            other = stack.enter_context(_file_lock(lock_path(conf_dir), me))
            if other is not None:
                raise ServerRunning(_running_message(other), holder=other)
        other = stack.enter_context(_pg_lock(app_db_uri, me, shared=False))
        if other is not None:
            raise ServerRunning(_running_message(other), holder=other)
        yield me


def _running_message(holder: str) -> str:
    return (
        f"the primary is running: {holder}. Stop it before restoring its backing databases: a server "
        "writing to them during or after the restore would split the brain between the old and the new state."
    )

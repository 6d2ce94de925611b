"""Whether a server is running on a set of backing databases: the locks a running server holds on each of its
stores, and a restore of those stores takes.

The locks are keyed on the stores themselves, whatever configuration names them, and are released by the
operating system (or PostgreSQL) when their holder dies, so a crashed server never leaves a stale "running"
marker behind, and nothing is written into the backed-up data:

- beside each SQLite file, ``<file>.lock``, locked exclusively with ``flock`` by the one server that may
  write that file and by a restore of it; its text says who holds it (pid, host, URL, role), for the message
  of whoever is refused;
- on each PostgreSQL database (which servers on other hosts may share), a session-level advisory lock: each
  running server holds it shared, so several servers serve one set together, and a restore takes it
  exclusively. The holders are named through ``application_name``.

A server refuses to start while another server holds an SQLite store or a restore holds any store
(:func:`hold_for_server`); a restore refuses while any server holds one (:func:`hold_for_restore`), naming
the running server's pid and URL. May import ``opsmgr.errors``, ``opsmgr.store.engine``,
``opsmgr.store.changes`` (the libpq URI), psycopg and SQLAlchemy's URL parser.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from opsmgr.errors import Conflict, PreflightFailure, StoreError
from opsmgr.store.changes import libpq_conninfo
from opsmgr.store.engine import sqlite_file

LOCK_SUFFIX = ".lock"
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


def lock_path(database: Path) -> Path:
    """The lock file beside an SQLite database file."""
    return database.with_name(database.name + LOCK_SUFFIX)


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


@contextmanager
def _pg_lock(conninfo: str, label: str, me: Holder, *, shared: bool) -> Iterator[str | None]:
    """Yields None while holding the advisory lock on a PostgreSQL database, else a description of its
    holders."""
    import psycopg

    try:
        conn = psycopg.connect(conninfo, autocommit=True, application_name=me.app_name(), connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach the {label} to check for a running server: {exc}") from exc
    try:
        fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        row = conn.execute(f"SELECT {fn}(%s)", (_PG_RUNNING_LOCK,)).fetchone()
        if row is not None and row[0]:
            try:
                yield None
            finally:
                # Released before the close: a closed session's backend lets its locks go only when it
                # exits, after the close returned, and whoever checks next would still see it held.
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock_all()")
            return
        # Advisory locks belong to one database: the same key on another database is another lock.
        holders = conn.execute(
            "SELECT a.application_name, a.client_addr::text FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted AND a.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (_PG_RUNNING_LOCK,),
        ).fetchall()
        names = [f"{name or '?'} (from {addr or 'local socket'})" for name, addr in holders]
        yield ", ".join(names) or "another session"
    finally:
        conn.close()


@contextmanager
def _lock_store(label: str, uri: str, me: Holder, *, shared_pg: bool) -> Iterator[tuple[str, str] | None]:
    """Yields None while holding the lock of one store, else (where, holder) of the one in the way."""
    database = sqlite_file(uri)
    if database is not None:
        where = f"the {label} {database} (locked through {lock_path(database)})"
        with _file_lock(lock_path(database), me) as other:
            yield None if other is None else (where, other)
        return
    conninfo = libpq_conninfo(uri)
    if conninfo is None:  # an in-memory database belongs to its process
        yield None
        return
    with _pg_lock(conninfo, label, me, shared=shared_pg) as other:
        yield None if other is None else (f"the {label} (PostgreSQL)", other)


@contextmanager
def hold_for_server(stores: Mapping[str, str], url: str) -> Iterator[Holder]:
    """Held by ``opsmgr server`` while it serves the ``stores`` ({label: URI}); PreflightFailure while
    another server holds one of its SQLite files or a restore holds any of them."""
    me = Holder.me("server", url)
    with ExitStack() as stack:
        for label, uri in stores.items():
            found = stack.enter_context(_lock_store(label, uri, me, shared_pg=True))
            if found is not None:
                where, other = found
                raise PreflightFailure(
                    f"Refusing to start: {where} is in use by {other}. Two servers writing one SQLite file, "
                    "or a server beside a restore of its store, would split the brain between them; stop "
                    "that process first, or wait for the restore to end.",
                    error_code="SERVER_LOCKED",
                    holder=other,
                )
        yield me


@contextmanager
def hold_for_restore(stores: Mapping[str, str]) -> Iterator[Holder]:
    """Held by a restore of the backing databases ({label: URI}); :class:`ServerRunning` while a server runs
    on any of them."""
    me = Holder.me("restore")
    with ExitStack() as stack:
        for label, uri in stores.items():
            found = stack.enter_context(_lock_store(label, uri, me, shared_pg=False))
            if found is not None:
                raise ServerRunning(_running_message(*found), holder=found[1])
        yield me


def _running_message(where: str, holder: str) -> str:
    return (
        f"the primary is running: {holder} holds {where}. Stop it before restoring its backing databases: a "
        "server writing to them during or after the restore would split the brain between the old and the "
        "new state."
    )

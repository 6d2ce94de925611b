"""Switching a SQLite database file to write-ahead logging when several processes open it at once.

SQLite answers a switch to WAL that races another connection's with "database is locked" at once, without
calling its busy handler, so agents starting together on a new world file, or a server and ``opsmgr keys
create`` on a new application database, failed at random. The switch is retried until the caller's busy
timeout instead. May import the standard library only.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Protocol

_RETRY_S = 0.01


class _Executes(Protocol):
    def execute(self, sql: str, /) -> object: ...


def enter_wal(conn: _Executes, timeout_s: float) -> None:
    """Puts the file ``conn`` opened in WAL mode (a no-op once it is), waiting ``timeout_s`` for racers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_S)

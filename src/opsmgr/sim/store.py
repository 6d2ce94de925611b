"""Where the world's state lives: in memory behind a lock, or in a SQLite file shared by processes.

A :class:`Backend` opens transactions. Every transaction sees the records (``sim.model``) through
:class:`Tx` and the bulk data through ``tx.data`` (``sim.data.DataOps``).

- :class:`MemoryBackend`: records are live objects in a dict and a ``threading.RLock`` serialises
  transactions. An error half-way through a transaction is not undone, which is why the world validates a
  command completely before it changes anything.
- :class:`SqliteBackend`: one file, ``BEGIN IMMEDIATE`` per transaction so that the processes sharing it (one
  agent per host) serialise their calls; records are read as JSON on first use and written back at commit
  when they changed; entries and document versions are tables, changed statement by statement.

May import the standard library, ``opsmgr.errors``, ``opsmgr.sqlite_wal``, ``opsmgr.sim.model`` and
``opsmgr.sim.data`` only.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from opsmgr.errors import StoreError
from opsmgr.sim.data import TS_MAX, DataOps, Entry, MemoryData
from opsmgr.sim.model import Record
from opsmgr.sqlite_wal import enter_wal

R = TypeVar("R", bound=Record)


class Tx(Protocol):
    data: DataOps

    def get(self, cls: type[R], key: str) -> R | None: ...

    def put(self, rec: Record) -> None: ...

    def delete(self, rec: Record) -> None: ...

    def keys(self, cls: type[Record]) -> list[str]: ...


class Backend(Protocol):
    def transaction(self) -> AbstractContextManager[Tx]: ...

    def close(self) -> None: ...


class _MemoryTx:
    def __init__(self, records: dict[tuple[str, str], Record], data: MemoryData) -> None:
        self._records = records
        self.data: DataOps = data

    def get(self, cls: type[R], key: str) -> R | None:
        rec = self._records.get((cls.KIND, key))
        assert rec is None or isinstance(rec, cls)
        return rec

    def put(self, rec: Record) -> None:
        self._records[(rec.KIND, rec.key)] = rec

    def delete(self, rec: Record) -> None:
        self._records.pop((rec.KIND, rec.key), None)

    def keys(self, cls: type[Record]) -> list[str]:
        return [k for kind, k in self._records if kind == cls.KIND]


class MemoryBackend:
    def __init__(self) -> None:
        self._records: dict[tuple[str, str], Record] = {}
        self._data = MemoryData()
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            yield _MemoryTx(self._records, self._data)

    def close(self) -> None:
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (lineage INTEGER NOT NULL, ts INTEGER NOT NULL, cum INTEGER NOT NULL,
    size INTEGER NOT NULL, op TEXT NOT NULL, ns TEXT NOT NULL, o TEXT NOT NULL, o2 TEXT,
    wall_ms INTEGER NOT NULL,
    PRIMARY KEY (lineage, ts)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_cum ON entries (lineage, cum);
CREATE TABLE IF NOT EXISTS versions (lineage INTEGER NOT NULL, ns TEXT NOT NULL, id TEXT NOT NULL,
    start_ts INTEGER NOT NULL, end_ts INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (lineage, ns, id, start_ts)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS versions_end ON versions (lineage, end_ts);
"""

_ENTRY_COLS = "ts, cum, size, op, ns, o, o2, wall_ms"


def _entry(row: Sequence[Any]) -> Entry:
    return Entry(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


class SqliteData:
    """:class:`DataOps` as SQL on the transaction's connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def _one(self, sql: str, *args: Any) -> Entry | None:
        row = self._c.execute(sql, args).fetchone()
        return _entry(row) if row else None

    def append(self, lid: int, entries: Sequence[Entry]) -> None:
        self._c.executemany(
            f"INSERT INTO entries (lineage, {_ENTRY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(lid, e.ts, e.cum, e.size, e.op, e.ns, e.o, e.o2, e.wall_ms) for e in entries],
        )

    def entries(self, lid: int, after_ts: int, upto_ts: int, limit: int) -> list[Entry]:
        rows = self._c.execute(
            f"SELECT {_ENTRY_COLS} FROM entries WHERE lineage = ? AND ts > ? AND ts <= ? ORDER BY ts LIMIT ?",
            (lid, after_ts, upto_ts, max(0, limit)),
        )
        return [_entry(r) for r in rows]

    def entry_at(self, lid: int, ts: int) -> Entry | None:
        return self._one(f"SELECT {_ENTRY_COLS} FROM entries WHERE lineage = ? AND ts = ?", lid, ts)

    def nth_after(self, lid: int, after_ts: int, upto_ts: int, n: int) -> Entry | None:
        if n < 1:
            return None
        found = self._one(
            f"SELECT {_ENTRY_COLS} FROM entries WHERE lineage = ? AND ts > ? AND ts <= ? "
            "ORDER BY ts LIMIT 1 OFFSET ?",
            lid,
            after_ts,
            upto_ts,
            n - 1,
        )
        if found is not None:
            return found
        return self._one(
            f"SELECT {_ENTRY_COLS} FROM entries WHERE lineage = ? AND ts > ? AND ts <= ? "
            "ORDER BY ts DESC LIMIT 1",
            lid,
            after_ts,
            upto_ts,
        )

    def count_between(self, lid: int, after_ts: int, upto_ts: int) -> int:
        row = self._c.execute(
            "SELECT COUNT(*) FROM entries WHERE lineage = ? AND ts > ? AND ts <= ?", (lid, after_ts, upto_ts)
        ).fetchone()
        return int(row[0])

    def first_cum_at_least(self, lid: int, cum: int) -> Entry | None:
        return self._one(
            f"SELECT {_ENTRY_COLS} FROM entries WHERE lineage = ? AND cum >= ? ORDER BY cum LIMIT 1", lid, cum
        )

    def prune_entries(self, lid: int, keep: list[tuple[int, int]]) -> None:
        if not keep:
            self._c.execute("DELETE FROM entries WHERE lineage = ?", (lid,))
            return
        self._c.execute("DELETE FROM entries WHERE lineage = ? AND ts <= ?", (lid, keep[0][0]))
        self._c.execute("DELETE FROM entries WHERE lineage = ? AND ts > ?", (lid, keep[-1][1]))
        for a, b in itertools.pairwise(keep):
            self._c.execute("DELETE FROM entries WHERE lineage = ? AND ts > ? AND ts <= ?", (lid, a[1], b[0]))

    def truncate_after(self, lid: int, ts: int) -> int:
        return self._c.execute("DELETE FROM entries WHERE lineage = ? AND ts > ?", (lid, ts)).rowcount

    def get_doc(self, lid: int, ns: str, key: str, at: int) -> dict[str, Any] | None:
        row = self._c.execute(
            "SELECT doc FROM versions WHERE lineage = ? AND ns = ? AND id = ? "
            "AND start_ts <= ? AND end_ts > ? ORDER BY start_ts DESC LIMIT 1",
            (lid, ns, key, at, at),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put_doc(self, lid: int, ns: str, key: str, ts: int, doc: dict[str, Any] | None) -> None:
        self._c.execute(
            "UPDATE versions SET end_ts = ? WHERE lineage = ? AND ns = ? AND id = ? AND end_ts = ?",
            (ts, lid, ns, key, TS_MAX),
        )
        if doc is not None:
            self._c.execute(
                "INSERT INTO versions (lineage, ns, id, start_ts, end_ts, doc) VALUES (?, ?, ?, ?, ?, ?)",
                (lid, ns, key, ts, TS_MAX, json.dumps(doc, separators=(",", ":"), sort_keys=True)),
            )

    def docs_at(self, lid: int, at: int) -> list[tuple[str, dict[str, Any]]]:
        rows = self._c.execute(
            "SELECT ns, doc FROM versions WHERE lineage = ? AND start_ts <= ? AND end_ts > ? ORDER BY ns, id",
            (lid, at, at),
        )
        return [(ns, json.loads(doc)) for ns, doc in rows]

    def count_docs(self, lid: int, at: int) -> int:
        row = self._c.execute(
            "SELECT COUNT(*) FROM versions WHERE lineage = ? AND start_ts <= ? AND end_ts > ?", (lid, at, at)
        ).fetchone()
        return int(row[0])

    def rollback_docs(self, lid: int, ts: int) -> None:
        self._c.execute("DELETE FROM versions WHERE lineage = ? AND start_ts > ?", (lid, ts))
        self._c.execute(
            "UPDATE versions SET end_ts = ? WHERE lineage = ? AND end_ts > ? AND end_ts < ?",
            (TS_MAX, lid, ts, TS_MAX),
        )

    def gc_docs(self, lid: int, moving_min: int, frozen: list[int]) -> None:
        keep_frozen = "".join(" AND NOT (start_ts <= ? AND end_ts > ?)" for _ in frozen)
        args: list[int] = [lid, moving_min]
        for f in frozen:
            args += [f, f]
        self._c.execute(f"DELETE FROM versions WHERE lineage = ? AND end_ts <= ?{keep_frozen}", args)

    def drop(self, lid: int) -> None:
        self._c.execute("DELETE FROM entries WHERE lineage = ?", (lid,))
        self._c.execute("DELETE FROM versions WHERE lineage = ?", (lid,))


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn
        self.data: DataOps = SqliteData(conn)
        self._cache: dict[tuple[str, str], tuple[Record, str | None]] = {}
        self._deleted: set[tuple[str, str]] = set()

    def get(self, cls: type[R], key: str) -> R | None:
        ck = (cls.KIND, key)
        if ck in self._deleted:
            return None
        hit = self._cache.get(ck)
        if hit is None:
            row = self._c.execute("SELECT data FROM records WHERE kind = ? AND key = ?", ck).fetchone()
            if row is None:
                return None
            hit = (cls.from_json(json.loads(row[0])), row[0])
            self._cache[ck] = hit
        rec = hit[0]
        assert isinstance(rec, cls)
        return rec

    def put(self, rec: Record) -> None:
        ck = (rec.KIND, rec.key)
        self._deleted.discard(ck)
        prior = self._cache.get(ck)
        self._cache[ck] = (rec, prior[1] if prior else None)

    def delete(self, rec: Record) -> None:
        ck = (rec.KIND, rec.key)
        self._cache.pop(ck, None)
        self._deleted.add(ck)

    def keys(self, cls: type[Record]) -> list[str]:
        stored = {r[0] for r in self._c.execute("SELECT key FROM records WHERE kind = ?", (cls.KIND,))}
        stored |= {k for kind, k in self._cache if kind == cls.KIND}
        return sorted(stored - {k for kind, k in self._deleted if kind == cls.KIND})

    def flush(self) -> None:
        for kind, key in self._deleted:
            self._c.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))
        changed = []
        for (kind, key), (rec, original) in self._cache.items():
            text = rec.dumps()
            if text != original:
                changed.append((kind, key, text))
        self._c.executemany("INSERT OR REPLACE INTO records (kind, key, data) VALUES (?, ?, ?)", changed)


class SqliteBackend:
    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            enter_wal(self._conn, busy_timeout_s)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # In a transaction that waits its turn: agents starting together create the schema at once, and a
            # bare CREATE that finds the schema changed under it fails without waiting.
            self._conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the simulated world {self.path}: {exc}") from exc
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot lock the simulated world {self.path}: {exc}") from exc
            tx = _SqliteTx(self._conn)
            try:
                yield tx
                tx.flush()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

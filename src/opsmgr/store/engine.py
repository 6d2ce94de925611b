"""One backing database: JSON documents in named collections plus a same-transaction oplog.

Owns one database (SQLite file or PostgreSQL database) through the tables and triggers of ``store.schema``,
and nothing else. Every insert, update and delete of a document appends, in the same transaction, one oplog
entry ``{ts, op, ns, _id, doc}``: row triggers on ``documents`` write it, so no code path can forget it and a
write is one statement. ``ts`` is an integer in microseconds since the epoch
that strictly increases in commit order:

- Write transactions serialise on a lock taken before their first statement (``BEGIN IMMEDIATE`` on SQLite,
  where a process's own writers queue first in ``store.writers``,
  a transaction-scoped advisory lock on PostgreSQL, sent with ``BEGIN``) and held until commit. PostgreSQL
  makes a commit visible before it releases the committer's locks, and writers run at READ COMMITTED (a
  fresh snapshot per statement), so each writer sees everything every earlier writer committed.
- An entry's ``ts`` is ``max(highest ts + 1, truncated_through + 1, database clock)``, computed by the
  trigger under that lock: later than everything committed or truncated before, close to wall-clock time.

So a reader never sees ts N+1 without N. Inserts and updates carry the full post-image and deletes the
``_id``, so replaying any suffix of the oplog twice gives the same documents. Read transactions see one
snapshot (REPEATABLE READ on PostgreSQL, a deferred transaction on SQLite).

The oplog is capped by size and by age (:meth:`Store.cap`); ``oplog_meta.truncated_through`` remembers the
highest ``ts`` removed, and a reader asking after an older ``ts`` gets :class:`OplogGap`, never a silent skip.

On SQLite, closing a store checkpoints its write-ahead log into the database file and empties it (TRUNCATE),
so after a clean stop the ``.sqlite`` file alone holds every committed transaction; :meth:`Store.quick_check`
reads every page for the damage a failing disk leaves. In a server's shared stores (``fence_jobs``), a write
transaction of a periodic job is fenced by its lease's token (``store.job_leases``); a backup head, which
mirrors a source's documents, never is. May import only ``opsmgr.errors``, ``opsmgr.sqlite_wal``,
``opsmgr.store.schema``, ``opsmgr.store.job_leases``, ``opsmgr.store.writers``, SQLAlchemy and bson (for
ids).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from bson import ObjectId
from sqlalchemy.engine import Connection, Engine

from opsmgr.errors import InvalidInput, OplogGap, StoreError
from opsmgr.sqlite_wal import enter_wal
from opsmgr.store.job_leases import check_fence
from opsmgr.store.schema import (
    MAX_COLL_LEN,
    MAX_ID_LEN,
    Statements,
    documents,
    install_triggers,
    metadata,
    next_ts_sql,
    oplog,
    oplog_meta,
)
from opsmgr.store.writers import WriterQueue

log = logging.getLogger(__name__)

Op = Literal["i", "u", "d"]

# An arbitrary constant: the PostgreSQL advisory lock every writer of one database serialises on.
_PG_WRITER_LOCK = 0x6F70736D
# How long a writer waits for the writer lock before giving up with a StoreError, on both engines.
_LOCK_TIMEOUT_S = 30
# Every request thread (the server's thread pool holds 40) and periodic loop may want a connection at once; a
# thread that cannot get one within this time gets a StoreError (503, retried by agents), never a 500.
_POOL_SIZE = 16
_POOL_OVERFLOW = 48
_POOL_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class OplogEntry:
    ts: int
    op: Op
    ns: str
    id: str
    doc: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"ts": self.ts, "op": self.op, "ns": self.ns, "_id": self.id, "doc": self.doc}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> OplogEntry:
        return cls(ts=int(raw["ts"]), op=raw["op"], ns=raw["ns"], id=str(raw["_id"]), doc=raw.get("doc"))


# The PostgreSQL NOTIFY channel of document changes that other servers cache (see Txn.notify).
CHANGES_CHANNEL = "opsmgr_changes"


@dataclass(frozen=True, slots=True)
class Change:
    """A change announced by a write transaction: ``key`` of ``topic`` (``*`` for every key) changed."""

    topic: str
    key: str

    def payload(self) -> str:
        return f"{self.topic}:{self.key}"

    @classmethod
    def parse(cls, payload: str) -> Change:
        topic, _, key = payload.partition(":")
        return cls(topic, key or "*")


@dataclass(frozen=True, slots=True)
class OplogBounds:
    """``first_ts``/``last_ts`` of the retained entries (None when empty) and the highest removed ``ts``."""

    first_ts: int | None
    last_ts: int | None
    truncated_through: int
    entries: int
    bytes: int


def new_id() -> str:
    """A 24-hex id, the shape of Ops Manager's ObjectId ids."""
    return str(ObjectId())


def now_us() -> int:
    return time.time_ns() // 1000


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: like ``==`` except that booleans never equal numbers (Python has True == 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _matches(doc: dict[str, Any], eq: dict[str, Any]) -> bool:
    return all(_same(doc.get(k), v) for k, v in eq.items())


def _valid_key(value: object, max_len: int) -> bool:
    # PostgreSQL rejects NUL in text and enforces the column lengths that SQLite ignores.
    return isinstance(value, str) and 0 < len(value) <= max_len and "\x00" not in value


def _check_key(coll: str, doc_id: str) -> None:
    if not _valid_key(coll, MAX_COLL_LEN):
        raise InvalidInput(f"collection name must be 1 to {MAX_COLL_LEN} characters", field="collection")
    if not _valid_key(doc_id, MAX_ID_LEN):
        raise InvalidInput(f"_id must be 1 to {MAX_ID_LEN} characters without NUL", field="_id")


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URIs and route them to the psycopg 3 driver SQLAlchemy ships for."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for PostgreSQL and in-memory SQLite."""
    parsed = sa.engine.make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _damaged(exc: sa.exc.SQLAlchemyError, dialect: str) -> bool:
    # SQLite reports a damaged file ("file is not a database", "database disk image is malformed") as a
    # DatabaseError; locks, permissions and missing folders are OperationalErrors.
    return (
        dialect == "sqlite"
        and isinstance(exc, sa.exc.DatabaseError)
        and not isinstance(exc, sa.exc.OperationalError)
    )


class Txn:
    """The reads and writes of one transaction; the oplog entry of each write is appended within it."""

    def __init__(self, conn: Connection, stmts: Statements, *, writable: bool) -> None:
        self._conn = conn
        self._stmts = stmts
        self._writable = writable
        self.notes: list[Change] = []

    def notify(self, topic: str, key: str) -> None:
        """Announce, once this transaction commits, that ``key`` of ``topic`` changed: to this process's
        listeners (:meth:`Store.on_change`) and, on PostgreSQL, to every process that LISTENs on
        :data:`CHANGES_CHANNEL` (NOTIFY is transactional: a rolled-back write announces nothing)."""
        self._check_writable()
        change = Change(topic, key)
        self.notes.append(change)
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(
                sa.text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANGES_CHANNEL, "payload": change.payload()[:7900]},
            )

    def _check_writable(self) -> None:
        # A write in a read transaction would bypass the writer lock that keeps ts in commit order.
        if not self._writable:
            raise StoreError("write in a read-only transaction: use Store.tx()", error_code="READ_ONLY")

    def get(self, coll: str, doc_id: str) -> dict[str, Any] | None:
        if not (_valid_key(coll, MAX_COLL_LEN) and _valid_key(doc_id, MAX_ID_LEN)):
            return None
        text = self._conn.execute(self._stmts.get, {"k_coll": coll, "k_id": doc_id}).scalar()
        return None if text is None else dict(json.loads(text))

    def find(self, coll: str, **eq: Any) -> list[dict[str, Any]]:
        """The documents of ``coll`` whose top-level fields equal ``eq`` (a missing field equals None)."""
        if not _valid_key(coll, MAX_COLL_LEN):
            return []
        docs = (json.loads(t) for t in self._conn.execute(self._stmts.find, {"k_coll": coll}).scalars())
        return [d for d in docs if _matches(d, eq)]

    def find_prefix(self, coll: str, prefix: str, **eq: Any) -> list[dict[str, Any]]:
        """Like :meth:`find`, among the documents whose ``_id`` starts with ``prefix`` only: the database
        picks them, so a collection keyed by project (``<group>:...``) is not read whole for one project."""
        if not _valid_key(coll, MAX_COLL_LEN) or not prefix:
            return []
        params = {"k_coll": coll, "k_len": len(prefix), "k_prefix": prefix}
        docs = (json.loads(t) for t in self._conn.execute(self._stmts.find_prefix, params).scalars())
        return [d for d in docs if _matches(d, eq)]

    def count(self, coll: str) -> int:
        if not _valid_key(coll, MAX_COLL_LEN):
            return 0
        return int(self._conn.execute(self._stmts.count, {"k_coll": coll}).scalar_one())

    def count_all(self) -> int:
        """The documents of every collection."""
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(documents)).scalar_one())

    def insert(self, coll: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert a new document, giving it an ``_id`` when it has none; a taken ``_id`` is a StoreError
        with error_code DUPLICATE_KEY, and the transaction stays usable."""
        self._check_writable()
        doc = dict(doc)
        doc.setdefault("_id", new_id())
        doc_id = str(doc["_id"])
        _check_key(coll, doc_id)
        text = _dumps(doc)
        # ON CONFLICT rather than catching the IntegrityError: on PostgreSQL that error would abort the
        # whole transaction, and the caller may want to carry on.
        if not self._conn.execute(self._stmts.insert, {"coll": coll, "id": doc_id, "doc": text}).rowcount:
            raise StoreError(f"duplicate _id {doc_id!r} in {coll}", error_code="DUPLICATE_KEY")
        return doc

    def put(self, coll: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert or fully replace the document with ``doc['_id']``."""
        self._check_writable()
        if "_id" not in doc:
            raise InvalidInput("a document to put needs an _id", field="_id")
        doc_id = str(doc["_id"])
        _check_key(coll, doc_id)
        self._conn.execute(self._stmts.upsert, {"coll": coll, "id": doc_id, "doc": _dumps(doc)})
        return doc

    def update(self, coll: str, doc_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Merge ``changes`` into an existing document; returns the post-image, or None if it is absent."""
        if "_id" in changes and str(changes["_id"]) != doc_id:
            raise InvalidInput("an update cannot change a document's _id", field="_id")
        self._check_writable()
        current = self.get(coll, doc_id)
        if current is None:
            return None
        current.update(changes)
        return self.put(coll, current)

    def delete(self, coll: str, doc_id: str) -> bool:
        self._check_writable()
        if not (_valid_key(coll, MAX_COLL_LEN) and _valid_key(doc_id, MAX_ID_LEN)):
            return False
        return bool(self._conn.execute(self._stmts.delete, {"k_coll": coll, "k_id": doc_id}).rowcount)

    def apply(self, entries: Iterable[OplogEntry]) -> int:
        """Replay entries (from this or another store's oplog) idempotently; returns how many were applied."""
        self._check_writable()
        n = 0
        for e in entries:
            if e.op == "d":
                self.delete(e.ns, e.id)
            elif e.doc is None:
                raise InvalidInput(f"oplog entry {e.ts} ({e.op}) carries no document", field="doc")
            else:
                self.put(e.ns, e.doc)
            n += 1
        return n


class Store:
    """A backing database reached through one URI (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "store",
        oplog_max_bytes: int = 512 * 1024 * 1024,
        oplog_max_age_s: float = 7 * 24 * 3600,
        fence_jobs: bool = False,
    ) -> None:
        self.url = normalise_url(url)
        self.name = name
        self.fence_jobs = fence_jobs  # a server's shared store: its periodic jobs' writes are fenced
        self.oplog_max_bytes = oplog_max_bytes
        self.oplog_max_age_s = oplog_max_age_s
        self._writing = threading.local()
        self._change_listeners: list[Callable[[Change], None]] = []
        try:
            self.dialect = sa.engine.make_url(self.url).get_backend_name()
            if self.dialect not in ("sqlite", "postgresql"):
                raise StoreError(f"the {name} must be SQLite or PostgreSQL, not {self.dialect}")
            self._writers = WriterQueue() if self.dialect == "sqlite" else None
            self._stmts = Statements(self.dialect)
            self.engine = self._make_engine()
            # Under the writer lock, so that servers opening one database at once do not race.
            with self._begin(write=True) as conn:
                metadata.create_all(conn)
                install_triggers(conn, self.dialect)
                if conn.execute(sa.select(oplog_meta.c.id)).first() is None:
                    conn.execute(oplog_meta.insert().values(id=1, truncated_through=0))
        except sa.exc.SQLAlchemyError as exc:
            if hasattr(self, "engine"):
                self.engine.dispose()
            raise StoreError(
                f"cannot open the {name} at {self.safe_url}: {exc.__class__.__name__}: {exc}",
                error_code="STORE_DAMAGED" if _damaged(exc, getattr(self, "dialect", "")) else None,
            ) from exc

    @property
    def safe_url(self) -> str:
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            return "(unparsable URI)"

    def _make_engine(self) -> Engine:
        if self.dialect == "sqlite":
            engine = sa.create_engine(
                self.url,
                connect_args={"timeout": _LOCK_TIMEOUT_S, "check_same_thread": False},
                pool_size=_POOL_SIZE,
                max_overflow=_POOL_OVERFLOW,
                pool_timeout=_POOL_TIMEOUT_S,
            )
            begin = {"write": "BEGIN IMMEDIATE", "read": "BEGIN"}
        else:
            engine = sa.create_engine(
                self.url,
                # A PostgreSQL server allows 100 connections by default, shared by every store and server.
                pool_size=min(_POOL_SIZE, 10),
                max_overflow=min(_POOL_OVERFLOW, 30),
                pool_timeout=_POOL_TIMEOUT_S,
                pool_pre_ping=True,
                connect_args={"options": f"-c lock_timeout={_LOCK_TIMEOUT_S}s"},
            )
            # One round trip opens the transaction and takes the writer lock.
            begin = {
                "write": f"BEGIN; SELECT pg_advisory_xact_lock({_PG_WRITER_LOCK})",
                "read": "BEGIN ISOLATION LEVEL REPEATABLE READ",
            }

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # The driver must not open transactions itself: _on_begin does, so that a writer takes the
            # writer lock before anything else. Both drivers still commit/roll back what we opened.
            if self.dialect == "sqlite":
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                enter_wal(cur, _LOCK_TIMEOUT_S)
                # NORMAL in WAL mode survives a killed process (not a power cut) without an fsync per commit.
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()
            else:
                dbapi_conn.autocommit = True

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql(
                begin.get(conn.info.get("mode", ""), "BEGIN"), execution_options={"no_parameters": True}
            )

        return engine

    @contextmanager
    def _begin(self, write: bool) -> Iterator[Connection]:
        if write:
            if getattr(self._writing, "active", False):
                # The inner transaction would wait for the lock the outer one holds until it times out.
                raise StoreError(f"a write transaction on the {self.name} is already open in this thread")
            if self._writers is not None and not self._writers.acquire(timeout=_LOCK_TIMEOUT_S):
                raise StoreError(
                    f"the {self.name} is unavailable: another write transaction of this server held it "
                    f"for {_LOCK_TIMEOUT_S} s"
                )
            self._writing.active = True
        try:
            with self.engine.connect() as conn:
                conn.info["mode"] = "write" if write else "read"
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop("mode", None)
        finally:
            if write:
                self._writing.active = False
                if self._writers is not None:
                    self._writers.release()

    @contextmanager
    def tx(self) -> Iterator[Txn]:
        """A write transaction; commits when the block ends without an exception.

        Write transactions run one at a time across every process using the database, so a read inside one
        is never stale. One thread may hold only one at a time (nesting is a StoreError, not a deadlock).
        """
        with self._unavailable(), self._begin(write=True) as conn:
            txn = Txn(conn, self._stmts, writable=True)
            if self.fence_jobs:
                check_fence(txn)
            yield txn
        self.announce(txn.notes)

    def notify(self, topic: str, key: str) -> None:
        """Announce a change made outside a transaction of this store (see :meth:`Txn.notify`)."""
        with self.tx() as t:
            t.notify(topic, key)

    def on_change(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener`` with every change this process's transactions announce, once committed
        (changes of other processes arrive through :class:`opsmgr.store.changes.ChangeListener`)."""
        self._change_listeners.append(listener)

    def announce(self, changes: Iterable[Change]) -> None:
        for change in changes:
            for listener in self._change_listeners:
                listener(change)

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """A read-only transaction: one consistent view of the documents."""
        with self._unavailable(), self._begin(write=False) as conn:
            yield Txn(conn, self._stmts, writable=False)

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        """The database failing under us (down, refusing writes, out of connections) is a StoreError naming
        this store, which the server answers with a 503 that agents retry; never a driver exception."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InternalError, sa.exc.InterfaceError) as exc:
            raise StoreError(f"the {self.name} is unavailable: {exc.orig}") from exc
        except sa.exc.TimeoutError as exc:
            raise StoreError(f"the {self.name} is too busy: {exc}") from exc

    # Single-statement conveniences, each its own transaction.

    def get(self, coll: str, doc_id: str) -> dict[str, Any] | None:
        with self.read() as t:
            return t.get(coll, doc_id)

    def find(self, coll: str, **eq: Any) -> list[dict[str, Any]]:
        with self.read() as t:
            return t.find(coll, **eq)

    def find_prefix(self, coll: str, prefix: str, **eq: Any) -> list[dict[str, Any]]:
        with self.read() as t:
            return t.find_prefix(coll, prefix, **eq)

    def insert(self, coll: str, doc: dict[str, Any]) -> dict[str, Any]:
        with self.tx() as t:
            return t.insert(coll, doc)

    def put(self, coll: str, doc: dict[str, Any]) -> dict[str, Any]:
        with self.tx() as t:
            return t.put(coll, doc)

    def update(self, coll: str, doc_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        with self.tx() as t:
            return t.update(coll, doc_id, changes)

    def delete(self, coll: str, doc_id: str) -> bool:
        with self.tx() as t:
            return t.delete(coll, doc_id)

    def collections(self) -> list[str]:
        with self.read() as t:
            rows = t._conn.execute(sa.select(documents.c.coll).distinct().order_by(documents.c.coll))
            return [r[0] for r in rows]

    # The oplog.

    def oplog_after(self, after_ts: int, limit: int = 1000) -> list[OplogEntry]:
        """Entries with ``ts > after_ts`` in ``ts`` order; :class:`OplogGap` if some were truncated."""
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        with self.read() as t:
            conn = t._conn
            truncated = conn.execute(sa.select(oplog_meta.c.truncated_through)).scalar_one()
            if after_ts < truncated:
                first = conn.execute(sa.select(sa.func.min(oplog.c.ts))).scalar()
                raise OplogGap(after_ts, first)
            rows = conn.execute(
                sa.select(oplog.c.ts, oplog.c.op, oplog.c.ns, oplog.c.doc_id, oplog.c.doc)
                .where(oplog.c.ts > after_ts)
                .order_by(oplog.c.ts)
                .limit(limit)
            )
            return [
                OplogEntry(r.ts, r.op, r.ns, r.doc_id, None if r.doc is None else json.loads(r.doc))
                for r in rows
            ]

    def quiet_position(self) -> int:
        """A position through which the oplog is complete: read under the writer lock with the clock that
        assigns ``ts``, so every entry committed from now on gets a greater ``ts`` (as long as the clock does
        not step back). A backup may declare the range up to it free of entries it has not seen, which lets
        the PITR window of a quiet database keep advancing."""
        with self.tx() as t:
            return int(t._conn.exec_driver_sql(f"SELECT {next_ts_sql(self.dialect)}").scalar_one()) - 1

    def oplog_bounds(self) -> OplogBounds:
        with self.read() as t:
            conn = t._conn
            truncated = conn.execute(sa.select(oplog_meta.c.truncated_through)).scalar_one()
            row = conn.execute(
                sa.select(
                    sa.func.min(oplog.c.ts),
                    sa.func.max(oplog.c.ts),
                    sa.func.count(),
                    sa.func.sum(oplog.c.size),
                )
            ).one()
            return OplogBounds(row[0], row[1], int(truncated), int(row[2]), int(row[3] or 0))

    def cap(self, *, max_bytes: int | None = None, max_age_s: float | None = None) -> int:
        """Remove the oldest entries beyond the size or age limit; returns how many were removed."""
        max_bytes = self.oplog_max_bytes if max_bytes is None else max_bytes
        max_age_s = self.oplog_max_age_s if max_age_s is None else max_age_s
        cutoff = max(0, now_us() - int(max_age_s * 1_000_000))
        # The entries kept from the newest one back; the oldest that no longer fits and all before it go.
        kept = sa.select(
            oplog.c.ts, sa.func.sum(oplog.c.size).over(order_by=oplog.c.ts.desc()).label("kept")
        ).subquery()
        with self.tx() as t:
            conn = t._conn
            by_age = conn.execute(sa.select(sa.func.max(oplog.c.ts)).where(oplog.c.ts < cutoff)).scalar()
            by_size = conn.execute(
                sa.select(sa.func.max(kept.c.ts)).where(kept.c.kept > sa.literal(max_bytes, sa.BigInteger))
            ).scalar()
            through = max(by_age or 0, by_size or 0)
            if not through:
                return 0
            removed = conn.execute(oplog.delete().where(oplog.c.ts <= through)).rowcount
            conn.execute(
                oplog_meta.update().values(
                    truncated_through=self._stmts.greatest(oplog_meta.c.truncated_through, through)
                )
            )
            return int(removed)

    def quick_check(self, max_problems: int = 10) -> list[str]:
        """SQLite's ``PRAGMA quick_check``: every page read and its structure checked (not the indexes'
        contents); the problems found, none when the file is sound. PostgreSQL checks its own pages."""
        if self.dialect != "sqlite":
            return []
        raw = self.engine.raw_connection()
        try:
            rows = [str(r[0]) for r in raw.cursor().execute(f"PRAGMA quick_check({int(max_problems)})")]
        except Exception as exc:  # the driver's error is the finding, whatever its class
            rows = [f"{exc.__class__.__name__}: {exc}"]
        finally:
            raw.close()
        return [] if rows == ["ok"] else rows

    def close(self, *, checkpoint: bool = True) -> None:
        """Release the connections; on SQLite first checkpoint the write-ahead log into the database file
        and truncate it, so a copy of the file, or the loss of its ``-wal``, loses nothing committed (not
        wanted of a damaged file: ``checkpoint=False``)."""
        if checkpoint and self.dialect == "sqlite":
            self._checkpoint()
        self.engine.dispose()

    def _checkpoint(self) -> None:
        path = sqlite_file(self.url)
        if path is None or not path.exists():
            return  # a new connection would create the file, lost or deleted meanwhile
        try:
            raw = self.engine.raw_connection()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("%s: no checkpoint on close: %s", self.name, exc)
            return
        try:
            # Waits (up to the busy timeout) for readers of older snapshots, e.g. a backing agent's.
            busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                log.warning("%s: the checkpoint on close was blocked by another connection", self.name)
        except Exception as exc:  # closing goes on; the WAL keeps what it holds
            log.warning("%s: no checkpoint on close: %s", self.name, exc)
        finally:
            raw.close()

"""One backing database: JSON documents in named collections plus a same-transaction oplog.

Owns the tables ``documents``, ``oplog`` and ``oplog_meta`` of one database (SQLite file or PostgreSQL
schema) and nothing else. Every write appends, inside the writing transaction, one oplog entry
``{ts, op, ns, _id, doc}`` per changed document. ``ts`` is an integer in microseconds since the epoch that
strictly increases in commit order: writers serialise on a lock taken at the start of the transaction
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL) and a writer's entries get
``max(last ts + 1, now)``; since the lock is held until commit, no reader ever sees ts N+1 without N.
Inserts and updates carry the full post-image and deletes the ``_id``, so replaying any suffix of the oplog
twice gives the same documents.

The oplog is capped by size and by age (:meth:`Store.cap`); ``oplog_meta.truncated_through`` remembers the
highest ``ts`` removed, and a reader asking for entries after an older ``ts`` gets :class:`OplogGap`, never a
silent skip. May import only ``opsmgr.errors`` and SQLAlchemy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from bson import ObjectId
from sqlalchemy.engine import Connection, Engine

from opsmgr.errors import OplogGap, StoreError

Op = Literal["i", "u", "d"]

metadata = sa.MetaData()

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("coll", sa.String(128), primary_key=True),
    sa.Column("id", sa.String(256), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)

oplog = sa.Table(
    "oplog",
    metadata,
    sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("op", sa.String(1), nullable=False),
    sa.Column("ns", sa.String(128), nullable=False),
    sa.Column("doc_id", sa.String(256), nullable=False),
    sa.Column("doc", sa.Text, nullable=True),
    sa.Column("size", sa.Integer, nullable=False),
)

oplog_meta = sa.Table(
    "oplog_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("truncated_through", sa.BigInteger, nullable=False),
)

# An arbitrary constant: the PostgreSQL advisory lock every writer of one database serialises on.
_PG_WRITER_LOCK = 0x6F70736D


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


def _matches(doc: dict[str, Any], eq: dict[str, Any]) -> bool:
    return all(doc.get(k) == v for k, v in eq.items())


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URIs and route them to the psycopg 3 driver SQLAlchemy ships for."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Txn:
    """The writes and reads of one transaction; every write appends its oplog entry here too."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._last_ts: int | None = None
        self.entries: list[OplogEntry] = []

    def _next_ts(self) -> int:
        if self._last_ts is None:
            self._last_ts = self._conn.execute(sa.select(sa.func.max(oplog.c.ts))).scalar() or 0
        ts = max(self._last_ts + 1, now_us())
        self._last_ts = ts
        return ts

    def _log(self, op: Op, ns: str, doc_id: str, doc: dict[str, Any] | None, text: str | None) -> None:
        entry = OplogEntry(self._next_ts(), op, ns, doc_id, doc)
        self._conn.execute(
            oplog.insert().values(
                ts=entry.ts, op=op, ns=ns, doc_id=doc_id, doc=text, size=len(text or "") + len(doc_id) + 32
            )
        )
        self.entries.append(entry)

    def get(self, coll: str, doc_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            sa.select(documents.c.doc).where(documents.c.coll == coll, documents.c.id == doc_id)
        ).first()
        return None if row is None else dict(json.loads(row[0]))

    def find(self, coll: str, **eq: Any) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            sa.select(documents.c.doc).where(documents.c.coll == coll).order_by(documents.c.id)
        )
        docs = (json.loads(r[0]) for r in rows)
        return [d for d in docs if _matches(d, eq)]

    def count(self, coll: str) -> int:
        return int(
            self._conn.execute(
                sa.select(sa.func.count()).select_from(documents).where(documents.c.coll == coll)
            ).scalar_one()
        )

    def insert(self, coll: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert a new document, giving it an ``_id`` when it has none."""
        doc = dict(doc)
        doc.setdefault("_id", new_id())
        doc_id = str(doc["_id"])
        text = _dumps(doc)
        try:
            self._conn.execute(documents.insert().values(coll=coll, id=doc_id, doc=text))
        except sa.exc.IntegrityError as exc:
            raise StoreError(f"duplicate _id {doc_id!r} in {coll}", error_code="DUPLICATE_KEY") from exc
        self._log("i", coll, doc_id, doc, text)
        return doc

    def put(self, coll: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert or fully replace the document with ``doc['_id']``."""
        doc_id = str(doc["_id"])
        text = _dumps(doc)
        updated = self._conn.execute(
            documents.update().where(documents.c.coll == coll, documents.c.id == doc_id).values(doc=text)
        ).rowcount
        if not updated:
            self._conn.execute(documents.insert().values(coll=coll, id=doc_id, doc=text))
        self._log("u" if updated else "i", coll, doc_id, doc, text)
        return doc

    def update(self, coll: str, doc_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Merge ``changes`` into an existing document; returns the post-image, or None if it is absent."""
        current = self.get(coll, doc_id)
        if current is None:
            return None
        current.update(changes)
        return self.put(coll, current)

    def delete(self, coll: str, doc_id: str) -> bool:
        gone = self._conn.execute(
            documents.delete().where(documents.c.coll == coll, documents.c.id == doc_id)
        ).rowcount
        if gone:
            self._log("d", coll, doc_id, None, None)
        return bool(gone)

    def apply(self, entries: Iterable[OplogEntry]) -> int:
        """Replay entries (from this or another store's oplog) idempotently; returns how many were applied."""
        n = 0
        for e in entries:
            if e.op == "d":
                self.delete(e.ns, e.id)
            else:
                assert e.doc is not None
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
    ) -> None:
        self.url = normalise_url(url)
        self.name = name
        self.oplog_max_bytes = oplog_max_bytes
        self.oplog_max_age_s = oplog_max_age_s
        self.dialect = sa.engine.make_url(self.url).get_backend_name()
        try:
            self.engine = self._make_engine()
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                if conn.execute(sa.select(oplog_meta.c.id)).first() is None:
                    conn.execute(oplog_meta.insert().values(id=1, truncated_through=0))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot open the {name} at {self.safe_url}: {exc.__class__.__name__}: {exc}") from exc

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def _make_engine(self) -> Engine:
        if self.dialect == "sqlite":
            engine = sa.create_engine(
                self.url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8
            )

            @sa.event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # Let us issue BEGIN ourselves so that writers can take the write lock up front.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a killed process (not a power cut) without an fsync per commit.
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @sa.event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

            return engine
        return sa.create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)

    @contextmanager
    def _begin(self, write: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.info["write"] = write
            try:
                with conn.begin():
                    if write and self.dialect == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITER_LOCK})
                    yield conn
            finally:
                conn.info.pop("write", None)

    @contextmanager
    def tx(self) -> Iterator[Txn]:
        """A write transaction; commits when the block ends without an exception."""
        try:
            with self._begin(write=True) as conn:
                yield Txn(conn)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"the {self.name} is unavailable: {exc.orig}") from exc

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """A read-only transaction: one consistent view of the documents."""
        try:
            with self._begin(write=False) as conn:
                yield Txn(conn)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"the {self.name} is unavailable: {exc.orig}") from exc

    # Single-statement conveniences, each its own transaction.

    def get(self, coll: str, doc_id: str) -> dict[str, Any] | None:
        with self.read() as t:
            return t.get(coll, doc_id)

    def find(self, coll: str, **eq: Any) -> list[dict[str, Any]]:
        with self.read() as t:
            return t.find(coll, **eq)

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
                OplogEntry(r.ts, r.op, r.ns, r.doc_id, None if r.doc is None else json.loads(r.doc)) for r in rows
            ]

    def oplog_bounds(self) -> OplogBounds:
        with self.read() as t:
            conn = t._conn
            truncated = conn.execute(sa.select(oplog_meta.c.truncated_through)).scalar_one()
            row = conn.execute(
                sa.select(
                    sa.func.min(oplog.c.ts), sa.func.max(oplog.c.ts), sa.func.count(), sa.func.sum(oplog.c.size)
                )
            ).one()
            return OplogBounds(row[0], row[1], int(truncated), int(row[2]), int(row[3] or 0))

    def cap(self, *, max_bytes: int | None = None, max_age_s: float | None = None) -> int:
        """Remove the oldest entries beyond the size or age limit; returns how many were removed."""
        max_bytes = self.oplog_max_bytes if max_bytes is None else max_bytes
        max_age_s = self.oplog_max_age_s if max_age_s is None else max_age_s
        with self.tx() as t:
            conn = t._conn
            cutoff = now_us() - int(max_age_s * 1_000_000)
            through = conn.execute(sa.select(sa.func.max(oplog.c.ts)).where(oplog.c.ts < cutoff)).scalar() or 0
            total = conn.execute(sa.select(sa.func.sum(oplog.c.size)).where(oplog.c.ts > through)).scalar() or 0
            if total > max_bytes:
                # Walk from the newest entry back until the kept suffix fits; everything older goes.
                kept = 0
                for ts, size in conn.execute(
                    sa.select(oplog.c.ts, oplog.c.size).where(oplog.c.ts > through).order_by(oplog.c.ts.desc())
                ):
                    if kept + size > max_bytes:
                        through = ts
                        break
                    kept += size
            if not through:
                return 0
            removed = conn.execute(oplog.delete().where(oplog.c.ts <= through)).rowcount
            conn.execute(
                oplog_meta.update().values(
                    truncated_through=sa.func.max(oplog_meta.c.truncated_through, through)
                    if self.dialect == "sqlite"
                    else sa.func.greatest(oplog_meta.c.truncated_through, through)
                )
            )
            return int(removed)

    def close(self) -> None:
        self.engine.dispose()

"""The schema of one backing database: the tables ``documents``, ``oplog`` and ``oplog_meta``, the row
triggers on ``documents`` that append each write's oplog entry in its own transaction (with the ``ts`` rule
that ``store.engine`` explains), and the statements on them, built once per dialect (SQLite or PostgreSQL).

The store that runs them is ``store.engine``. May import only SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

MAX_COLL_LEN = 128
MAX_ID_LEN = 256

metadata = sa.MetaData()

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("coll", sa.String(MAX_COLL_LEN), primary_key=True),
    sa.Column("id", sa.String(MAX_ID_LEN), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)

oplog = sa.Table(
    "oplog",
    metadata,
    sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("op", sa.String(1), nullable=False),
    sa.Column("ns", sa.String(MAX_COLL_LEN), nullable=False),
    sa.Column("doc_id", sa.String(MAX_ID_LEN), nullable=False),
    sa.Column("doc", sa.Text, nullable=True),
    sa.Column("size", sa.Integer, nullable=False),
)

oplog_meta = sa.Table(
    "oplog_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("truncated_through", sa.BigInteger, nullable=False),
)


def next_ts_sql(dialect: str) -> str:
    """SQL for the next entry's ``ts``: later than every entry kept or truncated, else the clock (in
    microseconds). Evaluated inside the writing transaction, after it took the writer lock."""
    if dialect == "postgresql":
        return (
            "GREATEST(COALESCE((SELECT max(ts) FROM oplog), 0) + 1,"
            " (SELECT truncated_through FROM oplog_meta WHERE id = 1) + 1,"
            " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)"
        )
    return (
        "max(coalesce((SELECT max(ts) FROM oplog), 0) + 1,"
        " (SELECT truncated_through FROM oplog_meta WHERE id = 1) + 1,"
        " CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER))"
    )


# The oplog is appended by row triggers on ``documents``, so no write can skip its entry and a write costs
# one statement. The version suffix lets a later schema replace these without guessing what is installed.
_TRIGGER = "documents_oplog_v1"
_ENTRY = (
    "INSERT INTO oplog (ts, op, ns, doc_id, doc, size) "
    "VALUES ({ts}, {op}, {row}.coll, {row}.id, {doc}, {size})"
)


def install_triggers(conn: Connection, dialect: str) -> None:
    ts = next_ts_sql(dialect)
    new_size = "length(NEW.doc) + length(NEW.id) + 32"
    if dialect == "sqlite":
        for event, entry in (
            ("INSERT", _ENTRY.format(ts=ts, op="'i'", row="NEW", doc="NEW.doc", size=new_size)),
            ("UPDATE", _ENTRY.format(ts=ts, op="'u'", row="NEW", doc="NEW.doc", size=new_size)),
            ("DELETE", _ENTRY.format(ts=ts, op="'d'", row="OLD", doc="NULL", size="length(OLD.id) + 32")),
        ):
            conn.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {_TRIGGER}_{event.lower()} AFTER {event} ON documents "
                f"FOR EACH ROW BEGIN {entry}; END"
            )
        return
    installed = conn.exec_driver_sql(
        "SELECT 1 FROM pg_trigger WHERE tgname = %(name)s AND tgrelid = 'documents'::regclass",
        {"name": _TRIGGER},
    ).first()
    if installed:
        return
    upsert = _ENTRY.format(
        ts=ts, op="CASE TG_OP WHEN 'INSERT' THEN 'i' ELSE 'u' END", row="NEW", doc="NEW.doc", size=new_size
    )
    delete = _ENTRY.format(ts=ts, op="'d'", row="OLD", doc="NULL", size="length(OLD.id) + 32")
    conn.exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'DELETE' THEN {delete}; ELSE {upsert}; END IF; RETURN NULL; END $$"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER {_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON documents "
        f"FOR EACH ROW EXECUTE FUNCTION {_TRIGGER}()"
    )


class Statements:
    """The statements of one dialect, built once: SQLAlchemy then compiles each once and caches it, which
    keeps a write's Python cost that of a plain insert."""

    def __init__(self, dialect: str) -> None:
        key = (documents.c.coll == sa.bindparam("k_coll")) & (documents.c.id == sa.bindparam("k_id"))
        self.get = sa.select(documents.c.doc).where(key)
        self.find = (
            sa.select(documents.c.doc)
            .where(documents.c.coll == sa.bindparam("k_coll"))
            .order_by(documents.c.id)
        )
        # Documents whose id starts with a prefix: compared with substr, whatever the database's collation.
        self.find_prefix = (
            sa.select(documents.c.doc)
            .where(
                (documents.c.coll == sa.bindparam("k_coll"))
                & (sa.func.substr(documents.c.id, 1, sa.bindparam("k_len")) == sa.bindparam("k_prefix"))
            )
            .order_by(documents.c.id)
        )
        self.count = (
            sa.select(sa.func.count())
            .select_from(documents)
            .where(documents.c.coll == sa.bindparam("k_coll"))
        )
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # rowcount tells whether it inserted; SQLAlchemy keeps it for INSERT only when asked to.
        self.insert = insert(documents).on_conflict_do_nothing().execution_options(preserve_rowcount=True)
        # An upsert fires the UPDATE trigger when the document exists and the INSERT one otherwise.
        upsert = insert(documents)
        self.upsert = upsert.on_conflict_do_update(
            index_elements=[documents.c.coll, documents.c.id], set_={"doc": upsert.excluded.doc}
        )
        self.delete = documents.delete().where(key)
        self.greatest: Callable[..., Any] = sa.func.greatest if dialect == "postgresql" else sa.func.max

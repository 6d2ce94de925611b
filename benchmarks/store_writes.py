"""Store writes per second with the same-transaction oplog, against plain inserts of the same documents.

For each engine, in the same run and the same database: N documents written one per transaction through
``Store.insert`` (document + oplog entry + ts assignment under the writer lock), and the same N documents
inserted one per transaction into a plain table of the same shape through the same SQLAlchemy engine. The
two are interleaved in rounds so that machine noise hits both alike. PostgreSQL is a throwaway server
started here (tests/pgserver.py) with its default durability (fsync and synchronous commit on) unless
``--pg-fast``. Prints figures; asserts nothing. Target: the oplog rate is at least 50% of the plain rate.

    python benchmarks/store_writes.py [--docs 3000] [--rounds 3] [--engine sqlite --engine postgresql]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opsmgr.store import Store, new_id
from tests.pgserver import FAST, PgServer

plain_metadata = sa.MetaData()
plain = sa.Table(
    "plain_documents",
    plain_metadata,
    sa.Column("coll", sa.String(128), primary_key=True),
    sa.Column("id", sa.String(256), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)


def make_docs(n: int) -> list[dict[str, Any]]:
    return [
        {"_id": new_id(), "name": f"host-{i}.example.net", "n": i, "tags": ["a", "b"], "note": "x" * 200}
        for i in range(n)
    ]


def store_writes(store: Store, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        store.insert("bench", doc)


def plain_writes(store: Store, docs: list[dict[str, Any]]) -> None:
    # A statement built once and executed with parameters, as the store does, so that both sides pay the
    # same SQLAlchemy overhead per statement.
    insert = plain.insert()
    for doc in docs:
        with store.engine.begin() as conn:
            conn.execute(
                insert,
                {
                    "coll": "bench",
                    "id": doc["_id"],
                    "doc": json.dumps(doc, separators=(",", ":"), sort_keys=True),
                },
            )


def timed(
    fn: Callable[[Store, list[dict[str, Any]]], None], store: Store, docs: list[dict[str, Any]]
) -> float:
    start = time.perf_counter()
    fn(store, docs)
    return time.perf_counter() - start


def measure(engine: str, url: str, n: int, rounds: int) -> tuple[float, float]:
    store = Store(url, name=f"{engine} bench store")
    try:
        plain_metadata.create_all(store.engine)
        warm = make_docs(50)
        store_writes(store, warm)
        plain_writes(store, warm)
        docs = make_docs(n)
        chunks = [docs[i::rounds] for i in range(rounds)]
        t_store = t_plain = 0.0
        for i, chunk in enumerate(chunks):
            # Alternate which goes first so that neither always runs on a warmer cache.
            if i % 2:
                t_store += timed(store_writes, store, chunk)
                t_plain += timed(plain_writes, store, chunk)
            else:
                t_plain += timed(plain_writes, store, chunk)
                t_store += timed(store_writes, store, chunk)
        assert store.oplog_bounds().entries == n + len(warm)
        return n / t_store, n / t_plain
    finally:
        store.close()


def report(label: str, with_oplog: float, plain_rate: float) -> None:
    print(
        f"{label:<28} with oplog {with_oplog:9.0f} writes/s   plain {plain_rate:9.0f} writes/s   "
        f"ratio {with_oplog / plain_rate:6.1%}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=3000, help="documents per engine and per way")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engine", action="append", choices=["sqlite", "postgresql"])
    ap.add_argument(
        "--pg-fast", action="store_true", help="run PostgreSQL with fsync and synchronous_commit off"
    )
    args = ap.parse_args()
    engines = args.engine or ["sqlite", "postgresql"]
    print(
        f"{args.docs} documents each way, one per transaction, {args.rounds} interleaved rounds", flush=True
    )
    if "sqlite" in engines:
        with tempfile.TemporaryDirectory() as tmp:
            rates = measure("sqlite", f"sqlite:///{tmp}/bench.db", args.docs, args.rounds)
            report("SQLite (WAL, sync=NORMAL)", *rates)
    if "postgresql" in engines:
        with PgServer(FAST if args.pg_fast else {}) as pg:
            rates = measure("postgresql", pg.create_database("bench"), args.docs, args.rounds)
            report("PostgreSQL (fsync off)" if args.pg_fast else "PostgreSQL (durable)", *rates)


if __name__ == "__main__":
    main()

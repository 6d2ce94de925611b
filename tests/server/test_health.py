"""Readiness of a real server includes a write to each backing database: a store that answers reads but
takes no write makes ``/health/ready`` a 503 naming it, and once it takes writes again readiness is back;
probing writes at a bounded rate, however often a load balancer asks.

A store is made unwritable the ways an operator meets it: SQLite locked by another writer (tests run as root,
for whom a read-only file mode changes nothing), PostgreSQL switched to read-only transactions.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from opsmgr.server.ops_api import HEALTH, PROBE_EVERY_S
from tests.pgserver import PgServer
from tests.procs import ServerProcess, free_port, wait_for

STORES = {"appdb": "appdb.sqlite", "snapshotStore": "snapshotdb.sqlite", "oplogStore": "oplogdb.sqlite"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        yield srv
    finally:
        srv.stop()


def ready(server: ServerProcess) -> httpx.Response:
    return httpx.get(f"{server.url}/health/ready", timeout=10)


def not_ready_naming(server: ServerProcess, store: str) -> dict[str, str] | None:
    r = ready(server)
    if r.status_code != 503:
        return None
    assert r.json()["status"] == "UNAVAILABLE" and store in r.json()["detail"], r.text
    return dict(r.json()["problems"])


def probe_writes(data_dir: Path, file: str) -> int:
    with sqlite3.connect(f"file:{data_dir / file}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM oplog WHERE ns = ?", (HEALTH,)).fetchone()[0])


def test_a_load_balancer_polling_fast_costs_each_store_a_write_per_probe_period(
    server: ServerProcess,
) -> None:
    before = {file: probe_writes(server.data_dir, file) for file in STORES.values()}
    polls, started = 0, time.monotonic()
    while time.monotonic() - started < 1.5:
        assert ready(server).status_code == 200
        polls += 1
    assert polls >= 20 and PROBE_EVERY_S > 1.5
    for file, count in before.items():
        after = probe_writes(server.data_dir, file)
        # The start-up readiness checks wrote; 1.5 s of polling starts at most one more probe period.
        assert after >= 1 and after - count <= 1, (file, count, after)


def test_a_sqlite_store_locked_by_another_writer_is_not_ready_until_released(server: ServerProcess) -> None:
    assert ready(server).status_code == 200
    holder = sqlite3.connect(server.data_dir / STORES["oplogStore"], isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the one writer: every other write waits
        problems = wait_for(lambda: not_ready_naming(server, "oplogStore"), 20, 0.2, what="readiness 503")
        assert set(problems) == {"oplogStore"}, problems
        assert "write" in problems["oplogStore"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: ready(server).status_code == 200, 20, 0.2, what="readiness back once the lock is gone")


@pytest.mark.postgres
def test_a_read_only_postgresql_store_is_not_ready_until_writable_again(
    tmp_path: Path, pg_server: PgServer
) -> None:
    uris = {name: pg_server.create_database() for name in ("app", "snapshot", "oplog")}
    server = ServerProcess(
        tmp_path / "data",
        free_port(),
        conf_keys={
            "mongo.mongoUri": uris["app"],
            "mms.snapshotMetadataStore.uri": uris["snapshot"],
            "mms.oplogMetadataStore.uri": uris["oplog"],
        },
    ).start()
    snapshot_db = uris["snapshot"].rsplit("/", 1)[1]

    def read_only(on: bool) -> None:
        # The setting applies to new sessions: end the server's, its pool opens new ones.
        with psycopg.connect(
            pg_server.uri, autocommit=True, options="-c default_transaction_read_only=off"
        ) as pg:
            pg.execute(
                f'ALTER DATABASE "{snapshot_db}" SET default_transaction_read_only = {"on" if on else "off"}'
            )
            others = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            pg.execute(f"SELECT pg_terminate_backend(pid) FROM ({others}) AS sessions", (snapshot_db,))

    try:
        assert ready(server).status_code == 200
        read_only(True)
        problems = wait_for(lambda: not_ready_naming(server, "snapshotStore"), 30, 0.2, what="readiness 503")
        assert set(problems) == {"snapshotStore"}, problems
        assert "read-only transaction" in problems["snapshotStore"] and "SQL" not in problems["snapshotStore"]
        read_only(False)
        wait_for(lambda: ready(server).status_code == 200, 30, 0.2, what="readiness back once writable")
    finally:
        server.stop()

"""backup.blockstore_pg: a blockstore in a real PostgreSQL database behaves as the folder one does (the same
stored form, deduplication, grace period, pins, integrity), is shared by several servers, and a daemon over it
snapshots and restores."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from opsmgr.backup import blockstore_pg
from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.blockstore_pg import PgBlocks, database_holds_blocks
from opsmgr.backup.daemon import BackupDaemon, SourceKind
from opsmgr.backup.errors import BlockCorrupt, BlockMissing
from opsmgr.store import Store
from tests.backup.backuptest import FakeClock, StoreAgent, Stores, at, restored, store_documents
from tests.pgserver import PgServer

DATA = b'{"ns": "things", "doc": {"_id": "doc1", "text": "alpha bravo charlie"}}\n' * 3000


@pytest.fixture
def uri(pg_server: PgServer) -> str:
    return pg_server.create_database()


@pytest.fixture
def bs(uri: str) -> Iterator[Blockstore]:
    store = Blockstore(PgBlocks(uri))
    yield store
    store.files.close()


def _sql(uri: str, statement: str, *params: object) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def test_a_block_reads_back_in_the_folder_blockstores_stored_form(bs: Blockstore, tmp_path: Path) -> None:
    put = bs.put(DATA)
    assert put.block_id == hashlib.sha256(DATA).hexdigest() and put.new
    assert bs.get(put.block_id) == DATA
    folder = Blockstore(tmp_path)
    folder.put(DATA)
    assert bs.files.read(put.block_id) == folder.files.path(put.block_id).read_bytes()  # type: ignore[attr-defined]
    assert bs.stored_bytes(put.block_id) == put.stored < len(DATA)
    assert list(bs) == [put.block_id]
    assert bs.files.space() is None


def test_a_second_server_sees_the_blocks_and_deduplicates_against_them(bs: Blockstore, uri: str) -> None:
    other = Blockstore(PgBlocks(uri))
    try:
        block_id = bs.put(DATA).block_id
        assert other.get(block_id) == DATA
        again = other.put(DATA)
        assert again.block_id == block_id and not again.new and again.stored == 0
    finally:
        other.files.close()


def test_concurrent_puts_of_one_block_keep_one_row(bs: Blockstore, uri: str) -> None:
    servers = [Blockstore(PgBlocks(uri)) for _ in range(4)]
    barrier = threading.Barrier(len(servers))

    def put(store: Blockstore) -> None:
        barrier.wait()
        store.put(DATA)

    threads = [threading.Thread(target=put, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in servers:
        s.files.close()
    assert list(bs) == [hashlib.sha256(DATA).hexdigest()]
    assert bs.get(hashlib.sha256(DATA).hexdigest()) == DATA


def test_grooming_keeps_young_and_pinned_blocks_and_a_re_put_refreshes(bs: Blockstore, uri: str) -> None:
    block_id = bs.put(b"young").block_id
    assert not bs.delete(block_id, older_than=time.time() - 600)
    with bs.writer() as writer:
        writer.put(b"young")
        assert not bs.delete(block_id)
    _sql(uri, "UPDATE blocks SET written_at = %s", time.time() - 3600)
    bs.put(b"young")  # deduplicated by another snapshot: young again
    assert not bs.delete(block_id, older_than=time.time() - 600)
    _sql(uri, "UPDATE blocks SET written_at = %s", time.time() - 3600)
    assert bs.delete(block_id, older_than=time.time() - 600)
    assert not bs.exists(block_id) and not bs.delete(block_id)


def test_a_damaged_or_missing_row_is_corrupt_or_missing_never_data(bs: Blockstore, uri: str) -> None:
    good = bs.put(b"good block " * 500).block_id
    bad = bs.put(DATA).block_id
    _sql(uri, "UPDATE blocks SET raw = overlay(raw placing '\\xff'::bytea from 40) WHERE id = %s", bad)
    with pytest.raises(BlockCorrupt):
        bs.get(bad)
    assert [p.block_id for p in bs.verify_all()] == [bad]
    _sql(uri, "DELETE FROM blocks WHERE id = %s", good)
    with pytest.raises(BlockMissing):
        bs.get(good)
    with pytest.raises(BlockMissing):
        bs.get("'; DROP TABLE blocks; --")


def test_every_block_is_walked_in_pages(bs: Blockstore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blockstore_pg, "_ID_BATCH", 3)
    ids = sorted(bs.put(f"block {i}".encode()).block_id for i in range(10))
    assert list(bs) == ids


def test_whether_a_database_holds_blocks_is_read_without_creating_anything(uri: str) -> None:
    assert not database_holds_blocks(uri)
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT to_regclass('blocks')").fetchone() == (None,)
    store = Blockstore(PgBlocks(uri))
    assert not database_holds_blocks(uri)
    store.put(DATA)
    store.files.close()
    assert database_holds_blocks(uri)


def test_a_daemon_snapshots_into_and_restores_from_the_database(
    stores: Stores, clock: FakeClock, tmp_path: Path, uri: str, source_store: Store
) -> None:
    daemon = BackupDaemon(stores, tmp_path / "work", clock, blocks_uri=uri)
    try:
        source = daemon.register_source("g1", "c1", "appdb", SourceKind.BACKING_DATABASE)
        agent = StoreAgent(daemon, source.id, source_store)
        for i in range(200):
            source_store.insert("things", {"_id": f"d{i}", "text": "x" * 500})
        agent.sync()
        daemon.take_snapshot(source.id)
        source_store.insert("things", {"_id": "after"})
        agent.ship()
        assert not (tmp_path / "work" / "blocks").exists()  # the blocks are in the database
        assert database_holds_blocks(uri)
        last = source_store.oplog_bounds().last_ts or 0
        assert restored(daemon, source, at(last)) == store_documents(source_store)
    finally:
        daemon.close()

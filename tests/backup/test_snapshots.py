"""Snapshots: content-defined blocks and their deduplication, atomic visibility (also under SIGKILL), and
restores that refuse missing or corrupt blocks."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.errors import BlockCorrupt, SnapshotBlocksMissing
from opsmgr.backup.positions import PositionKind
from opsmgr.backup.snapshots import (
    SnapshotCatalog,
    SnapshotMeta,
    SnapshotType,
    chunk,
    record_line,
    snapshot_json,
)
from opsmgr.store import Store
from tests.backup.backuptest import StoreAgent, store_documents
from tests.backup.test_blockstore import flip_bit


def records(n: int, size: int = 200, seed: int = 1) -> list[tuple[str, str, bytes]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        key = f'"doc{i:07d}"'
        body = "".join(rnd.choices("abcdefghij", k=size))
        out.append(("things", key, record_line("things", f'{{"_id":{key},"d":{{"b":"{body}"}}}}')))
    return out


def test_blocks_average_the_target_size_and_concatenate_to_the_records() -> None:
    recs = records(5000)
    blocks = list(chunk(recs, target=8192))
    assert b"".join(blocks) == b"".join(r[2] for r in recs)
    mean = sum(map(len, blocks)) / len(blocks)
    assert 8192 / 2 < mean < 8192 * 2
    assert max(map(len, blocks)) <= 8 * 8192 + 300


def test_a_change_touches_only_the_block_it_falls_in() -> None:
    recs = records(5000)
    before = set(chunk(recs, target=8192))
    changed = list(recs)
    ns, key, line = changed[2500]
    changed[2500] = (ns, key, line.replace(b'"b":"', b'"b":"CHANGED'))
    del changed[1000]  # a deleted document
    changed.insert(4000, ("things", '"new"', record_line("things", '{"_id":"new","d":{}}')))
    after = list(chunk(changed, target=8192))
    new = [b for b in after if b not in before]
    assert 1 <= len(new) <= 6  # each edit rewrites its own block (and rarely a neighbour), no cascade


def fill(store: Store, n: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    with store.tx() as t:
        for i in range(n):
            t.put("things", {"_id": f"doc{i:06d}", "body": "".join(rnd.choices("abcdef", k=300))})


def test_an_unchanged_dataset_stores_no_new_blocks_and_a_small_change_few(
    make_daemon: Callable[..., BackupDaemon], source: Source, source_store: Store
) -> None:
    daemon = make_daemon(block_target=4096)
    fill(source_store, 3000)
    agent = StoreAgent(daemon, source.id, source_store)
    agent.sync()
    first = daemon.take_snapshot(source.id)
    assert first.blockCount >= 100 and first.newBlocks == first.blockCount
    unchanged = daemon.take_snapshot(source.id)
    assert unchanged.blockCount == first.blockCount
    assert unchanged.newBlocks / unchanged.blockCount < 0.01
    # 1% of the documents changed, as an application usually does: the recent ones.
    with source_store.tx() as t:
        for i in range(2970, 3000):
            t.update("things", f"doc{i:06d}", {"body": "rewritten"})
    agent.ship()
    changed = daemon.take_snapshot(source.id)
    assert changed.newBlocks <= 3
    slice_blocks = {s.blockId for s in daemon.slice_catalog.slices(source.id)}
    sync_blocks = set(daemon.ingest.syncs.referenced_blocks())  # until grooming drops the snapshotted sync
    stored = first.blockCount + changed.newBlocks + len(slice_blocks) + len(sync_blocks)
    assert len(list(daemon.blockstore)) == stored


def test_a_crash_before_the_metadata_commit_leaves_no_snapshot(
    daemon: BackupDaemon,
    source: Source,
    agent: StoreAgent,
    source_store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fill(source_store, 200)
    agent.sync()

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt("killed between the blocks and the metadata")

    with monkeypatch.context() as m:
        m.setattr(SnapshotCatalog, "commit", crash)
        with pytest.raises(KeyboardInterrupt):
            daemon.take_snapshot(source.id)
    assert daemon.snapshots(source.id) == []
    assert daemon.pitr_window(source.id) == []
    sync_blocks = set(daemon.ingest.syncs.referenced_blocks())  # kept: the head is rebuilt from them
    orphans = [b for b in daemon.blockstore if b not in sync_blocks]
    assert orphans
    assert daemon.groom().blocks_freed == len(orphans)
    assert set(daemon.blockstore) == sync_blocks


def test_a_daemon_killed_mid_snapshot_shows_no_partial_snapshot(
    tmp_path: Path, make_daemon: Callable[..., BackupDaemon], source: Source, source_store: Store
) -> None:
    daemon = make_daemon(block_target=256)  # as the child's
    fill(source_store, 300)
    StoreAgent(daemon, source.id, source_store).sync()
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("snapshot_killer.py")),
            str(tmp_path / "server"),
            str(tmp_path / "blockstore"),
            source.id,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # blocks until the child has written every block
        assert line.startswith("blocks-written"), child.stderr.read() if child.stderr else ""
        assert int(line.split()[1]) > 10
        child.kill()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    assert daemon.snapshots(source.id) == []
    assert daemon.snapshot_catalog.block_lists() == {}
    sync_blocks = set(daemon.ingest.syncs.referenced_blocks())
    orphans = len(list(daemon.blockstore)) - len(sync_blocks)
    assert orphans > 10
    done = daemon.take_snapshot(source.id)
    assert done.newBlocks == 0  # the dead child's blocks are whole and reused, not rewritten
    assert done.blockCount == orphans
    assert daemon.groom().blocks_freed == len(sync_blocks)  # the sync's, its chain snapshotted


def test_a_flipped_bit_is_reported_by_the_integrity_job_and_refused_by_a_restore(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, source_store: Store, tmp_path: Path
) -> None:
    fill(source_store, 200)
    agent.sync()
    snap = daemon.take_snapshot(source.id)
    blocks = daemon.snapshot_catalog.blocks(snap.id) or []
    victim = blocks[len(blocks) // 2]
    flip_bit(daemon.blockstore.files.path(victim))

    # Before the integrity job knows: the restore itself finds the damage and refuses.
    target = Store(f"sqlite:///{tmp_path / 'target.db'}")
    try:
        target.insert("precious", {"_id": "keep-me"})
        plan = daemon.restore_plan(source.id, {"snapshotId": snap.id})
        with pytest.raises(BlockCorrupt) as err:
            daemon.restore_into_store(plan, target)
        assert err.value.http_status == 409 and victim in err.value.detail
        assert store_documents(target) == {("precious", "keep-me"): {"_id": "keep-me"}}  # untouched
        with pytest.raises(BlockCorrupt):
            list(daemon.restore_documents(plan))
    finally:
        target.close()

    report = daemon.integrity_check()
    assert [(p["blockId"], p["usedBy"]) for p in report["problems"]] == [(victim, [f"snapshot:{snap.id}"])]
    assert report["blocksChecked"] == len(blocks) + len(daemon.ingest.syncs.referenced_blocks())
    status = daemon.status(source.id)
    assert status["integrityProblems"] == 1 and status["sourceIntegrityProblems"] == 1
    # Once it has reported the block, a restore needing it is refused before it starts.
    with pytest.raises(BlockCorrupt) as err:
        daemon.restore_plan(source.id, {"snapshotId": snap.id})
    assert err.value.http_status == 409 and "found by the integrity job" in err.value.detail


def test_a_missing_block_or_block_list_is_409_snapshot_blocks_missing(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, source_store: Store
) -> None:
    fill(source_store, 100)
    agent.sync()
    snap = daemon.take_snapshot(source.id)
    blocks = daemon.snapshot_catalog.blocks(snap.id) or []
    daemon.blockstore.files.path(blocks[0]).unlink()
    with pytest.raises(SnapshotBlocksMissing) as err:
        daemon.restore_plan(source.id, {"snapshotId": snap.id})
    assert err.value.http_status == 409
    assert err.value.detail.startswith("snapshot blocks missing")
    assert err.value.parameters["missingBlocks"] == [blocks[0]]
    # The snapshot metadata store restored to before the snapshot: the metadata itself is gone.
    daemon.snapshot_catalog.delete(source.id, [snap.id])
    with pytest.raises(SnapshotBlocksMissing):
        daemon.restore_plan(source.id, {"snapshotId": snap.id})


def test_snapshot_progress_and_api_shape(daemon: BackupDaemon, source: Source, agent: StoreAgent) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    snap = daemon.take_snapshot(source.id)
    progress = daemon.progress(snap.id)
    assert progress is not None and progress.fraction == 1.0 and "complete" in progress.message
    [shown] = daemon.snapshots_json(source.id)
    assert shown["id"] == snap.id and shown["complete"] is True
    assert shown["groupId"] == "g1" and shown["clusterId"] == "c1"
    assert shown["parts"][0]["replicaSetName"] == "appdb"
    assert shown["lastOplogAppliedTimestamp"]["time"] == snap.position // 1_000_000
    assert shown["expires"] is not None


@pytest.mark.parametrize(("compression", "shown"), [("zlib:6", "GZIP"), ("none", "NONE"), ("zstd:1", "ZSTD")])
def test_a_snapshot_shows_the_compression_it_was_taken_with(compression: str, shown: str) -> None:
    meta = SnapshotMeta(
        "s1",
        "src",
        "g",
        "c",
        "rs0",
        PositionKind.BSON,
        "chain",
        1,
        1_000,
        SnapshotType.SCHEDULED,
        compression=compression,
    )
    assert snapshot_json(meta)["parts"][0]["compressionSetting"] == shown
    assert SnapshotMeta.from_doc(meta.to_doc()).compression == compression

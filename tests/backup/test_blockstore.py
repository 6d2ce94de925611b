"""The blockstore: content addressing, deduplication, atomic writes, verification on read, grooming safety."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from opsmgr.backup.blockstore import TMP_MAX_AGE_S, Blockstore
from opsmgr.backup.errors import BlockCorrupt, BlockMissing, SnapshotBlocksMissing


def flip_bit(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_block_is_named_by_the_sha256_of_its_content_and_reads_back(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    data = b"some documents\n" * 1000
    put = bs.put(data)
    assert put.block_id == hashlib.sha256(data).hexdigest()
    assert put.new and put.size == len(data)
    assert 0 < put.stored < len(data)  # compressed
    assert bs.get(put.block_id) == data
    assert list(bs) == [put.block_id]


def test_incompressible_data_is_stored_as_is(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    data = os.urandom(4096)
    put = bs.put(data)
    assert bs.get(put.block_id) == data
    assert put.stored < len(data) + 64


def test_a_block_already_present_is_not_rewritten(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    first = bs.put(b"x" * 10_000)
    path = bs.path(first.block_id)
    inode = path.stat().st_ino
    again = bs.put(b"x" * 10_000)
    assert again.block_id == first.block_id
    assert not again.new and again.stored == 0
    assert path.stat().st_ino == inode
    assert len(list(bs)) == 1


def test_writes_leave_no_temporary_files_and_stale_ones_are_removed_on_open(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    bs.put(b"a")
    assert list(bs.tmp.iterdir()) == []
    stale = bs.tmp / "deadbeef.killed-writer"
    stale.write_bytes(b"half a block")
    old = time.time() - TMP_MAX_AGE_S - 10
    os.utime(stale, (old, old))
    fresh = bs.tmp / "cafe.in-flight"
    fresh.write_bytes(b"someone is writing this")
    Blockstore(tmp_path)
    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.parametrize("damage", ["flip-payload", "flip-header", "truncate"])
def test_a_damaged_block_is_refused_on_read_and_reported_by_verification(tmp_path: Path, damage: str) -> None:
    bs = Blockstore(tmp_path)
    good = bs.put(b"good block " * 500).block_id
    bad = bs.put(b"bad block " * 500).block_id
    path = bs.path(bad)
    if damage == "flip-payload":
        flip_bit(path)
    elif damage == "flip-header":
        flip_bit(path, 0)
    else:
        path.write_bytes(path.read_bytes()[:5])
    with pytest.raises(BlockCorrupt) as err:
        bs.get(bad)
    assert err.value.block_id == bad
    assert err.value.http_status == 409
    assert bad in err.value.detail
    assert [p.block_id for p in bs.verify_all()] == [bad]
    assert bs.get(good) == b"good block " * 500


def test_a_missing_block_is_a_409_snapshot_blocks_missing(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    block_id = bs.put(b"soon gone").block_id
    bs.path(block_id).unlink()
    with pytest.raises(BlockMissing) as err:
        bs.get(block_id)
    assert isinstance(err.value, SnapshotBlocksMissing)
    assert err.value.http_status == 409
    assert err.value.detail.startswith("snapshot blocks missing")
    with pytest.raises(BlockMissing):
        bs.get("../../etc/passwd")


def test_delete_keeps_blocks_younger_than_the_grace_period_and_pinned_ones(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    block_id = bs.put(b"young").block_id
    assert not bs.delete(block_id, older_than=time.time() - 600)
    assert bs.exists(block_id)
    with bs.writer() as writer:
        writer.put(b"young")  # a snapshot referencing it is being written
        assert not bs.delete(block_id)
    assert bs.delete(block_id)
    assert not bs.exists(block_id)
    assert not bs.delete(block_id)


def test_a_deduplicated_put_refreshes_the_block_for_other_groomers(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    block_id = bs.put(b"old block").block_id
    old = time.time() - 3600
    os.utime(bs.path(block_id), (old, old))
    bs.put(b"old block")
    assert not bs.delete(block_id, older_than=time.time() - 600)
    assert bs.exists(block_id)

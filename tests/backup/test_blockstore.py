"""The blockstore: content addressing, deduplication, atomic writes, verification on read, grooming safety."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import zstandard

from opsmgr.backup.blockstore import TMP_MAX_AGE_S, Blockstore, Codec, Compression
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
    path = bs.files.path(first.block_id)
    inode = path.stat().st_ino
    again = bs.put(b"x" * 10_000)
    assert again.block_id == first.block_id
    assert not again.new and again.stored == 0
    assert path.stat().st_ino == inode
    assert len(list(bs)) == 1


def test_writes_leave_no_temporary_files_and_stale_ones_are_removed_on_open(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    bs.put(b"a")
    assert list(bs.files.tmp.iterdir()) == []
    stale = bs.files.tmp / "deadbeef.killed-writer"
    stale.write_bytes(b"half a block")
    old = time.time() - TMP_MAX_AGE_S - 10
    os.utime(stale, (old, old))
    fresh = bs.files.tmp / "cafe.in-flight"
    fresh.write_bytes(b"someone is writing this")
    Blockstore(tmp_path)
    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.parametrize("damage", ["flip-payload", "flip-header", "truncate"])
def test_a_damaged_block_is_refused_on_read_and_reported_by_verification(tmp_path: Path, damage: str) -> None:
    bs = Blockstore(tmp_path)
    good = bs.put(b"good block " * 500).block_id
    bad = bs.put(b"bad block " * 500).block_id
    path = bs.files.path(bad)
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
    bs.files.path(block_id).unlink()
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
    os.utime(bs.files.path(block_id), (old, old))
    bs.put(b"old block")
    assert not bs.delete(block_id, older_than=time.time() - 600)
    assert bs.exists(block_id)


def test_new_blocks_are_zstd_and_the_header_names_the_codec(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    data = b'{"_id": "doc1", "text": "alpha bravo charlie"}\n' * 2000
    put = bs.put(data)
    raw = bs.files.path(put.block_id).read_bytes()
    assert raw[4] == 2  # the codec byte: zstd
    assert zstandard.ZstdDecompressor().decompress(raw[13:]) == data
    assert bs.get(put.block_id) == data


@pytest.mark.parametrize("old", ["zlib:1", "zlib:9", "none", "zstd:19"])
def test_blocks_written_with_another_codec_stay_readable(tmp_path: Path, old: str) -> None:
    data = b"a record line of a snapshot written by an earlier version\n" * 3000
    block_id = Blockstore(tmp_path, compression=Compression.parse(old)).put(data).block_id
    reopened = Blockstore(tmp_path)  # zstd:1
    assert reopened.get(block_id) == data
    assert reopened.verify(block_id) is None
    again = reopened.put(data)  # the same content is the same block whatever the codec: deduplicated
    assert again.block_id == block_id and not again.new


def test_a_zstd_frame_that_lies_about_its_size_is_corrupt(tmp_path: Path) -> None:
    bs = Blockstore(tmp_path)
    data = b"x" * 100_000
    path = bs.files.path(bs.put(data).block_id)
    raw = bytearray(path.read_bytes())
    raw[5:13] = (len(data) + 1).to_bytes(8, "big")  # the header's uncompressed length
    path.write_bytes(bytes(raw))
    with pytest.raises(BlockCorrupt, match="zstd"):
        bs.get(hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zstd", Compression(Codec.ZSTD, 1)),
        ("ZSTD:3", Compression(Codec.ZSTD, 3)),
        ("zlib", Compression(Codec.ZLIB, 1)),
        ("zlib:9", Compression(Codec.ZLIB, 9)),
        ("none", Compression(Codec.NONE, 0)),
    ],
)
def test_compression_settings_parse(text: str, expected: Compression) -> None:
    assert Compression.parse(text) == expected
    assert Compression.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["gzip", "zstd:0", "zstd:20", "zlib:x", "none:1", ""])
def test_bad_compression_settings_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"zstd\[:1-19\], zlib\[:1-9\] or none"):
        Compression.parse(text)


def test_a_block_file_read_in_short_pieces_comes_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bs = Blockstore(tmp_path, compression=Compression.parse("none"))
    data = os.urandom(300_000)
    block_id = bs.put(data).block_id
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 65_536)))
    assert bs.get(block_id) == data

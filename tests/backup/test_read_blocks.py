"""The restore's read path (``snapshots.read_blocks``): blocks decompressed and verified by a thread pool
ahead of the writer come out in the snapshot's order, never more than ``ahead`` of them wait in memory, and
a missing or corrupt block fails the read where it falls, with the same error a one-at-a-time read raises."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.errors import BlockCorrupt, BlockMissing
from opsmgr.backup.snapshots import READ_AHEAD_PER_WORKER, read_blocks
from tests.backup.test_blockstore import flip_bit


def contents(n: int) -> list[bytes]:
    return [f"block {i}\n".encode() * (2000 + 37 * i) for i in range(n)]


class CountingBlockstore(Blockstore):
    """Counts the reads started and the most running at once; the first read can be held back."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.lock = threading.Lock()
        self.started = 0
        self.running = 0
        self.most_running = 0
        self.hold_first_until: threading.Event | None = None
        self.first: str | None = None

    def get(self, block_id: str) -> bytes:
        with self.lock:
            self.started += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if block_id == self.first and self.hold_first_until is not None:
                assert self.hold_first_until.wait(20), "the later blocks were never read"
            return super().get(block_id)
        finally:
            with self.lock:
                self.running -= 1


def stored(bs: Blockstore, n: int) -> tuple[list[str], list[bytes]]:
    datas = contents(n)
    return [bs.put(d).block_id for d in datas], datas


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> bool:
    """Polls ``condition`` until it holds or ``timeout`` seconds pass (the pool's threads run meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_blocks_come_out_in_the_snapshots_order_when_later_ones_are_ready_first(tmp_path: Path) -> None:
    bs = CountingBlockstore(tmp_path)
    ids, datas = stored(bs, 12)
    later_read = threading.Event()
    bs.first, bs.hold_first_until = ids[0], later_read
    reads = read_blocks(bs, ids, workers=3, ahead=3)
    out: list[bytes] = []
    first = threading.Thread(target=lambda: out.append(next(reads)))
    first.start()
    # The first block is held while the two read beside it finish: they are ready before it.
    assert wait_until(lambda: bs.started == 3 and bs.running == 1), (bs.started, bs.running)
    later_read.set()
    first.join(20)
    out.extend(reads)
    assert out == datas
    assert bs.most_running >= 2, "blocks are read by several threads at once"


@pytest.mark.parametrize(("workers", "ahead"), [(1, 1), (2, 4), (4, 3)])
def test_no_more_than_ahead_blocks_are_read_and_not_yet_taken(
    tmp_path: Path, workers: int, ahead: int
) -> None:
    bs = CountingBlockstore(tmp_path)
    ids, datas = stored(bs, 10)
    taken: list[bytes] = []
    for data in read_blocks(bs, ids, workers=workers, ahead=ahead):
        taken.append(data)
        # Read ahead up to the bound (the pipeline fills) and never past it, however slow the writer.
        wanted = min(len(ids), len(taken) + ahead)
        assert wait_until(lambda w=wanted: bs.started == w and bs.running == 0), (bs.started, wanted)
        assert bs.started - len(taken) <= ahead
    assert taken == datas
    assert bs.most_running <= workers


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_bad_block_fails_the_read_where_it_falls_with_the_one_at_a_time_error(
    tmp_path: Path, damage: str
) -> None:
    bs = Blockstore(tmp_path)
    ids, datas = stored(bs, 10)
    victim = ids[6]
    if damage == "corrupt":
        flip_bit(bs.files.path(victim))
    else:
        bs.files.path(victim).unlink()
    with pytest.raises((BlockCorrupt, BlockMissing)) as serial:
        bs.get(victim)
    delivered: list[bytes] = []
    with pytest.raises(type(serial.value)) as err:
        for data in read_blocks(bs, ids, workers=4, ahead=8):
            delivered.append(data)
    assert err.value.block_id == victim and err.value.detail == serial.value.detail
    assert delivered == datas[:6], "every block before the bad one, none after it"


def test_a_writer_that_stops_early_leaves_no_read_running(tmp_path: Path) -> None:
    bs = CountingBlockstore(tmp_path)
    ids, datas = stored(bs, 20)
    reads = read_blocks(bs, ids, workers=2, ahead=4)
    assert next(reads) == datas[0]
    reads.close()
    assert bs.running == 0 and bs.started <= 1 + 4


def test_by_default_a_stalled_writer_leaves_eight_blocks_per_worker_read_ahead(tmp_path: Path) -> None:
    # A restore's writer stops for a whole direct write of its output (8 MB) while the workers go on: with
    # 2 blocks per worker they sat idle 35-40% of a 1 GB restore.
    bs = CountingBlockstore(tmp_path)
    ids, datas = stored(bs, 40)
    reads = read_blocks(bs, ids, workers=2)
    assert next(reads) == datas[0]
    assert READ_AHEAD_PER_WORKER == 8
    assert wait_until(lambda: bs.started == 1 + 16 and bs.running == 0), bs.started
    assert list(reads) == datas[1:]

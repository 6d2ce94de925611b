"""backup.snapshots.ProgressBoard over a shared store: the progress of a snapshot or a restore that one
server makes is what every server sharing the snapshot metadata store shows (within about a second), and the
server doing the work shows its own latest."""

from __future__ import annotations

from pathlib import Path

from opsmgr.backup.snapshots import PROGRESS_WRITE_S, Progress, ProgressBoard
from opsmgr.store import Store
from tests.clock import Clock


def test_progress_made_on_one_server_is_shown_by_the_others(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'snapshots.db'}")
    clock = Clock()
    worker, other = ProgressBoard(store, clock), ProgressBoard(store, clock)
    assert other.get("s1") is None
    worker.set("s1", Progress(0.0, "queued"))
    assert other.get("s1") == Progress(0.0, "queued")
    clock.now += PROGRESS_WRITE_S
    worker.set("s1", Progress(0.1, "1 of 10 blocks"))
    worker.set("s1", Progress(0.2, "2 of 10 blocks"))  # within the second: not written yet
    assert worker.get("s1") == Progress(0.2, "2 of 10 blocks")
    assert other.get("s1") == Progress(0.1, "1 of 10 blocks")
    clock.now += PROGRESS_WRITE_S
    worker.set("s1", Progress(0.3, "3 of 10 blocks"))
    assert other.get("s1") == Progress(0.3, "3 of 10 blocks")
    worker.set("s1", Progress(1.0, "done"))  # an end is written at once
    assert other.get("s1") == Progress(1.0, "done")
    # A server that queued the work earlier shows the newer progress another server made since.
    other.set("s2", Progress(0.0, "queued"))
    clock.now += 1
    worker.set("s2", Progress(0.5, "half"))
    assert other.get("s2") == Progress(0.5, "half")
    # Long finished work is forgotten, here and in the store.
    worker.forget(clock.now)
    assert worker.get("s1") is None and other.get("s1") is None
    store.close()


def test_failure_is_written_at_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'snapshots.db'}")
    clock = Clock()
    worker, other = ProgressBoard(store, clock), ProgressBoard(store, clock)
    worker.set("s1", Progress(0.4, "4 of 10 blocks"))
    worker.set("s1", Progress(0.0, "failed: disk full"))
    assert other.get("s1") == Progress(0.0, "failed: disk full")
    store.close()


def test_without_a_store_it_is_this_process_s_only() -> None:
    board = ProgressBoard()
    board.set("s1", Progress(0.5, "half"))
    assert board.get("s1") == Progress(0.5, "half") and ProgressBoard().get("s1") is None

"""Concurrent writers, as threads of one process and as separate processes: ts order is commit order, so a
reader that tails the oplog while they write never misses an entry that later shows up behind it."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from opsmgr.errors import StoreError
from opsmgr.store import OplogEntry, Store, engine
from tests.at_once import errors_opening_at_once
from tests.store.store_writer import COLL, run_stream, state_after
from tests.store.storetest import WriterProcess, all_entries

WRITERS = 4
WRITES = 60


class Tailer:
    """Reads the oplog incrementally, as fast as it can, until told to stop (then drains what is left)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: list[OplogEntry] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            after = 0
            while True:
                stopping = self.stop.is_set()
                page = self.store.oplog_after(after, limit=10)
                self.seen += page
                after = page[-1].ts if page else after
                if stopping and not page:
                    return
        except BaseException as exc:
            self.error = exc

    def finish(self) -> list[OplogEntry]:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive() and self.error is None, self.error
        return self.seen


def check(store: Store, tailer: Tailer, seen_while_writing: int, prefixes: list[str]) -> None:
    seen = tailer.finish()
    assert seen_while_writing > 0, "the reader should have tailed while the writers wrote"
    everything = all_entries(store, page=1000)
    # Had some writer committed an entry with a smaller ts after the reader moved past it, the reader would
    # have skipped it and its list would differ from the full oplog read at the end.
    assert [e.ts for e in seen] == [e.ts for e in everything]
    assert seen == everything
    assert all(a.ts < b.ts for a, b in itertools.pairwise(everything))
    assert len(everything) == WRITERS * WRITES
    expected = {k: v for p in prefixes for k, v in state_after(p, WRITES).items()}
    assert {d["_id"]: d for d in store.find(COLL)} == expected


def test_concurrent_writer_threads(store: Store) -> None:
    prefixes = [f"t{n}/" for n in range(WRITERS)]
    tailer = Tailer(store)
    errors: list[BaseException] = []

    def write(prefix: str) -> None:
        try:
            run_stream(store, prefix, WRITES, lambda _line: None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in prefixes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    check(store, tailer, len(tailer.seen), prefixes)


def test_concurrent_writer_processes(
    new_store_url: Callable[[], str],
    make_store: Callable[..., Store],
    spawn_writer: Callable[[str, str, int], WriterProcess],
) -> None:
    url = new_store_url()
    prefixes = [f"p{n}/" for n in range(WRITERS)]
    # The children start on a database nobody has opened yet: they also race to create the schema.
    writers = [spawn_writer(url, p, WRITES) for p in prefixes]
    store = make_store(url)
    tailer = Tailer(store)
    for w in writers:
        assert len(w.finish(120)) == WRITES, w.stderr()
        assert w.proc.returncode == 0, w.stderr()
    check(store, tailer, len(tailer.seen), prefixes)


def _open_and_close(path: str) -> None:
    Store(f"sqlite:///{path}", name="store").close()


def test_processes_opening_a_new_store_file_at_once_all_open_it(tmp_path: Path) -> None:
    """A server starting while `opsmgr keys create` opens the same new application database: neither may fail
    with "database is locked" (SQLite refuses a racing switch to WAL without waiting)."""
    assert errors_opening_at_once(_open_and_close, tmp_path) == []


def test_a_writer_queued_behind_another_thread_gives_up_with_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writers of one process queue on the store's own lock (SQLite's wait polls with sleeps): one that
    waits past the lock timeout gets the same StoreError (a 503 to agents) as SQLite's own wait gives, and
    the lock is free again once the holder commits."""
    monkeypatch.setattr(engine, "_LOCK_TIMEOUT_S", 0.2)
    store = Store(f"sqlite:///{tmp_path / 'writers.db'}", name="application database")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.tx() as t:
            t.put(COLL, {"_id": "held", "n": 1})
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with (
            pytest.raises(StoreError, match="unavailable: another write transaction of this server"),
            store.tx() as t,
        ):
            t.put(COLL, {"_id": "queued", "n": 2})
    finally:
        release.set()
        holder.join(30)
    with store.tx() as t:
        t.put(COLL, {"_id": "after", "n": 3})
    assert store.get(COLL, "held") is not None and store.get(COLL, "after") is not None
    assert store.get(COLL, "queued") is None
    store.close()

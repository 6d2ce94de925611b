"""Shared by the backup benchmarks: a daemon on throw-away stores and a generated dataset of a given size.

Documents are generated, not read from a source store, so that a 1 GB dataset costs its load into the head
and nothing more: an initial sync receives them as the agent would send them.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opsmgr.backup.blockstore import Compression
from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from tests.backup.backuptest import FakeClock, open_stores

WORDS = [
    w * n for w in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel") for n in (1, 2)
]
START = 1_700_000_000_000_000  # a STORE position (microseconds)


def document(i: int, size: int, rnd: random.Random, version: int = 0) -> dict[str, Any]:
    words: list[str] = []
    length = 0
    while length < size - 80:
        word = rnd.choice(WORDS) + str(rnd.randrange(1000))
        words.append(word)
        length += len(word) + 1
    return {"_id": f"doc{i:09d}", "n": i, "version": version, "text": " ".join(words)}


def documents(n: int, size: int, seed: int = 1) -> Iterator[tuple[str, dict[str, Any]]]:
    rnd = random.Random(seed)
    for i in range(n):
        yield "things", document(i, size, rnd)


@contextmanager
def bench_daemon(
    folder: Path,
    block_kib: int = 1024,
    compression: Compression | None = None,
    blocks_uri: str | None = None,
) -> Iterator[BackupDaemon]:
    stores = open_stores(folder / "server")
    daemon = BackupDaemon(
        stores,
        folder / "blockstore",
        FakeClock(),
        block_target=block_kib * 1024,
        compression=compression,
        blocks_uri=blocks_uri,
    )
    try:
        yield daemon
    finally:
        daemon.close()
        stores.close()


def synced_source(daemon: BackupDaemon, n: int, size: int) -> tuple[Source, float]:
    """A source whose head holds ``n`` generated documents; returns it and the load time."""
    src = daemon.register_source("bench", "bench", "db", SourceKind.BACKING_DATABASE)
    started = time.perf_counter()
    daemon.initial_sync(src.id, START, documents(n, size), START)
    return src, time.perf_counter() - started


def ship_updates(
    daemon: BackupDaemon,
    src: Source,
    ids: list[int],
    size: int,
    after: int,
    per_slice: int = 5000,
    seed: int = 2,
) -> int:
    """Ships full post-image updates of the documents ``ids`` as slices; returns the acknowledged position."""
    rnd = random.Random(seed)
    position = after
    for i in range(0, len(ids), per_slice):
        entries = []
        for j in ids[i : i + per_slice]:
            position += 1
            doc = document(j, size, rnd, version=position)
            entries.append({"ts": position, "op": "u", "ns": "things", "_id": doc["_id"], "doc": doc})
        result = daemon.ingest_slice(src.id, entries[0]["ts"] - 1, position, entries)
        assert result.acknowledged == position, result
    return position


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"

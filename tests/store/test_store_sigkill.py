"""SIGKILL during a stream of writes loses no acknowledged write and leaves no hole in the oplog."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable

from opsmgr.store import Store
from tests.store.store_writer import COLL, state_after
from tests.store.storetest import WriterProcess, all_entries


def test_sigkill_mid_stream_loses_no_acknowledged_write(
    new_store_url: Callable[[], str],
    make_store: Callable[..., Store],
    spawn_writer: Callable[[str, str, int], WriterProcess],
) -> None:
    url = new_store_url()
    committed: dict[str, int] = {}
    # Twice, so that the second writer also starts on a database whose last writer was killed.
    for prefix, acks_before_kill in (("a/", 150), ("b/", 60)):
        writer = spawn_writer(url, prefix, -1)
        writer.wait_for_acks(acks_before_kill)
        os.kill(writer.proc.pid, signal.SIGKILL)
        acks = writer.finish()
        assert writer.proc.returncode == -signal.SIGKILL
        assert [int(line.split()[2]) for line in acks] == list(range(len(acks)))

        store = make_store(url)
        docs = {d["_id"]: d for d in store.find(COLL) if d["_id"].startswith(prefix)}
        # Every acknowledged write is there; the write in flight when the kill came may or may not be.
        acked, in_flight = state_after(prefix, len(acks)), state_after(prefix, len(acks) + 1)
        assert docs in (acked, in_flight)
        committed[prefix] = len(acks) + (docs == in_flight)

    entries = all_entries(store, page=500)
    assert all(a.ts < b.ts for a, b in itertools.pairwise(entries))
    # One entry per committed write, none missing...
    assert len(entries) == sum(committed.values())
    # ...and replaying the whole oplog onto an empty store gives back exactly the documents.
    replica = make_store()
    with replica.tx() as t:
        t.apply(entries)
    assert replica.find(COLL) == store.find(COLL)
    assert replica.collections() == store.collections() == [COLL]

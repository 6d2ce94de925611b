"""Replacing a backing database's documents with restored ones, keeping its restore fence. I/O on one Store.

The restore that calls this has written the fence (``store.installation``) first and removes it last, so the
fence must survive the replacement, and a fence that was itself backed up (a restore in progress when the
backup ran) must not come back with the restored documents. Documents are written in batches, each its own
transaction: the fence, not atomicity, keeps a server off a half-restored database. May import
``opsmgr.store``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opsmgr.store.engine import Store
from opsmgr.store.installation import RESTORE_FENCE

BATCH = 2000


def replace_documents(
    store: Store,
    docs: Iterable[tuple[str, dict[str, Any]]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Deletes every document but the fence, then writes ``docs``; ``progress`` gets the count written."""
    removed = 0
    for coll in store.collections():
        if coll == RESTORE_FENCE:
            continue
        ids = [str(d["_id"]) for d in store.find(coll)]
        for i in range(0, len(ids), BATCH):
            with store.tx() as t:
                removed += sum(t.delete(coll, doc_id) for doc_id in ids[i : i + BATCH])
    written = 0
    batch: list[tuple[str, dict[str, Any]]] = []

    def flush() -> None:
        nonlocal written
        with store.tx() as t:
            for ns, doc in batch:
                t.put(ns, doc)
        written += len(batch)
        batch.clear()
        if progress is not None:
            progress(written)

    for ns, doc in docs:
        if ns == RESTORE_FENCE:
            continue
        batch.append((ns, doc))
        if len(batch) >= BATCH:
            flush()
    flush()
    return {"removed": removed, "documents": written}

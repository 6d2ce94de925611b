"""Replacing backing databases' documents with restored ones, under the restore's fences. I/O on Stores.

A restore fences every target (``store.installation``) before it changes any and removes the fences last, so a
fence must survive the replacement, and a fence that was itself backed up (a restore in progress when the
backup ran) must not come back with the restored documents. Documents are written in batches, each its own
transaction: the fence, not atomicity, keeps a server off a half-restored database (the crash point
``store-restore-batch``, after each batch, lets a test kill a restore there). A restore that ends before it
writes removes its fences (:func:`unfence_unwritten`); one that ends once writing has begun leaves them, and a
later restore takes them over (:func:`fence_all`). May import ``opsmgr.store`` and
``opsmgr.backup.crashpoints``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opsmgr.backup import crashpoints
from opsmgr.store.engine import Store
from opsmgr.store.installation import RESTORE_FENCE, read_fence, remove_fence, write_fence

BATCH = 2000


def fence_all(stores: dict[str, Store], job_id: str, written_by: str, download: str) -> dict[str, str]:
    """Fences every target of restore ``job_id`` before any is changed. The fence of an interrupted restore
    is taken over (its store may be half-restored, so it is replaced in one transaction, never lifted): the
    caller holds the restore lock, so no other restore is running. Returns ``{store: the job taken over}``.
    """
    taken: dict[str, str] = {}
    for name, store in stores.items():
        old = read_fence(store)
        if old is not None and old.restore_job_id != job_id:
            taken[name] = old.restore_job_id
        write_fence(
            store,
            restore_job_id=job_id,
            store_label=name,
            written_by=written_by,
            download=download,
            taking_over=taken.get(name),
        )
    return taken


def unfence_unwritten(stores: dict[str, Store], job_id: str, taken: dict[str, str]) -> None:
    """Nothing was written: removes restore ``job_id``'s fences, except on the stores whose fence it took
    over from an interrupted restore (still half-restored by that one)."""
    for name, store in stores.items():
        if name not in taken and (fence := read_fence(store)) is not None and fence.restore_job_id == job_id:
            remove_fence(store, restore_job_id=job_id)


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
        crashpoints.reached("store-restore-batch")
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

"""A source's head kept up to date from the shared catalog by the server that owns the backup job.

Ingestion at any server only records (slices, initial syncs: ``backup.slices``, ``backup.syncs``); a head
(``backup.head``) is a local file of the job's owner, so when the job moves to another server (its lease
taken over) the new owner may have no head, or one it built while it last held the job. :func:`verdict`
says whether the head on hand can be caught up by applying the slices after it, or must be rebuilt: it is
missing or cut short, of another chain than the source's current one, past the chain's tip (the catalog
was restored to an earlier point) or behind slices grooming already deleted. A rebuild starts from
:func:`base`: the chain's latest complete snapshot, else the chain's finished initial sync; it is built in
a new file and made current only once whole, so a server killed during a rebuild leaves the old head (or
none) and an orphan file the next promotion removes. Then the slices after the base are applied, in order,
each once (the head's position moves with each slice's commit). The owner publishes where its head is
(``backup_heads`` in the oplog metadata store) for the reads any server serves.

May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from enum import StrEnum

from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.head import Head, Heads, HeadState
from opsmgr.backup.slices import Chain, SliceCatalog, read_changes
from opsmgr.backup.snapshots import SnapshotCatalog, SnapshotMeta, read_records, snapshot_blocks
from opsmgr.backup.syncs import SyncCatalog, SyncRecord

log = logging.getLogger("opsmgr.backup")

HEADS = "backup_heads"


class Verdict(StrEnum):
    KEEP = "keep"  # apply the slices after it
    REBUILD = "rebuild"


def verdict(state: HeadState | None, chain: Chain, next_slice_stored: bool) -> Verdict:
    """Whether the head with ``state`` can be caught up on ``chain`` (``next_slice_stored``: the slice just
    after the head's position is in the catalog)."""
    if state is None or not state.loaded or state.sync_id != chain.chain or chain.tip is None:
        return Verdict.REBUILD
    if state.applied > chain.tip or (state.applied < chain.tip and not next_slice_stored):
        return Verdict.REBUILD
    return Verdict.KEEP


def base(chain: str, snapshots: list[SnapshotMeta], syncs: list[SyncRecord]) -> tuple[str, int, int] | None:
    """``(snapshot:<id> or sync:<id>, position, minValid)`` a head of ``chain`` is rebuilt from, or None."""
    mine = [m for m in snapshots if m.chain == chain]
    if mine:
        latest = max(mine, key=lambda m: (m.position, m.createdAt))
        return f"snapshot:{latest.id}", latest.position, latest.position
    sync = next((s for s in syncs if s.id == chain and s.loaded), None)
    return None if sync is None else (f"sync:{sync.id}", sync.position, sync.minValid)


class HeadKeeper:
    def __init__(
        self,
        heads: Heads,
        snapshots: SnapshotCatalog,
        slices: SliceCatalog,
        blockstore: Blockstore,
    ) -> None:
        self.heads = heads
        self.snapshots = snapshots
        self.slices = slices
        self.syncs = SyncCatalog(slices.store)
        self.blockstore = blockstore

    def catch_up(self, source_id: str) -> int:
        """Brings the source's head to the chain's tip (rebuilt first if it must be); returns the entries
        applied. Leaves no head when one is needed and the chain has nothing to build it from. The caller
        holds the source's lock."""
        chain = self.slices.chain(source_id)
        if chain is None or chain.chain is None:
            return 0
        head = self.heads.current(source_id)
        state = head.state() if head else None
        after = None if state is None else self.slices.slice_after(source_id, state.sync_id, state.applied)
        stored = after is not None
        if head is None or state is None or verdict(state, chain, stored) is Verdict.REBUILD:
            rebuilt = self._rebuild(source_id, chain.chain)
            if rebuilt is None:
                # What is on hand cannot serve this chain: no snapshot may be taken from it.
                self.forget(source_id)
                return 0
            head, state = rebuilt
        n = self._apply(source_id, head, state)
        self._record(source_id, head.state())
        return n

    def _record(self, source_id: str, state: HeadState | None) -> None:
        """Publishes the head's position in the oplog metadata store when it moved (a write of the job,
        fenced by its lease), so that every server's reads show the owner's head, not their own."""
        doc = None if state is None else {"_id": source_id, **asdict(state)}
        if self.slices.store.get(HEADS, source_id) != doc:
            if doc is None:
                self.slices.store.delete(HEADS, source_id)
            else:
                self.slices.store.put(HEADS, doc)

    def recorded(self, source_id: str) -> HeadState | None:
        """The job owner's head of the source as it last published it."""
        doc = self.slices.store.get(HEADS, source_id)
        if doc is None:
            return None
        return HeadState(doc["sync_id"], doc["applied"], doc["min_valid"], doc["loaded"])

    def forget(self, source_id: str) -> None:
        """Removes the source's head and its published position."""
        self.heads.remove(source_id)
        self._record(source_id, None)

    def _rebuild(self, source_id: str, chain: str) -> tuple[Head, HeadState] | None:
        found = base(chain, self.snapshots.for_source(source_id), self.syncs.of_source(source_id))
        if found is None:
            return None
        what, position, min_valid = found
        kind, _, ident = what.partition(":")
        if kind == "snapshot":
            meta = self.snapshots.get(source_id, ident)
            assert meta is not None, "the snapshot base was just listed"
            blocks = snapshot_blocks(self.snapshots, self.blockstore, meta)
        else:
            blocks = list(self.syncs.get(source_id, ident).blocks)
        key = chain + uuid.uuid4().hex  # a new file: the current head stays whole until this one is
        head = self.heads.open(source_id, key)
        head.init(chain, position)
        head.load_records(read_records(self.blockstore, blocks))
        state = head.finish_load(min_valid)
        self.heads.promote(source_id, key)
        log.info("source %s: head of chain %s rebuilt from %s at %s", source_id, chain, what, position)
        return head, state

    def _apply(self, source_id: str, head: Head, state: HeadState) -> int:
        n = 0
        applied = state.applied
        while (s := self.slices.slice_after(source_id, state.sync_id, applied)) is not None:
            n += head.apply(read_changes(self.blockstore, s), s.end, after=applied)
            applied = s.end
        if n:
            head.trim_oplog()
        return n

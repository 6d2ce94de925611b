"""Initial syncs as the agents send them, recorded in the shared stores rather than in one server's head.

Where several servers share the backing databases, an agent's requests reach any of them (a load balancer's
round robin): the sync's start, each batch of its documents and its end may each reach another server. So
no step writes a head: the documents go to the blockstore (shared: ``mms.blockstore.uri``) as one block per
batch, in snapshot record lines (``backup.snapshots``), and the sync's record to the oplog metadata store,
``backup_syncs`` (one document per sync: source, position, ``minValid``, whether loaded, its blocks). The
server that owns the backup job builds the head from that record (``backup.head_keeper``) once the sync is
finished, and takes the new chain's first snapshot from it; grooming drops the record once that snapshot
exists (or when a later sync superseded it) and frees its blocks.

Batches are written block first, record second, so a batch whose answer was lost and that the agent sends
again only adds the same documents again (loading them twice changes nothing).
May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.changes import RESERVED_NS, doc_key
from opsmgr.backup.snapshots import record_line
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store.engine import Store, new_id

SYNCS = "backup_syncs"


@dataclass(frozen=True)
class SyncRecord:
    id: str
    sourceId: str
    position: int
    minValid: int
    loaded: bool
    blocks: tuple[str, ...]
    createdAt: int

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SyncRecord:
        return cls(
            doc["_id"],
            doc["sourceId"],
            doc["position"],
            doc["minValid"],
            doc["loaded"],
            tuple(doc["blocks"]),
            doc["createdAt"],
        )


def encode_documents(docs: Iterable[tuple[str, dict[str, Any]]]) -> tuple[bytes, int]:
    """A batch of initial-sync documents ``(namespace, document)`` as record lines, and how many."""
    lines: list[bytes] = []
    for ns, doc in docs:
        if not isinstance(doc, dict) or "_id" not in doc:
            raise InvalidInput("an initial-sync document needs an _id", field="_id")
        if ns == RESERVED_NS:
            raise InvalidInput(f"namespace {RESERVED_NS!r} is reserved", field="ns")
        wrapped = {"_id": doc_key(doc["_id"]), "d": doc}
        # Not the snapshots' canonical form (no spaces): a sync's block, dropped after the chain's first
        # snapshot, is then never one a snapshot shares, so a snapshot's storedBytes stays what it adds.
        lines.append(record_line(ns, json.dumps(wrapped, sort_keys=True)))
    return b"".join(lines), len(lines)


ABANDONED_MS = 24 * 3600 * 1000  # an unfinished sync left this long is given up (the agent started another)


def dropped(
    syncs: Iterable[SyncRecord], current_chain: str | None, snapshotted: set[str], now_ms: int, grace_ms: int
) -> list[str]:
    """The syncs grooming deletes: those whose chain has a snapshot (heads are rebuilt from that now), the
    finished ones a later chain replaced, after ``grace_ms`` (one just finished may not have begun its chain
    yet), and the unfinished ones abandoned for :data:`ABANDONED_MS`."""
    out = []
    for s in syncs:
        age = now_ms - s.createdAt
        superseded = s.loaded and s.id != current_chain and age > grace_ms
        if s.id in snapshotted or superseded or (not s.loaded and age > ABANDONED_MS):
            out.append(s.id)
    return out


class SyncCatalog:
    """``backup_syncs`` in the oplog metadata store ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def start(self, source_id: str, position: int, now_ms: int) -> str:
        sync_id = new_id()
        doc = {
            "_id": sync_id,
            "sourceId": source_id,
            "position": position,
            "minValid": position,
            "loaded": False,
            "blocks": [],
            "createdAt": now_ms,
        }
        self.store.put(SYNCS, doc)
        return sync_id

    def get(self, source_id: str, sync_id: str) -> SyncRecord:
        doc = self.store.get(SYNCS, sync_id) if sync_id.isalnum() else None
        if doc is None or doc["sourceId"] != source_id:
            raise NotFound(f"no initial sync {sync_id} for source {source_id}: start one", syncId=sync_id)
        return SyncRecord.from_doc(doc)

    def add(
        self, blockstore: Blockstore, source_id: str, sync_id: str, docs: Iterable[tuple[str, dict[str, Any]]]
    ) -> int:
        """Stores a batch of the sync's documents; returns how many."""
        if self.get(source_id, sync_id).loaded:
            raise Conflict(f"initial sync {sync_id} is already finished", syncId=sync_id)
        data, n = encode_documents(docs)
        if not n:
            return 0
        with blockstore.writer() as writer:
            block_id = writer.put(data).block_id
        with self.store.tx() as t:
            doc = t.get(SYNCS, sync_id)
            if doc is None:
                raise NotFound(f"initial sync {sync_id} of source {source_id} was abandoned: start again")
            if doc["loaded"]:
                raise Conflict(f"initial sync {sync_id} is already finished", syncId=sync_id)
            t.put(SYNCS, {**doc, "blocks": [*doc["blocks"], block_id]})
        return n

    def finish(self, source_id: str, sync_id: str, min_valid: int) -> SyncRecord:
        """Marks the sync loaded (the source's oplog had reached ``min_valid`` when its last document was
        read); the same call again changes nothing."""
        self.get(source_id, sync_id)
        with self.store.tx() as t:
            doc = t.get(SYNCS, sync_id)
            if doc is None:
                raise NotFound(f"initial sync {sync_id} of source {source_id} was abandoned: start again")
            if not doc["loaded"]:
                doc = {**doc, "loaded": True, "minValid": max(min_valid, doc["position"])}
                t.put(SYNCS, doc)
        return SyncRecord.from_doc(doc)

    def of_source(self, source_id: str) -> list[SyncRecord]:
        return [SyncRecord.from_doc(d) for d in self.store.find(SYNCS, sourceId=source_id)]

    def delete(self, sync_ids: Iterable[str]) -> int:
        with self.store.tx() as t:
            return sum(t.delete(SYNCS, s) for s in sync_ids)

    def referenced_blocks(self) -> dict[str, str]:
        """Every block a kept sync uses -> ``sync:<source>/<sync id>``."""
        return {b: f"sync:{d['sourceId']}/{d['_id']}" for d in self.store.find(SYNCS) for b in d["blocks"]}

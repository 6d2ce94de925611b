"""Carrying out a restore plan: a snapshot's documents, then the slices' entries up to the target.

Two deliveries:

- :func:`restore_into_store`: into an ``opsmgr.store`` :class:`Store` (a backing database being restored).
  Every block the plan needs is read and verified **before** the target is touched, so a missing or corrupt
  block refuses the restore (409) with the target as it was; then the target's documents are replaced by the
  snapshot's (``store_replace``: the target's restore fence stays) and the entries replayed.
- :func:`materialize`: the restored documents as a stream of ``(namespace, document)`` (for an HTTP download,
  or a MongoDB target the agent loads with its driver). A snapshot alone streams straight from its blocks.
  With entries to replay that are full post-images and deletes (a backing database's always are) and fit
  in memory, what they leave of each document they touch is merged into that stream in (namespace, key)
  order, so the latest restore point costs what the snapshot alone costs; others (updates by operators,
  drops, or too many) are applied to a scratch head first. Each block is verified before any of its
  records is yielded.

Entries applied are those with ``snapshot position < ts <= target`` (the target is inclusive, see
``backup.pitr``). May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.changes import ChangeOp, apply_changes
from opsmgr.backup.head import remove_head_files, scratch_head
from opsmgr.backup.pitr import RestorePlan
from opsmgr.backup.positions import PositionKind, millis_range, timestamp_json, to_millis
from opsmgr.backup.slices import SliceMeta, read_changes
from opsmgr.backup.snapshots import Progress, SnapshotMeta, read_blocks, read_records
from opsmgr.backup.store_replace import replace_documents
from opsmgr.errors import InvalidInput
from opsmgr.store.engine import Store, Txn
from opsmgr.store.installation import RESTORE_FENCE

ProgressFn = Callable[[Progress], None]
# Replayed entries up to this many bytes (as stored, uncompressed) are merged into the snapshot's stream in
# memory (see ``_end_states``): parsed, small documents take several times their JSON size, so this bounds
# a restore's memory to about a hundred MB; more go through a scratch head on disk.
OVERLAY_MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class ResolvedRestore:
    """A plan with everything it needs found: the snapshot's metadata and block list, the slices."""

    kind: PositionKind
    plan: RestorePlan
    snapshot: SnapshotMeta
    blocks: list[str]
    slices: list[SliceMeta]

    @property
    def slice_blocks(self) -> list[str]:
        return [s.blockId for s in self.slices if s.blockId]

    def to_json(self) -> dict[str, Any]:
        millis = millis_range(self.kind, self.plan.target, self.plan.target)
        return {
            "snapshotId": self.snapshot.id,
            "snapshotTimestamp": timestamp_json(self.kind, self.snapshot.position),
            "targetTimestamp": timestamp_json(self.kind, self.plan.target),
            "pointInTimeUTCMillis": millis[0] if millis else to_millis(self.kind, self.plan.target),
            "oplogSlices": len(self.slices),
            "oplogBound": "inclusive: entries with ts <= target are applied",
        }


def _reporter(progress: ProgressFn | None, total: int) -> Callable[[int, str], None]:
    def report(done: int, message: str) -> None:
        if progress is not None:
            progress(Progress(min(done / total, 1.0) if total else 1.0, message))

    return report


class _StoreTarget:
    """``backup.changes.DocTarget`` over a backing database's transaction: documents as they are."""

    def __init__(self, txn: Txn) -> None:
        self.txn = txn

    @staticmethod
    def _id(key: str) -> str:
        doc_id = json.loads(key)
        if not isinstance(doc_id, str):
            raise InvalidInput("a backing database document's _id is a string", field="_id")
        return doc_id

    def get(self, ns: str, key: str) -> dict[str, Any] | None:
        return self.txn.get(ns, self._id(key))

    def put(self, ns: str, key: str, doc: dict[str, Any]) -> None:
        self.txn.put(ns, doc)

    def delete(self, ns: str, key: str) -> None:
        self.txn.delete(ns, self._id(key))

    def drop(self, ns: str, *, database: bool) -> None:
        raise InvalidInput("a backing database's oplog has no drops", field="op")


def verify(blockstore: Blockstore, r: ResolvedRestore, progress: ProgressFn | None = None) -> None:
    """Reads and re-hashes every block the restore needs (BlockMissing/BlockCorrupt otherwise)."""
    needed = r.blocks + r.slice_blocks
    report = _reporter(progress, len(needed))
    for i, _data in enumerate(read_blocks(blockstore, needed)):
        report(i + 1, f"verified {i + 1} of {len(needed)} blocks")


def restore_into_store(
    blockstore: Blockstore, r: ResolvedRestore, target: Store, progress: ProgressFn | None = None
) -> dict[str, int]:
    """Replaces ``target``'s documents with the restored ones; returns counts."""
    if r.kind is not PositionKind.STORE:
        raise InvalidInput("only a backing database's backup can be restored into a store", field="target")
    verify(blockstore, r, lambda p: progress(Progress(p.fraction * 0.2, p.message)) if progress else None)
    total = len(r.blocks) + len(r.slices)
    report = _reporter(progress, total)

    def on_block(p: Progress) -> None:
        report(int(p.fraction * len(r.blocks)), f"loading the snapshot: {p.message}")

    counts = replace_documents(
        target, ((ns, doc) for ns, _key, doc in read_records(blockstore, r.blocks, on_block))
    )
    applied = 0
    for i, s in enumerate(r.slices):
        changes = [
            c
            for c in read_changes(blockstore, s)
            if r.plan.after < c.ts <= r.plan.target and c.ns != RESTORE_FENCE
        ]
        with target.tx() as t:
            applied += apply_changes(_StoreTarget(t), changes)
        report(len(r.blocks) + i + 1, f"replayed {i + 1} of {len(r.slices)} oplog slices")
    report(total, f"restored {counts['documents']} documents and replayed {applied} oplog entries")
    return counts | {"entriesApplied": applied}


def materialize(
    blockstore: Blockstore,
    r: ResolvedRestore,
    scratch: Path,
    progress: ProgressFn | None = None,
    *,
    overlay_max_bytes: int = OVERLAY_MAX_BYTES,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The restored documents, in (namespace, key) order."""
    if not r.slices:
        for ns, _key, doc in read_records(blockstore, r.blocks, progress):
            yield ns, doc
        return
    report = _reporter(progress, len(r.blocks) + len(r.slices) + 1)
    final = _end_states(blockstore, r, overlay_max_bytes)
    if final is not None:
        report(len(r.slices), f"replayed {len(r.slices)} oplog slices")
        records = read_records(
            blockstore, r.blocks, lambda p: report(len(r.slices) + int(p.fraction * len(r.blocks)), p.message)
        )
        yield from _overlaid(records, final)
    else:
        yield from _through_scratch_head(blockstore, r, scratch, report)
    report(len(r.blocks) + len(r.slices) + 1, "restore delivered")


def _end_states(
    blockstore: Blockstore, r: ResolvedRestore, max_bytes: int
) -> dict[tuple[str, str], dict[str, Any] | None] | None:
    """What the replayed entries leave of each document they touch (None: deleted), when that is all they
    need: every change a full post-image or a delete (a backing database's always are) and the slices within
    ``max_bytes``. None otherwise (an update by operators or a drop needs the documents around it)."""
    if sum(s.bytes for s in r.slices) > max_bytes:
        return None
    final: dict[tuple[str, str], dict[str, Any] | None] = {}
    for s in r.slices:
        for c in read_changes(blockstore, s):
            if not r.plan.after < c.ts <= r.plan.target:
                continue
            if c.op is ChangeOp.PUT:
                final[(c.ns, c.key)] = c.doc
            elif c.op is ChangeOp.DELETE:
                final[(c.ns, c.key)] = None
            else:
                return None
    return final


def _overlaid(
    records: Iterator[tuple[str, str, dict[str, Any]]], final: dict[tuple[str, str], dict[str, Any] | None]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The snapshot's records (in (namespace, key) order) merged with the end states: a touched document as
    the entries left it, a new one in its place in the order, a deleted one left out. The same documents in
    the same order as the scratch head gives, without writing the whole snapshot to one first."""
    touched = sorted(final)
    i = 0
    for ns, key, doc in records:
        while i < len(touched) and touched[i] < (ns, key):
            if (new := final[touched[i]]) is not None:
                yield touched[i][0], new
            i += 1
        if i < len(touched) and touched[i] == (ns, key):
            doc_or_none = final[touched[i]]
            i += 1
            if doc_or_none is not None:
                yield ns, doc_or_none
            continue
        yield ns, doc
    for at in touched[i:]:
        if (new := final[at]) is not None:
            yield at[0], new


def _through_scratch_head(
    blockstore: Blockstore, r: ResolvedRestore, scratch: Path, report: Callable[[int, str], None]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The snapshot loaded into a scratch head, the entries applied there, its documents read back."""
    head = scratch_head(scratch)
    try:
        head.init("scratch", r.plan.after)
        head.load_records(
            read_records(blockstore, r.blocks, lambda p: report(int(p.fraction * len(r.blocks)), p.message))
        )
        for i, s in enumerate(r.slices):
            changes = [c for c in read_changes(blockstore, s) if r.plan.after < c.ts <= r.plan.target]
            head.apply(changes, r.plan.target)
            report(len(r.blocks) + i + 1, f"replayed {i + 1} of {len(r.slices)} oplog slices")
        yield from head.documents()
    finally:
        remove_head_files(head)

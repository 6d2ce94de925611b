"""Oplog slices: contiguous ranges of a source's oplog, their wire format and the chain they form.

A slice covers the range ``(start, end]`` (start exclusive, end inclusive) and carries every entry of the
source in that range; ``end`` may lie past its last entry (the agent read that far and found nothing more),
and a slice may be empty, which just moves the covered range on while the source is idle.

**Wire format**: ``backup.wire`` (pure, so the agent needs no store to encode a slice); its codec is
re-exported here for the daemon.

**Chain.** After an initial sync at position P (a new chain, named by the sync's id), the daemon accepts a
slice only if it continues the chain exactly: ``start`` must equal the last acknowledged ``end`` (the
**tip**). A slice that starts later is a **gap** and is refused (``GAP``; the source needs a new initial
sync, which starts a new chain); one that ends at or before the tip was already stored (``DUPLICATE``: an
agent re-sending after a crash gets the same acknowledgement); one that straddles the tip is trimmed to
the entries after it. The slice's data is written to the blockstore first and its range to the oplog
metadata store second, in one transaction with the new tip, so a partial upload is never visible and an
acknowledged slice is never lost.

Collections of the oplog metadata store: ``backup_chains`` (one document per source: current chain, tip,
last gap), ``backup_slices.<sourceId>``, and ``backup_runs`` (per source, the unbroken runs its slices cover,
kept in step with them in the same transactions, so that the PITR window never needs to read every slice).

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from opsmgr.backup import crashpoints
from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.changes import Change, decode_changes, encode_changes, from_mongo_record, from_store_entry
from opsmgr.backup.pitr import SliceSpan, coverage
from opsmgr.backup.positions import POSITION_LIMITS, PositionKind
from opsmgr.backup.wire import decode_slice as decode_slice
from opsmgr.backup.wire import encode_slice as encode_slice
from opsmgr.errors import Conflict, InvalidInput
from opsmgr.store.engine import Store

CHAINS = "backup_chains"
RUNS = "backup_runs"
SLICES_PREFIX = "backup_slices."


class SliceStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    DUPLICATE = "DUPLICATE"  # already stored: acknowledged again
    GAP = "GAP"  # does not continue the chain: a new initial sync is needed
    SYNC_REQUIRED = "SYNC_REQUIRED"  # no chain yet (or resync requested): do an initial sync first


@dataclass(frozen=True)
class SliceResult:
    status: SliceStatus
    acknowledged: int | None  # the tip: where the agent resumes (entries after it)
    chain: str | None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "acknowledged": self.acknowledged,
            "chain": self.chain,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class SliceMeta:
    id: str
    sourceId: str
    chain: str
    start: int
    end: int
    count: int
    blockId: str | None
    bytes: int
    receivedAt: int

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SliceMeta:
        return cls(id=doc["_id"], **{k: doc[k] for k in cls.__dataclass_fields__ if k != "id"})

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = doc.pop("id")
        return doc


@dataclass(frozen=True)
class Chain:
    sourceId: str
    chain: str | None  # None until the first initial sync
    chainStart: int | None
    tip: int | None
    lastReceivedAt: int | None
    lastSliceId: str | None
    gap: dict[str, Any] | None
    syncRequired: str | None  # why a new initial sync is needed, or None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Chain:
        return cls(
            sourceId=doc["_id"], **{k: doc.get(k) for k in cls.__dataclass_fields__ if k != "sourceId"}
        )


def normalise(kind: PositionKind, start: int, end: int, entries: Iterable[dict[str, Any]]) -> list[Change]:
    """The applied form of a slice's entries, checking that they are in order and inside ``(start, end]``."""
    if not 0 <= start <= end <= POSITION_LIMITS[kind]:
        raise InvalidInput(f"a slice needs 0 <= start <= end <= {POSITION_LIMITS[kind]}", field="start")
    out: list[Change] = []
    last = start
    for raw in entries:
        if not isinstance(raw, dict):
            raise InvalidInput("an oplog entry must be a document", field="entries")
        ts = raw.get("ts")
        if not isinstance(ts, int) or isinstance(ts, bool) or not last < ts <= end:
            raise InvalidInput(
                f"oplog entry ts {ts!r} is not in increasing order inside ({start}, {end}]", field="ts"
            )
        last = ts
        out += [from_store_entry(raw)] if kind is PositionKind.STORE else from_mongo_record(raw)
    return out


def encode_block(changes: list[Change]) -> bytes:
    return b"".join(encode_changes(changes))


def read_changes(blockstore: Blockstore, meta: SliceMeta) -> list[Change]:
    """A stored slice's changes, its block verified (BlockMissing/BlockCorrupt otherwise)."""
    if meta.blockId is None:
        return []
    return list(decode_changes(blockstore.get(meta.blockId).splitlines()))


# The oplog metadata store.


def _coll(source_id: str) -> str:
    return SLICES_PREFIX + source_id


def _slice_id(chain: str, start: int) -> str:
    return f"{chain}:{start:020d}"


class SliceCatalog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, source_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(source_id, threading.Lock())

    def chain(self, source_id: str) -> Chain | None:
        doc = self.store.get(CHAINS, source_id)
        return None if doc is None else Chain.from_doc(doc)

    def begin_chain(self, source_id: str, chain_id: str, position: int, now_ms: int) -> Chain:
        """Starts a new chain at an initial sync's position; the same call again changes nothing."""
        with self.store.tx() as t:
            doc = t.get(CHAINS, source_id)
            if doc is None or doc.get("chain") != chain_id:
                doc = {
                    "_id": source_id,
                    "chain": chain_id,
                    "chainStart": position,
                    "tip": position,
                    "startedAt": now_ms,
                    "lastReceivedAt": None,
                    "lastSliceId": None,
                    "gap": None,  # healed: the window keeps the hole, the chain goes on from here
                    "syncRequired": None,
                }
                t.put(CHAINS, doc)
        return Chain.from_doc(doc)

    def require_sync(
        self, source_id: str, reason: str, now_ms: int, gap: dict[str, Any] | None = None
    ) -> None:
        """Refuse further slices of the current chain until a new initial sync (e.g. after a restore
        overwrote the source, or the agent found its oplog no longer holds the tip)."""
        with self.store.tx() as t:
            doc = t.get(CHAINS, source_id) or {"_id": source_id, "chain": None, "tip": None}
            doc["syncRequired"] = reason
            if gap is not None:
                doc["gap"] = {**gap, "detectedAt": now_ms}
            t.put(CHAINS, doc)

    def append(
        self,
        blockstore: Blockstore,
        source_id: str,
        start: int,
        end: int,
        changes: list[Change],
        now_ms: int,
    ) -> SliceResult:
        """Stores a slice that continues the chain (see the module docstring for every outcome)."""
        with self._lock(source_id):
            chain = self.chain(source_id)
            if chain is None or chain.syncRequired or chain.chain is None or chain.tip is None:
                why = (
                    chain.syncRequired if chain is not None and chain.syncRequired else "no initial sync yet"
                )
                return SliceResult(
                    SliceStatus.SYNC_REQUIRED, None, None, f"an initial sync of the source is required: {why}"
                )
            chain_id, tip = chain.chain, chain.tip
            if end <= tip:
                return SliceResult(SliceStatus.DUPLICATE, tip, chain_id, f"already stored through {tip}")
            if start > tip:
                self._record_gap(source_id, {"afterTs": tip, "nextStart": start, "detectedAt": now_ms})
                return SliceResult(
                    SliceStatus.GAP,
                    tip,
                    chain_id,
                    f"slice starts at {start} but the chain ends at {tip}: entries in between are missing",
                )
            kept = [c for c in changes if c.ts > tip]
            with blockstore.writer() as writer:
                put = writer.put(encode_block(kept)) if kept else None
                meta = SliceMeta(
                    id=_slice_id(chain_id, tip),
                    sourceId=source_id,
                    chain=chain_id,
                    start=tip,
                    end=end,
                    count=len(kept),
                    blockId=put.block_id if put else None,
                    bytes=put.size if put else 0,
                    receivedAt=now_ms,
                )
                crashpoints.reached("daemon-slice-commit", meta.blockId or "")
                self._commit(meta, chain.lastSliceId)
            return SliceResult(SliceStatus.ACCEPTED, end, chain_id)

    def _record_gap(self, source_id: str, gap: dict[str, Any]) -> None:
        with self.store.tx() as t:
            doc = t.get(CHAINS, source_id)
            if doc is not None:
                t.put(CHAINS, {**doc, "gap": gap})

    def _commit(self, meta: SliceMeta, last_slice_id: str | None) -> None:
        coll = _coll(meta.sourceId)
        with self.store.tx() as t:
            doc = t.get(CHAINS, meta.sourceId)
            if doc is None or doc.get("chain") != meta.chain or doc.get("tip") != meta.start:
                raise Conflict(
                    "another upload moved this source's chain meanwhile; retry", error_code="RETRY"
                )
            last = t.get(coll, last_slice_id) if last_slice_id else None
            if meta.count == 0 and last is not None and last["count"] == 0:
                # Idle-source heartbeats extend the previous empty slice rather than pile up documents.
                t.put(coll, {**last, "end": meta.end, "receivedAt": meta.receivedAt})
                slice_id = last["_id"]
            else:
                t.put(coll, meta.to_doc())
                slice_id = meta.id
            t.put(
                CHAINS, {**doc, "tip": meta.end, "lastReceivedAt": meta.receivedAt, "lastSliceId": slice_id}
            )
            runs = t.get(RUNS, meta.sourceId) or {"_id": meta.sourceId, "runs": []}
            run = next((r for r in runs["runs"] if r[0] == meta.chain and r[2] == meta.start), None)
            if run is None:
                runs["runs"].append([meta.chain, meta.start, meta.end])
            else:
                run[2] = meta.end
            t.put(RUNS, runs)

    def runs(self, source_id: str) -> list[SliceSpan]:
        """The unbroken runs ``(start, end]`` the source's slices cover, per chain."""
        doc = self.store.get(RUNS, source_id)
        return [SliceSpan(f"run:{c}:{a}", c, a, b) for c, a, b in (doc or {}).get("runs", [])]

    def slice_after(self, source_id: str, chain: str, position: int) -> SliceMeta | None:
        """The slice of ``chain`` holding the entries just after ``position`` (the head's next one)."""
        coll = _coll(source_id)
        # Slices abut, so the next one normally starts exactly at the position and its id says so.
        doc = self.store.get(coll, _slice_id(chain, position))
        if doc is not None and doc["end"] > position:
            return SliceMeta.from_doc(doc)
        tip = self.chain(source_id)
        if tip is None or tip.chain != chain or tip.tip is None or tip.tip <= position:
            return None
        # An idle heartbeat extended an empty slice the head had already applied part of.
        return next(
            (s for s in self.slices(source_id) if s.chain == chain and s.start <= position < s.end), None
        )

    def slices(self, source_id: str) -> list[SliceMeta]:
        """The source's slices, by chain and start."""
        return [SliceMeta.from_doc(d) for d in self.store.find(_coll(source_id))]

    def delete(self, source_id: str, slice_ids: Iterable[str]) -> int:
        coll = _coll(source_id)
        n = 0
        with self.store.tx() as t:
            for sid in slice_ids:
                n += t.delete(coll, sid)
            if n:
                spans = [SliceSpan(d["_id"], d["chain"], d["start"], d["end"]) for d in t.find(coll)]
                runs = [[c, a, b] for c, chain_runs in coverage(spans).items() for a, b in chain_runs]
                t.put(RUNS, {"_id": source_id, "runs": runs})
        return n

    def remove(self, source_id: str) -> None:
        """Forgets a source's chain and slices."""
        self.delete(source_id, [s.id for s in self.slices(source_id)])
        with self.store.tx() as t:
            t.delete(CHAINS, source_id)
            t.delete(RUNS, source_id)

    def referenced_blocks(self) -> set[str]:
        """Every block a stored slice (of any source) uses."""
        refs: set[str] = set()
        for coll in self.store.collections():
            if coll.startswith(SLICES_PREFIX):
                refs |= {d["blockId"] for d in self.store.find(coll) if d.get("blockId")}
        return refs

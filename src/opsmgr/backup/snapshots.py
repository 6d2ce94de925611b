"""Snapshots: a source's full data at an oplog position, as content-addressed blocks plus metadata.

**Records.** A snapshot is the head's documents in ``(namespace, key)`` order, one line per document:
``<namespace as JSON>\\t<{"_id": key, "d": document} as canonical JSON>\\n``. The serialisation is canonical
(sorted keys, no spaces), so an unchanged document is the same bytes in every snapshot.

**Blocks.** The lines are cut into blocks of about :data:`BLOCK_TARGET` bytes by content-defined chunking at
record granularity: a block ends after a record when a 64-bit hash of its ``(namespace, key)`` falls under
``2**64 * len(record) / target``, so a block holds ``target`` bytes on average, and where it ends depends on
the records themselves, not on what came before. An unchanged dataset therefore yields the same blocks, and
a changed, inserted or deleted document changes only the block it falls in (and, rarely, merges or splits it
with a neighbour): no shift cascades through the rest. A block longer than 8x the target is cut regardless.

**Metadata.** The snapshot document (``backup_snapshots.<sourceId>``) and its block list
(``backup_snapshot_blocks``) are written in one transaction of the snapshot metadata store, after every
block is durably in the blockstore. That commit is what makes a snapshot exist: a process killed before it
leaves only unreferenced blocks, which grooming frees, and no partial snapshot is ever listed.

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.timestamps`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from itertools import islice
from typing import Any

from pydantic import TypeAdapter, ValidationError

from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.errors import SnapshotBlocksMissing
from opsmgr.backup.positions import PositionKind, timestamp_json
from opsmgr.errors import StoreError
from opsmgr.store.engine import Store, Txn
from opsmgr.timestamps import iso_utc

BLOCK_TARGET = 1 << 20
READ_WORKERS = min(8, os.cpu_count() or 1)
READ_AHEAD_PER_WORKER = 8  # see read_blocks
SNAPSHOTS_PREFIX = "backup_snapshots."
BLOCK_LISTS = "backup_snapshot_blocks"
REQUESTS = "backup_snapshot_requests"
PROGRESS = "backup_progress"
PROGRESS_WRITE_S = 1.0  # how stale another server's view of a progress may be

Record = tuple[str, str, bytes]  # namespace, key, line


class SnapshotType(StrEnum):
    SCHEDULED = "SCHEDULED"
    ON_DEMAND = "ON_DEMAND"


@dataclass(frozen=True)
class SnapshotMeta:
    id: str
    sourceId: str
    groupId: str
    clusterId: str
    name: str
    kind: PositionKind
    chain: str  # the initial sync (head lineage) it was taken from
    position: int
    createdAt: int  # epoch ms
    type: SnapshotType
    completedAt: int = 0
    sizeBytes: int = 0  # uncompressed records
    storedBytes: int = 0  # bytes this snapshot added to the blockstore
    blockCount: int = 0
    newBlocks: int = 0
    records: int = 0
    compression: str = "zlib:1"  # the blockstore's setting when taken (older snapshots: zlib)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = doc.pop("id")
        doc["complete"] = True
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SnapshotMeta:
        """The snapshot a stored document describes (keys it does not know are left out, as ``complete``);
        a malformed one is a StoreError naming the snapshot and the field."""
        fields = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__ and k != "id"}
        try:
            return _META.validate_python({**fields, "id": doc.get("_id")})
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise StoreError(
                f"the stored snapshot {doc.get('_id', '?')!r} is malformed ({where})",
                error_code="STORED_RECORD_MALFORMED",
            ) from None


# Stored documents are outside input: their fields are checked against the types above when read.
_META: TypeAdapter[SnapshotMeta] = TypeAdapter(SnapshotMeta)


# Records and chunking (pure).


def record_line(ns: str, wrapped_text: str) -> bytes:
    return (json.dumps(ns) + "\t" + wrapped_text + "\n").encode()


def parse_record(line: bytes) -> tuple[str, str, dict[str, Any]]:
    """``(namespace, key, document)`` of one record line."""
    ns_text, _, wrapped = line.partition(b"\t")
    body = json.loads(wrapped)
    return json.loads(ns_text), body["_id"], body["d"]


def _boundary(ns: str, key: str, size: int, target: int) -> bool:
    digest = hashlib.blake2b(f"{ns}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") * target < size << 64


def chunk(records: Iterable[Record], target: int = BLOCK_TARGET) -> Iterator[bytes]:
    """The block contents of a record stream (see the module docstring)."""
    lines: list[bytes] = []
    size = 0
    limit = 8 * target
    for ns, key, line in records:
        lines.append(line)
        size += len(line)
        if size >= limit or _boundary(ns, key, len(line), target):
            yield b"".join(lines)
            lines, size = [], 0
    if lines:
        yield b"".join(lines)


# The snapshot metadata store.


def _coll(source_id: str) -> str:
    return SNAPSHOTS_PREFIX + source_id


class SnapshotCatalog:
    def __init__(self, store: Store) -> None:
        self.store = store

    def for_source(self, source_id: str) -> list[SnapshotMeta]:
        """The source's complete snapshots, oldest first."""
        metas = [SnapshotMeta.from_doc(d) for d in self.store.find(_coll(source_id))]
        return sorted(metas, key=lambda m: (m.position, m.createdAt, m.id))

    def get(self, source_id: str, snapshot_id: str) -> SnapshotMeta | None:
        doc = self.store.get(_coll(source_id), snapshot_id)
        return None if doc is None else SnapshotMeta.from_doc(doc)

    def blocks(self, snapshot_id: str) -> list[str] | None:
        doc = self.store.get(BLOCK_LISTS, snapshot_id)
        return None if doc is None else list(doc["blocks"])

    def commit(self, meta: SnapshotMeta, blocks: list[str]) -> None:
        """Makes the snapshot visible, and consumes the on-demand request it answers, in one transaction."""
        with self.store.tx() as t:
            t.put(BLOCK_LISTS, {"_id": meta.id, "sourceId": meta.sourceId, "blocks": blocks})
            t.put(_coll(meta.sourceId), meta.to_doc())
            t.delete(REQUESTS, meta.id)

    def delete(self, source_id: str, snapshot_ids: Iterable[str]) -> int:
        n = 0
        with self.store.tx() as t:
            for sid in snapshot_ids:
                n += t.delete(_coll(source_id), sid)
                t.delete(BLOCK_LISTS, sid)
        return n

    def referenced_blocks(self) -> set[str]:
        """Every block some snapshot's list names (of every source)."""
        return {b for doc in self.store.find(BLOCK_LISTS) for b in doc["blocks"]}

    def block_lists(self) -> dict[str, list[str]]:
        return {doc["_id"]: list(doc["blocks"]) for doc in self.store.find(BLOCK_LISTS)}

    # On-demand requests, consumed by commit().

    def request(self, t: Txn, snapshot_id: str, source_id: str, now_ms: int, reason: str) -> None:
        t.put(REQUESTS, {"_id": snapshot_id, "sourceId": source_id, "requestedAt": now_ms, "reason": reason})

    def requests(self, source_id: str | None = None) -> list[dict[str, Any]]:
        docs = (
            self.store.find(REQUESTS) if source_id is None else self.store.find(REQUESTS, sourceId=source_id)
        )
        return sorted(docs, key=lambda d: (d["requestedAt"], d["_id"]))


# Writing and reading.


@dataclass(frozen=True)
class Progress:
    fraction: float
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"fraction": round(self.fraction, 4), "message": self.message}


class ProgressBoard:
    """The progress of long work (a snapshot by its id, a restore by the job id given to it).

    With a store (the snapshot metadata store, shared by every server), what one server's work reports is
    written there too, at most every :data:`PROGRESS_WRITE_S` per work item (a first report, an end and a
    failure at once), and :meth:`get` answers the newer of this server's own and the shared one: so a
    progress asked of any server behind a load balancer moves forward, whichever server does the work.
    """

    def __init__(self, store: Store | None = None, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._progress: dict[str, tuple[float, Progress]] = {}
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()

    def set(self, work_id: str, progress: Progress) -> None:
        now = self._clock()
        with self._lock:
            self._progress[work_id] = (now, progress)
            last = self._written.get(work_id)
            due = self._store is not None and (
                last is None
                or now - last >= PROGRESS_WRITE_S
                or progress.fraction >= 1.0
                or progress.message.startswith("failed")
            )
            if due:
                self._written[work_id] = now
        if due and self._store is not None:
            self._store.put(PROGRESS, {"_id": work_id, "at": now, **progress.to_json()})

    def get(self, work_id: str) -> Progress | None:
        with self._lock:
            own = self._progress.get(work_id)
        shared = self._store.get(PROGRESS, work_id) if self._store is not None else None
        if shared is not None and (own is None or shared["at"] > own[0]):
            return Progress(float(shared["fraction"]), str(shared["message"]))
        return None if own is None else own[1]

    def forget(self, older_than: float) -> None:
        """Drops what was reported before ``older_than`` (epoch seconds): long finished work."""
        with self._lock:
            for work_id in [w for w, (at, _) in self._progress.items() if at < older_than]:
                del self._progress[work_id]
                self._written.pop(work_id, None)
        if self._store is None:
            return
        old = [str(d["_id"]) for d in self._store.find(PROGRESS) if d["at"] < older_than]
        if old:
            with self._store.tx() as t:
                for work_id in old:
                    t.delete(PROGRESS, work_id)

    def reporter(self, work_id: str | None) -> Callable[[Progress], None] | None:
        """What reports the progress of ``work_id`` (None: work nobody follows)."""
        if work_id is None:
            return None
        return lambda p: self.set(work_id, p)


def write_snapshot(
    blockstore: Blockstore,
    catalog: SnapshotCatalog,
    meta: SnapshotMeta,
    records: Iterable[Record],
    *,
    total_records: int,
    now_ms: Callable[[], int],
    target: int = BLOCK_TARGET,
    progress: Callable[[Progress], None] | None = None,
    before_commit: Callable[[list[str]], None] | None = None,
) -> SnapshotMeta:
    """Writes the blocks of ``records``, then the metadata that makes the snapshot visible.

    ``before_commit`` runs with the block list after every block is written and before the metadata is:
    tests use it to stand for a crash at the worst moment.
    """
    counted = _counting(records)
    block_ids: list[str] = []
    size = stored = new = 0
    with blockstore.writer() as writer:
        for data in chunk(counted, target):
            put = writer.put(data)
            block_ids.append(put.block_id)
            size += put.size
            stored += put.stored
            new += put.new
            if progress is not None:
                done = counted.n / total_records if total_records else 1.0
                progress(Progress(min(done, 1.0), f"{counted.n} of {total_records} documents stored"))
        if before_commit is not None:
            before_commit(block_ids)
        done_meta = replace(
            meta,
            completedAt=now_ms(),
            sizeBytes=size,
            storedBytes=stored,
            blockCount=len(block_ids),
            newBlocks=new,
            records=counted.n,
        )
        catalog.commit(done_meta, block_ids)
    if progress is not None:
        progress(Progress(1.0, f"snapshot complete: {counted.n} documents in {len(block_ids)} blocks"))
    return done_meta


class _counting:
    """Passes records through, counting them (for progress)."""

    def __init__(self, records: Iterable[Record]) -> None:
        self._it = iter(records)
        self.n = 0

    def __iter__(self) -> Iterator[Record]:
        for rec in self._it:
            self.n += 1
            yield rec


def check_blocks(blockstore: Blockstore, block_ids: Iterable[str], what: str) -> None:
    """SnapshotBlocksMissing naming the first absent block, before a restore delivers anything."""
    missing = [b for b in block_ids if not blockstore.exists(b)]
    if missing:
        raise SnapshotBlocksMissing(
            f"{len(missing)} block(s) of {what} are not in the blockstore", missingBlocks=missing[:10]
        )


def snapshot_blocks(catalog: SnapshotCatalog, blockstore: Blockstore, meta: SnapshotMeta) -> list[str]:
    blocks = catalog.blocks(meta.id)
    if blocks is None:
        raise SnapshotBlocksMissing(f"the block list of snapshot {meta.id} is gone", snapshotId=meta.id)
    check_blocks(blockstore, blocks, f"snapshot {meta.id}")
    return blocks


def read_records(
    blockstore: Blockstore, block_ids: list[str], progress: Callable[[Progress], None] | None = None
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every ``(namespace, key, document)`` of a snapshot, each block verified against its id."""
    for data in read_blocks(blockstore, block_ids, progress):
        for line in data.splitlines():
            yield parse_record(line)


def read_blocks(
    blockstore: Blockstore,
    block_ids: list[str],
    progress: Callable[[Progress], None] | None = None,
    *,
    workers: int = READ_WORKERS,
    ahead: int | None = None,
) -> Iterator[bytes]:
    """The record lines of a snapshot, block by block in order, each verified before it is yielded (a
    snapshot-only download can send these bytes as they are).

    Blocks are read, decompressed and re-hashed by ``workers`` threads up to ``ahead`` blocks (default
    :data:`READ_AHEAD_PER_WORKER` per worker) ahead of the consumer, which writes them out meanwhile: zstd,
    zlib and hashlib release the GIL, so a restore uses every core instead of one. At most ``ahead`` blocks
    are read and not yet consumed at any time (memory stays bounded whatever the snapshot's size). The
    default leaves room for a consumer that stops for a whole direct write of its output (``durable_file``:
    8 MB, about 5 ms, while each worker verifies 3 or 4 blocks): with 2 per worker the workers of a 1 GB
    restore on 2 cores sat idle 35-40% of the time, with 8 per worker 3-5% (measured).

    A missing or corrupt block raises its error (``BlockMissing``, ``BlockCorrupt``) when the consumer
    reaches it, after every block before it was delivered, exactly as a one-block-at-a-time read would; the
    blocks read ahead of it are dropped.
    """
    if not block_ids:
        return
    ids = iter(block_ids)
    bound = max(1, ahead if ahead is not None else READ_AHEAD_PER_WORKER * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="block-read") as pool:
        pending = deque(pool.submit(blockstore.get, b) for b in islice(ids, bound))
        done = 0
        try:
            while pending:
                data = pending.popleft().result()
                following = next(ids, None)
                if following is not None:
                    pending.append(pool.submit(blockstore.get, following))
                yield data
                done += 1
                if progress is not None:
                    progress(Progress(done / len(block_ids), f"{done} of {len(block_ids)} blocks read"))
        finally:
            # A failed block or a consumer that stopped early: nothing more is started, and the pool's exit
            # waits only for the reads already running.
            for future in pending:
                future.cancel()


def snapshot_json(meta: SnapshotMeta, expires_ms: int | None = None) -> dict[str, Any]:
    """A snapshot in the shape of Ops Manager's ``/groups/{id}/clusters/{cid}/snapshots`` items."""
    type_name = "REPLICA_SET" if meta.kind is PositionKind.BSON else "BACKING_DATABASE"
    return {
        "id": meta.id,
        "groupId": meta.groupId,
        "clusterId": meta.clusterId,
        "complete": True,
        "created": {"date": iso_utc(meta.createdAt), "time": meta.createdAt // 1000, "increment": 1},
        "expires": None if expires_ms is None else iso_utc(expires_ms),
        "doNotDelete": False,
        "lastOplogAppliedTimestamp": timestamp_json(meta.kind, meta.position),
        "snapshotType": meta.type.value,
        "parts": [
            {
                "clusterId": meta.clusterId,
                "replicaSetName": meta.name,
                "typeName": type_name,
                "dataSizeBytes": meta.sizeBytes,
                "fileSizeBytes": meta.storedBytes,
                "storageSizeBytes": meta.storedBytes,
                # Ops Manager's values are GZIP and NONE; a zstd block store says so rather than claim GZIP.
                "compressionSetting": {"zlib": "GZIP", "none": "NONE"}.get(
                    meta.compression.partition(":")[0], meta.compression.partition(":")[0].upper()
                ),
                "encryptionEnabled": False,
            }
        ],
        "blockCount": meta.blockCount,
        "newBlockCount": meta.newBlocks,
        "documentCount": meta.records,
        "sourceId": meta.sourceId,
    }

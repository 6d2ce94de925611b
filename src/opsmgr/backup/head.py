"""Head copies: per source, a copy of its documents to which the daemon applies slices in order, and from
which it takes snapshots, so every snapshot is consistent with the oplog position the head has reached.

A head is an ``opsmgr.store`` :class:`Store` on its own SQLite file under the blockstore,
``<blockstore>/heads/<sourceId>/<syncId>.sqlite``, rather than a namespace of the snapshot metadata store:

- it is bulk data rewritten by every slice, not metadata: keeping it out of the snapshot metadata store keeps
  that store small and its writer lock free for the API, and one source's apply never waits on another's;
- it is derived data, rebuilt from an initial sync, so it needs no backup of its own and no PostgreSQL: a
  restore of the metadata stores does not roll it back to a state its snapshots do not match;
- a new initial sync builds a new file beside the current head, and only a finished one replaces it, by
  rewriting the one-line ``CURRENT`` file atomically: a sync killed half-way leaves the old head intact.

A document is stored in the head as ``{"_id": key, "d": document}`` (the key being the canonical JSON of its
``_id``, see ``backup.changes``) in a collection named after its namespace. The reserved collection
``$head`` (``$`` cannot start a MongoDB collection name) holds the head's state: its sync id, the position
applied through, the position the initial sync must reach to be consistent (``minValid``) and whether the
initial sync's documents are all loaded. The position moves once a slice's changes are committed; a slice
applied in part before a crash is applied again after it, which changes nothing (replay is idempotent).

May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from opsmgr.backup.changes import RESERVED_NS, Change, ChangeOp, apply_changes, doc_key
from opsmgr.backup.snapshots import Record, record_line
from opsmgr.errors import InvalidInput
from opsmgr.store.engine import Store, Txn
from opsmgr.store.schema import documents

STATE_COLL = RESERVED_NS
STATE_ID = "state"
LOAD_BATCH = 2000
APPLY_BATCH = 5000
# The head's own oplog is of no use (nothing tails a head): keep it at a token size.
_HEAD_OPLOG_BYTES = 1 << 20


@dataclass(frozen=True)
class HeadState:
    sync_id: str
    applied: int
    min_valid: int
    loaded: bool

    @property
    def consistent(self) -> bool:
        """True once the initial sync is loaded and slices were applied through ``min_valid``."""
        return self.loaded and self.applied >= self.min_valid


def wrap(key: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"_id": key, "d": doc}


class _HeadTarget:
    """``backup.changes.DocTarget`` over a head transaction (documents wrapped, see the module docstring)."""

    def __init__(self, txn: Txn, collections: Callable[[], list[str]]) -> None:
        self.txn = txn
        self.collections = collections

    def get(self, ns: str, key: str) -> dict[str, Any] | None:
        found = self.txn.get(ns, key)
        return None if found is None else dict(found["d"])

    def put(self, ns: str, key: str, doc: dict[str, Any]) -> None:
        self.txn.put(ns, wrap(key, doc))

    def delete(self, ns: str, key: str) -> None:
        self.txn.delete(ns, key)

    def drop(self, ns: str, *, database: bool) -> None:
        colls = [c for c in self.collections() if c.startswith(ns + ".")] if database else [ns]
        for coll in colls:
            if coll != STATE_COLL:
                for doc in self.txn.find(coll):
                    self.txn.delete(coll, doc["_id"])


def _segments(changes: list[Change]) -> Iterator[list[Change]]:
    """Batches of changes; a database drop starts a new batch, so that every collection created before it
    is committed when it lists them (the head lists collections outside the transaction)."""
    batch: list[Change] = []
    for c in changes:
        if batch and (c.op is ChangeOp.DROP_DB or len(batch) >= APPLY_BATCH):
            yield batch
            batch = []
        batch.append(c)
    if batch:
        yield batch


class Head:
    def __init__(self, path: Path, name: str = "head") -> None:
        self.path = path
        self.store = Store(f"sqlite:///{path}", name=name, oplog_max_bytes=_HEAD_OPLOG_BYTES)

    def close(self) -> None:
        self.store.close()

    def state(self) -> HeadState | None:
        doc = self.store.get(STATE_COLL, STATE_ID)
        if doc is None:
            return None
        return HeadState(doc["syncId"], doc["applied"], doc["minValid"], doc["loaded"])

    def _put_state(self, t: Txn, state: HeadState) -> None:
        t.put(
            STATE_COLL,
            {
                "_id": STATE_ID,
                "syncId": state.sync_id,
                "applied": state.applied,
                "minValid": state.min_valid,
                "loaded": state.loaded,
            },
        )

    def init(self, sync_id: str, position: int) -> HeadState:
        state = HeadState(sync_id, position, position, loaded=False)
        with self.store.tx() as t:
            self._put_state(t, state)
        return state

    def load(self, docs: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Adds initial-sync documents ``(namespace, document)``; returns how many."""
        n = 0
        batch: list[tuple[str, dict[str, Any]]] = []
        for item in docs:
            batch.append(item)
            if len(batch) >= LOAD_BATCH:
                n += self._load_batch(batch)
                batch = []
        return n + self._load_batch(batch)

    def _load_batch(self, batch: list[tuple[str, dict[str, Any]]]) -> int:
        if not batch:
            return 0
        with self.store.tx() as t:
            for ns, doc in batch:
                if not isinstance(doc, dict) or "_id" not in doc:
                    raise InvalidInput("an initial-sync document needs an _id", field="_id")
                if ns == STATE_COLL:
                    raise InvalidInput(f"namespace {STATE_COLL!r} is reserved", field="ns")
                t.put(ns, wrap(doc_key(doc["_id"]), doc))
        return len(batch)

    def load_records(self, records: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Adds snapshot records ``(namespace, key, document)`` (a restore's scratch head)."""
        batch: list[tuple[str, str, dict[str, Any]]] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= LOAD_BATCH:
                self._load_records(batch)
                batch = []
        self._load_records(batch)

    def _load_records(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        with self.store.tx() as t:
            for ns, key, doc in batch:
                t.put(ns, wrap(key, doc))

    def finish_load(self, min_valid: int) -> HeadState:
        with self.store.tx() as t:
            doc = t.get(STATE_COLL, STATE_ID)
            assert doc is not None, "finish_load before init"
            state = HeadState(doc["syncId"], doc["applied"], max(min_valid, doc["applied"]), loaded=True)
            self._put_state(t, state)
        return state

    def apply(self, changes: list[Change], through: int, *, after: int | None = None) -> int:
        """Applies the changes with ``after < ts <= through`` and records ``through`` as applied."""
        if after is not None:
            changes = [c for c in changes if after < c.ts <= through]
        n = 0
        for segment in _segments(changes):
            with self.store.tx() as t:
                n += apply_changes(_HeadTarget(t, self.store.collections), segment)
        with self.store.tx() as t:
            doc = t.get(STATE_COLL, STATE_ID)
            assert doc is not None, "apply before init"
            t.put(STATE_COLL, {**doc, "applied": max(through, doc["applied"])})
        return n

    def trim_oplog(self) -> None:
        self.store.cap(max_bytes=0)

    def count(self) -> int:
        with self.store.read() as t:
            return sum(t.count(c) for c in self.store.collections() if c != STATE_COLL)

    def _rows(self) -> Iterator[tuple[str, str, str]]:
        # Streams rows in (collection, id) order from one read transaction; Store.find would hold a whole
        # collection in memory.
        query = (
            sa.select(documents.c.coll, documents.c.id, documents.c.doc)
            .where(documents.c.coll != STATE_COLL)
            .order_by(documents.c.coll, documents.c.id)
        )
        with self.store.engine.connect() as conn, conn.begin():
            for row in conn.execution_options(yield_per=1000).execute(query):
                yield row[0], row[1], row[2]

    def records(self) -> Iterator[Record]:
        """The head's documents as snapshot records, in (namespace, key) order."""
        for coll, key, text in self._rows():
            yield coll, key, record_line(coll, text)

    def documents(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(namespace, document)`` of every document, in (namespace, key) order."""
        for coll, _key, text in self._rows():
            yield coll, json.loads(text)["d"]


class Heads:
    """The head files of every source under ``<blockstore>/heads``; opened heads are kept open."""

    def __init__(self, root: Path) -> None:
        self.root = root / "heads"
        self.root.mkdir(parents=True, exist_ok=True)
        self._open: dict[tuple[str, str], Head] = {}
        self._lock = threading.Lock()

    def _dir(self, source_id: str) -> Path:
        if not source_id.isalnum():
            raise InvalidInput("bad source id", field="sourceId")
        return self.root / source_id

    def current_sync(self, source_id: str) -> str | None:
        try:
            return (self._dir(source_id) / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def open(self, source_id: str, sync_id: str) -> Head:
        if not sync_id.isalnum():
            raise InvalidInput("bad sync id", field="syncId")
        with self._lock:
            head = self._open.get((source_id, sync_id))
            if head is None:
                folder = self._dir(source_id)
                folder.mkdir(parents=True, exist_ok=True)
                head = Head(folder / f"{sync_id}.sqlite", name=f"head {source_id}/{sync_id}")
                self._open[(source_id, sync_id)] = head
            return head

    def current(self, source_id: str) -> Head | None:
        sync_id = self.current_sync(source_id)
        if sync_id is None or not (self._dir(source_id) / f"{sync_id}.sqlite").exists():
            return None
        return self.open(source_id, sync_id)

    def exists(self, source_id: str, sync_id: str) -> bool:
        return (self._dir(source_id) / f"{sync_id}.sqlite").exists()

    def promote(self, source_id: str, sync_id: str) -> None:
        """Makes ``sync_id`` the source's head (atomically), then removes every other head file of it."""
        folder = self._dir(source_id)
        tmp = folder / f"CURRENT.{uuid.uuid4().hex}"
        with open(tmp, "w") as f:
            f.write(sync_id + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / "CURRENT")
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for other in folder.iterdir():
            other_sync = other.name.split(".", 1)[0]
            if other.name != "CURRENT" and other_sync != sync_id:
                self._discard(source_id, other_sync)
                with contextlib.suppress(FileNotFoundError):
                    other.unlink()

    def _discard(self, source_id: str, sync_id: str) -> None:
        with self._lock:
            head = self._open.pop((source_id, sync_id), None)
        if head is not None:
            head.close()

    def remove(self, source_id: str) -> None:
        with self._lock:
            keys = [k for k in self._open if k[0] == source_id]
        for _, sync_id in keys:
            self._discard(source_id, sync_id)
        shutil.rmtree(self._dir(source_id), ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            heads, self._open = list(self._open.values()), {}
        for head in heads:
            head.close()


def scratch_head(folder: Path) -> Head:
    """A throw-away head for materialising a restore; the caller closes it and deletes its files."""
    folder.mkdir(parents=True, exist_ok=True)
    return Head(folder / f"restore-{uuid.uuid4().hex}.sqlite", name="restore scratch")


def remove_head_files(head: Head) -> None:
    head.close()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(head.path) + suffix).unlink()

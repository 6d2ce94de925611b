"""Oplog entries of both kinds of source normalised into one applied form, :class:`Change`, and their
application to a document target. Pure (the targets are passed in).

- A backing database's entries are ``opsmgr.store`` oplog entries ``{ts, op: i|u|d, ns, _id, doc}``; inserts
  and updates carry the full post-image, so both become a ``PUT``.
- A MongoDB source's entries are oplog records ``{ts, op: i|u|d|c|n, ns, o, o2}``: an insert and a full
  replacement become a ``PUT``; an update with operators (``$set``/``$unset``, or the ``$v: 2`` diff of
  MongoDB 5.0+) a ``PATCH`` applied to the document as it is at that point of the replay; ``drop`` and
  ``dropDatabase`` a ``DROP``; ``applyOps`` (transactions) is expanded into its operations, which share the
  transaction's ``ts``, so a restore bound never splits a transaction. No-ops and commands without an effect
  on documents (``create``, ``createIndexes``, ...) are dropped; commands that would need more
  (``renameCollection``) are refused with a clear error, so the source has to be resynced.

A document's **key** is the canonical JSON of its ``_id``, so that ``5`` and ``"5"`` stay different documents
whatever the source. May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from opsmgr.errors import InvalidInput

MAX_KEY_LEN = 256
# Where a head keeps its own state (``backup.head``); ``$`` cannot start a MongoDB collection name.
RESERVED_NS = "$head"
# Commands that change no document: replaying them is doing nothing.
_INERT_COMMANDS = frozenset(
    {
        "create",
        "createIndexes",
        "dropIndexes",
        "collMod",
        "commitIndexBuild",
        "startIndexBuild",
        "abortIndexBuild",
        "emptycapped",
        "commitTransaction",
        "abortTransaction",
    }
)


class ChangeOp(StrEnum):
    PUT = "put"  # ``doc`` is the full post-image
    DELETE = "del"
    PATCH = "patch"  # ``doc`` is an update specification applied to the current document
    DROP = "drop"  # every document of the collection ``ns``
    DROP_DB = "dropdb"  # every document of every collection ``<ns>.*``


@dataclass(frozen=True, slots=True)
class Change:
    ts: int
    op: ChangeOp
    ns: str
    key: str = ""
    doc: dict[str, Any] | None = None

    def to_json(self) -> list[Any]:
        return [self.ts, self.op.value, self.ns, self.key, self.doc]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Change:
        ts, op, ns, key, doc = raw
        return cls(int(ts), ChangeOp(op), str(ns), str(key), doc)


def canonical(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def doc_key(doc_id: Any) -> str:
    key = canonical(doc_id)
    if len(key) > MAX_KEY_LEN:
        raise InvalidInput(f"an _id longer than {MAX_KEY_LEN} characters cannot be backed up", field="_id")
    return key


def _need(raw: dict[str, Any], field: str) -> Any:
    if field not in raw:
        raise InvalidInput(f"oplog entry without {field!r}", field=field)
    return raw[field]


def _ts(raw: dict[str, Any]) -> int:
    ts = _need(raw, "ts")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise InvalidInput("oplog entry ts must be a non-negative integer", field="ts")
    return ts


def _ns(raw: dict[str, Any]) -> str:
    ns = _need(raw, "ns")
    if not isinstance(ns, str) or not ns:
        raise InvalidInput("oplog entry ns must be a non-empty string", field="ns")
    if ns == RESERVED_NS:
        raise InvalidInput(f"namespace {RESERVED_NS!r} is reserved by the backup daemon", field="ns")
    return ns


def _doc(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"oplog entry {field} must be a document", field=field)
    return value


def from_store_entry(raw: dict[str, Any]) -> Change:
    """A backing database's oplog entry (``OplogEntry.to_json()``)."""
    ts, ns, op = _ts(raw), _ns(raw), _need(raw, "op")
    doc_id = _need(raw, "_id")
    if op == "d":
        return Change(ts, ChangeOp.DELETE, ns, doc_key(doc_id))
    if op not in ("i", "u"):
        raise InvalidInput(f"unknown store oplog op {op!r}", field="op")
    doc = _doc(raw.get("doc"), "doc")
    if doc.get("_id") != doc_id:
        raise InvalidInput("oplog entry doc._id differs from its _id", field="doc")
    return Change(ts, ChangeOp.PUT, ns, doc_key(doc_id), doc)


def _is_operator_update(o: dict[str, Any]) -> bool:
    return any(k.startswith("$") for k in o)


def from_mongo_record(raw: dict[str, Any], ts: int | None = None) -> list[Change]:
    """A MongoDB oplog record (``OplogRecord`` fields); ``ts`` overrides it inside an ``applyOps``."""
    ts = _ts(raw) if ts is None else ts
    op = _need(raw, "op")
    if op == "n":
        return []
    ns = _ns(raw)
    o = _doc(_need(raw, "o"), "o")
    if op == "c":
        return _from_command(ts, ns, o)
    if op == "i":
        return [Change(ts, ChangeOp.PUT, ns, doc_key(_need(o, "_id")), o)]
    if op == "d":
        return [Change(ts, ChangeOp.DELETE, ns, doc_key(_need(o, "_id")))]
    if op == "u":
        o2 = _doc(raw.get("o2"), "o2")
        doc_id = _need(o2, "_id")
        if _is_operator_update(o):
            return [Change(ts, ChangeOp.PATCH, ns, doc_key(doc_id), o)]
        return [Change(ts, ChangeOp.PUT, ns, doc_key(doc_id), {**o, "_id": doc_id})]
    raise InvalidInput(f"unknown oplog op {op!r}", field="op")


def _from_command(ts: int, ns: str, o: dict[str, Any]) -> list[Change]:
    db = ns.split(".", 1)[0]
    if "applyOps" in o:
        ops = o["applyOps"]
        if not isinstance(ops, list):
            raise InvalidInput("applyOps must be a list", field="o.applyOps")
        return [c for sub in ops for c in from_mongo_record(_doc(sub, "o.applyOps"), ts)]
    if "drop" in o:
        return [Change(ts, ChangeOp.DROP, f"{db}.{o['drop']}")]
    if "dropDatabase" in o:
        return [Change(ts, ChangeOp.DROP_DB, db)]
    name = next(iter(o), "")
    if name in _INERT_COMMANDS:
        return []
    raise InvalidInput(
        f"oplog command {name!r} cannot be replayed by the backup daemon: resync the source", field="o"
    )


# Update specifications.


def _split(path: str) -> list[str]:
    parts = path.split(".")
    if not all(parts):
        raise InvalidInput(f"bad field path {path!r}", field="o")
    return parts


def _step(container: Any, part: str, create: bool) -> Any:
    if isinstance(container, list) and part.isdigit():
        idx = int(part)
        if idx >= len(container):
            if not create:
                return None
            container.extend([None] * (idx + 1 - len(container)))
            container[idx] = {}
        return container[idx]
    if isinstance(container, dict):
        if part not in container and create:
            container[part] = {}
        return container.get(part)
    if create:
        raise InvalidInput(f"cannot create field {part!r} in a non-document", field="o")
    return None


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = _split(path)
    target: Any = doc
    for part in parents:
        target = _step(target, part, create=True)
    if isinstance(target, list) and last.isdigit():
        _step(target, last, create=True)
        target[int(last)] = value
    elif isinstance(target, dict):
        target[last] = value
    else:
        raise InvalidInput(f"cannot set {path!r} in a non-document", field="o")


def _unset_path(doc: dict[str, Any], path: str) -> None:
    *parents, last = _split(path)
    target: Any = doc
    for part in parents:
        target = _step(target, part, create=False)
        if target is None:
            return
    if isinstance(target, dict):
        target.pop(last, None)
    elif isinstance(target, list) and last.isdigit() and int(last) < len(target):
        target[int(last)] = None  # MongoDB's $unset of an array element leaves null


def _apply_diff(target: Any, diff: dict[str, Any]) -> Any:
    """MongoDB 5.0+'s ``$v: 2`` update diff applied to a document or (``a: true``) an array."""
    if diff.get("a") is True:
        if not isinstance(target, list):
            raise InvalidInput("array diff applied to a non-array", field="o.diff")
        if "l" in diff:
            del target[int(diff["l"]) :]
        for k, v in diff.items():
            if k.startswith("u"):
                idx = int(k[1:])
                target.extend([None] * (idx + 1 - len(target)))
                target[idx] = v
            elif k.startswith("s"):
                target[int(k[1:])] = _apply_diff(target[int(k[1:])], _doc(v, "o.diff"))
        return target
    if not isinstance(target, dict):
        raise InvalidInput("document diff applied to a non-document", field="o.diff")
    for field in _doc(diff.get("d", {}), "o.diff.d"):
        target.pop(field, None)
    for section in ("u", "i"):
        target.update(_doc(diff.get(section, {}), f"o.diff.{section}"))
    for k, v in diff.items():
        if k.startswith("s") and len(k) > 1:
            target[k[1:]] = _apply_diff(target.get(k[1:]), _doc(v, "o.diff"))
    return target


def apply_update(doc: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The post-image of ``doc`` after the update ``spec`` as the oplog records it."""
    out = copy.deepcopy(doc)
    if spec.get("$v") == 2:
        result = _apply_diff(out, _doc(_need(spec, "diff"), "o.diff"))
        return dict(result)
    unknown = set(spec) - {"$set", "$unset", "$v"}
    if unknown:
        raise InvalidInput(f"update operators {sorted(unknown)} are not replayable", field="o")
    for path, value in _doc(spec.get("$set", {}), "o.$set").items():
        _set_path(out, path, value)
    for path in _doc(spec.get("$unset", {}), "o.$unset"):
        _unset_path(out, path)
    out["_id"] = doc["_id"]
    return out


# Applying changes.


class DocTarget(Protocol):
    """Where changes land: documents by (namespace, key). ``drop`` removes every document of ``ns``, or of
    every collection of the database ``ns`` when ``database`` is true."""

    def get(self, ns: str, key: str) -> dict[str, Any] | None: ...

    def put(self, ns: str, key: str, doc: dict[str, Any]) -> None: ...

    def delete(self, ns: str, key: str) -> None: ...

    def drop(self, ns: str, *, database: bool) -> None: ...


def apply_changes(target: DocTarget, changes: Iterable[Change]) -> int:
    """Replays changes in order; idempotent for any suffix replayed twice. Returns how many were applied.

    A ``PATCH`` of a document that is not there is skipped, as MongoDB's oplog application does: the
    document was deleted later in the history being replayed.
    """
    n = 0
    for c in changes:
        if c.op is ChangeOp.PUT:
            assert c.doc is not None
            target.put(c.ns, c.key, c.doc)
        elif c.op is ChangeOp.DELETE:
            target.delete(c.ns, c.key)
        elif c.op is ChangeOp.PATCH:
            assert c.doc is not None
            current = target.get(c.ns, c.key)
            if current is not None:
                target.put(c.ns, c.key, apply_update(current, c.doc))
        else:
            target.drop(c.ns, database=c.op is ChangeOp.DROP_DB)
        n += 1
    return n


def encode_changes(changes: Iterable[Change]) -> Iterator[bytes]:
    """One JSON line per change."""
    for c in changes:
        yield canonical(c.to_json()).encode() + b"\n"


def decode_changes(lines: Iterable[bytes]) -> Iterator[Change]:
    for line in lines:
        if line.strip():
            yield Change.from_json(json.loads(line))

"""A simulated member's data and oplog as clients and the backup agent see them: client writes on a set's
primary (checked against unique indexes, each a MongoDB-shaped oplog entry), ``fsyncLock``/``fsyncUnlock``
(nested; a locked primary takes no writes), the oplog window, reading the oplog after a position (a position
already truncated is an :class:`~opsmgr.errors.OplogGap`) and a dump of the documents.

Commands are functions ``(ctx, n, t, ...)`` as in ``sim.processes``, or ``(ctx, g, t, ...)`` for a write to a
replica set. May import ``opsmgr.errors``, ``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import copy
from typing import Any

from opsmgr.drivers.base import CommandConflict, OplogRecord, OplogWindow
from opsmgr.errors import InvalidInput, NotFound, OplogGap
from opsmgr.sim.ctx import Ctx
from opsmgr.sim.data import id_key
from opsmgr.sim.indexes import check_unique
from opsmgr.sim.members import effective_indexes, up_members, writer
from opsmgr.sim.model import MB, GroupRec, NodeRec, check_namespace
from opsmgr.sim.processes import NOT_PRIMARY, refuse, up
from opsmgr.sim.replication import append_write, cap_oplog


def check_write(ns: str, op: str, doc: dict[str, Any]) -> None:
    check_namespace(ns)
    if op not in ("i", "u", "d") or "_id" not in doc:
        raise InvalidInput("op must be 'i', 'u' or 'd' and the document must have an _id", field="op")


def write(ctx: Ctx, g: GroupRec, t: float, ns: str, op: str, doc: dict[str, Any]) -> int:
    """One client write on the primary: ``op`` "i" (insert), "u" (replace by ``_id``) or "d" (delete by
    ``_id``), checked against unique indexes. Returns the entry's ``ts``."""
    p = writer(ctx, g, up_members(ctx, g, t))
    if p is None or p.lineage is None:
        raise refuse(f"replica set {g.set_name}: no writable primary", NOT_PRIMARY, "NotWritablePrimary")
    key = id_key(doc["_id"])
    exists = ctx.data.get_doc(p.lineage, ns, key, p.applied_ts) is not None
    if op == "i" and exists:
        raise refuse(f"E11000 duplicate key error collection: {ns} index: _id_", 11000, "DuplicateKey")
    if op in ("u", "d") and not exists:
        raise NotFound(f"no document with _id {doc['_id']!r} in {ns}")
    if op != "d":
        for spec in effective_indexes(ctx, p).get(ns, []):
            if spec.get("unique"):
                check_unique(ctx, p, ns, spec, extra=doc)
    body = copy.deepcopy(doc)
    if op == "d":
        entry = append_write(ctx, g, p, t, "d", ns, {"_id": body["_id"]}, None, (key, None))
    else:
        o2 = {"_id": body["_id"]} if op == "u" else None
        entry = append_write(ctx, g, p, t, op, ns, body, o2, (key, body))
    cap_oplog(ctx, p)
    return entry.ts


def fsync_lock(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> int:
    n = up(n, name, t)
    n.fsync_locks += 1
    return n.fsync_locks


def fsync_unlock(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> int:
    n = up(n, name, t)
    if not n.fsync_locks:
        raise refuse(f"{name}: fsyncUnlock called when not locked", 125, "CommandFailed")
    n.fsync_locks -= 1
    return n.fsync_locks


def oplog_window(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> OplogWindow | None:
    n = up(n, name, t)
    if n.lineage is None:
        return None
    first = ctx.data.entries(n.lineage, n.trunc_ts, n.applied_ts, 1)
    if not first:
        return None
    return OplogWindow(
        size_mb=n.cap_bytes / MB,
        used_mb=(n.applied_cum - n.trunc_cum) / MB,
        first_ts=first[0].ts,
        last_ts=n.applied_ts,
        window_hours=((n.applied_ts >> 32) - (first[0].ts >> 32)) / 3600.0,
    )


def oplog_read(
    ctx: Ctx, n: NodeRec | None, t: float, name: str, after_ts: int, limit: int
) -> list[OplogRecord]:
    n = up(n, name, t)
    if n.lineage is None:
        raise CommandConflict(f"{name}: has no oplog to read (not a replica set member, or not initiated)")
    if after_ts < n.trunc_ts:
        first = ctx.data.entries(n.lineage, n.trunc_ts, n.applied_ts, 1)
        raise OplogGap(after_ts, first[0].ts if first else None)
    return [e.record() for e in ctx.data.entries(n.lineage, after_ts, n.applied_ts, limit)]


def dump(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> list[tuple[str, dict[str, Any]]]:
    n = up(n, name, t)
    if n.lineage is None:
        return []
    docs = ctx.data.docs_at(n.lineage, n.applied_ts)
    return sorted(docs, key=lambda nd: (nd[0], id_key(nd[1].get("_id"))))

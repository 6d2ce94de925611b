"""Indexes of a simulated member: ``createIndexes`` (replicated from the primary through a ``c`` oplog entry,
or built locally on a standalone member; a unique index refused while duplicates exist), ``listIndexes``,
and dropping an index the member built itself. Client writes are checked against unique indexes here too.

A member's indexes are its own builds plus the replicated ``createIndexes`` it has applied
(``members.effective_indexes``). Commands are functions ``(ctx, n, t, ...)`` as in ``sim.processes``. May
import ``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import copy
from typing import Any

from opsmgr.drivers.base import CommandInvalid, RunMode
from opsmgr.sim.ctx import Ctx
from opsmgr.sim.data import id_key
from opsmgr.sim.members import effective_indexes
from opsmgr.sim.model import NodeRec, Role, check_namespace
from opsmgr.sim.processes import NOT_PRIMARY, refuse, up
from opsmgr.sim.replication import append_write, cap_oplog


def index_spec(ns: str, keys: list[tuple[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """The spec ``createIndexes`` would store for ``keys`` and ``options`` (named after its keys unless
    named)."""
    check_namespace(ns)
    if not keys:
        raise CommandInvalid("an index needs at least one key", code=67, code_name="CannotCreateIndex")
    name = options.get("name") or "_".join(f"{k}_{v}" for k, v in keys)
    spec: dict[str, Any] = {"v": 2, "key": dict(keys), "name": name}
    spec.update((k, copy.deepcopy(v)) for k, v in options.items() if k != "name")
    return spec


def create_index(ctx: Ctx, n: NodeRec | None, t: float, name: str, ns: str, spec: dict[str, Any]) -> None:
    n = up(n, name, t)
    g = ctx.group(n.gid)
    primary = n.mode == RunMode.REPLSET.value
    if primary and (g is None or n.role != Role.PRIMARY):
        raise refuse(f"{name}: not primary (createIndexes)", NOT_PRIMARY, "NotWritablePrimary")
    if primary and n.fsync_locks:
        raise refuse(f"{name}: writes are locked by fsyncLock", 46, "LockBusy")
    existing = effective_indexes(ctx, n).get(ns, [])
    same_name = next((s for s in existing if s["name"] == spec["name"]), None)
    if same_name is not None:
        if same_name == spec:
            return
        raise refuse(
            f"{name}: an index named {spec['name']} already exists with different options",
            86,
            "IndexKeySpecsConflict",
        )
    if any(s["key"] == spec["key"] for s in existing):
        raise refuse(
            f"{name}: an index with the key {spec['key']} already exists under another name",
            85,
            "IndexOptionsConflict",
        )
    if spec.get("unique"):
        check_unique(ctx, n, ns, spec)
    if not primary:
        n.indexes.setdefault(ns, []).append(spec)
        return
    assert g is not None and n.lineage is not None
    db, coll = ns.split(".", 1)
    command = {"createIndexes": coll, **spec}
    entry = append_write(ctx, g, n, t, "c", f"{db}.$cmd", command, None, None)
    ctx.lineage(n.lineage).index_ops.append({"ts": entry.ts, "ns": ns, "spec": spec})
    cap_oplog(ctx, n)


def check_unique(
    ctx: Ctx, n: NodeRec, ns: str, spec: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    """Refuse (E11000) when two of ``n``'s documents in ``ns`` (``extra`` replacing the one with its
    ``_id``) have the same value for the unique index ``spec``."""
    if n.lineage is None:
        return
    fields = list(spec["key"])
    seen: dict[str, Any] = {}
    docs = [d for dns, d in ctx.data.docs_at(n.lineage, n.applied_ts) if dns == ns]
    if extra is not None:
        docs = [d for d in docs if d.get("_id") != extra.get("_id")] + [extra]
    for doc in docs:
        value = id_key([doc.get(f) for f in fields])
        if value in seen and seen[value] != doc.get("_id"):
            dup = ", ".join(f"{f}: {doc.get(f)!r}" for f in fields)
            raise refuse(
                f"E11000 duplicate key error collection: {ns} index: {spec['name']} dup key: {{ {dup} }}",
                11000,
                "DuplicateKey",
            )
        seen[value] = doc.get("_id")


def list_indexes(ctx: Ctx, n: NodeRec | None, t: float, name: str, ns: str) -> list[dict[str, Any]]:
    n = up(n, name, t)
    specs = effective_indexes(ctx, n).get(ns, [])
    return [{"v": 2, "key": {"_id": 1}, "name": "_id_"}, *copy.deepcopy(specs)]


def drop_index(ctx: Ctx, n: NodeRec | None, t: float, name: str, ns: str, index_name: str) -> None:
    """Drop an index this node built itself (standalone); a no-op when it has none of that name. An index it
    has through replication is refused: dropping it is a replicated write, not modelled."""
    n = up(n, name, t)
    own = n.indexes.get(ns, [])
    if any(s["name"] == index_name for s in own):
        n.indexes[ns] = [s for s in own if s["name"] != index_name]
        return
    if any(s["name"] == index_name for s in effective_indexes(ctx, n).get(ns, [])):
        raise refuse(
            f"{name}: {index_name} on {ns} came through replication; the sim does not model dropping it",
            67,
            "CannotDropIndex",
        )

"""A simulated member's data replaced as a whole: loaded from a dump (a restore), wiped (it will do an initial
sync when it starts), or given a lineage of its own when it initiates a set.

A member's documents and oplog live in a lineage (``sim.data``) shared with the members replicating the same
history; replacing its data gives it a new lineage that starts with the documents and one no-op entry, so
that a restored member's oplog begins after its data. May import ``opsmgr.errors``, ``opsmgr.drivers.base``
and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from opsmgr.drivers.base import CommandConflict, RunMode
from opsmgr.errors import InvalidInput, NotFound
from opsmgr.sim.ctx import Ctx, next_ts
from opsmgr.sim.data import Entry, id_key
from opsmgr.sim.members import effective_indexes
from opsmgr.sim.model import NodeRec, check_namespace

DocKey = tuple[str, str]  # (namespace, the document's id key)


def fresh_lineage(
    ctx: Ctx, n: NodeRec, t: float, docs: Iterable[tuple[DocKey, dict[str, Any]]], msg: str, *, restored: bool
) -> None:
    """Give ``n`` a lineage of its own holding ``docs`` (its indexes kept), then write a no-op entry saying
    ``msg``. ``restored``: the documents are not in the new oplog (nothing was truncated from a brand-new
    one otherwise)."""
    indexes = effective_indexes(ctx, n)
    lin = ctx.new_lineage()
    ts = next_ts(0, t)
    for (ns, key), doc in docs:
        ctx.data.put_doc(lin.lid, ns, key, ts, doc)
    entry = Entry.make(ts, 0, "n", "", {"msg": msg}, None, int(t * 1000))
    ctx.data.append(lin.lid, [entry])
    lin.last_ts, lin.last_cum = ts, entry.cum
    ctx.set_lineage(n, lin.lid)
    n.indexes = indexes
    n.applied_ts, n.applied_cum = ts, entry.cum
    n.trunc_ts, n.trunc_cum = (ts - 1, 0) if restored else (0, 0)


def own_lineage(ctx: Ctx, n: NodeRec, t: float, msg: str) -> None:
    """Give ``n`` a lineage of its own holding its current documents."""
    docs = ctx.data.docs_at(n.lineage, n.applied_ts) if n.lineage is not None else []
    keyed = [((ns, id_key(doc["_id"])), doc) for ns, doc in docs]
    fresh_lineage(ctx, n, t, keyed, msg, restored=bool(docs))


def documents(docs: list[tuple[str, dict[str, Any]]]) -> dict[DocKey, dict[str, Any]]:
    """The documents of a dump to load, by namespace and id (a later one with the same id wins)."""
    by_key: dict[DocKey, dict[str, Any]] = {}
    for ns, doc in docs:
        check_namespace(ns)
        if not isinstance(doc, dict) or "_id" not in doc:
            raise InvalidInput(f"every document needs an _id (in {ns})", field="docs")
        by_key[(ns, id_key(doc["_id"]))] = copy.deepcopy(doc)
    return by_key


def load(
    ctx: Ctx, n: NodeRec | None, t: float, hostname: str, name: str, by_key: dict[DocKey, dict[str, Any]]
) -> None:
    """Replace the process's user data (it must be stopped or standalone); its oplog restarts."""
    if n is None:
        raise NotFound(f"no process {name} on {hostname}")
    if n.running and n.mode == RunMode.REPLSET.value:
        raise CommandConflict(f"{name}: stop it or start it standalone before replacing its data")
    fresh_lineage(ctx, n, t, by_key.items(), "data replaced (restore)", restored=True)


def wipe(ctx: Ctx, n: NodeRec | None, t: float, hostname: str, name: str) -> None:
    """Empty the stopped process's data directory (it will do an initial sync when it starts)."""
    if n is None:
        raise NotFound(f"no process {name} on {hostname}")
    if n.running:
        raise CommandConflict(f"{name}: stop it before wiping its data")
    lid = n.lineage
    ctx.set_lineage(n, None)
    if lid is not None:
        ctx.lineage(lid).refs.pop(n.key, None)
    n.applied_ts = n.applied_cum = n.trunc_ts = n.trunc_cum = 0
    n.indexes = {}

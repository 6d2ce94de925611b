"""Reading a simulated replica set at one instant: which members are up (ready, in replSet mode, with this
set's data), the state each reports for itself, who is electable, the primary and whether clients can write
to it, a secondary's sync source, a member's indexes, and the sets a process takes part in. Pure reads over
a :class:`~opsmgr.sim.ctx.Ctx`. May import ``opsmgr.drivers.base`` (``MemberState``) and ``opsmgr.sim``
modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opsmgr.drivers.base import MemberState
from opsmgr.sim import rsconfig
from opsmgr.sim.ctx import Ctx, due
from opsmgr.sim.model import ROLE_STATE, GroupRec, NodeRec, Role

Member = tuple[dict[str, Any], NodeRec]  # (member config, the process up at that address)


def election_timeout_s(g: GroupRec) -> float:
    return float(g.config["settings"]["electionTimeoutMillis"]) / 1000.0


def heartbeat_s(g: GroupRec) -> float:
    return float(g.config["settings"]["heartbeatIntervalMillis"]) / 1000.0


def up_members(ctx: Ctx, g: GroupRec, t: float) -> list[Member]:
    """Members of the config with a process up at their address: ready, replSet mode, this set's data."""
    out: list[Member] = []
    for m in g.config["members"]:
        n = ctx.listening(m["host"])
        if (
            n is not None
            and n.mode == "replset"
            and n.repl_set_name == g.set_name
            and n.gid == g.gid
            and due(t, n.ready_at)
        ):
            out.append((m, n))
    return out


def own_state(g: GroupRec, m: dict[str, Any] | None, n: NodeRec) -> MemberState:
    """The state a member up in ``g`` reports for itself."""
    if m is None:
        return MemberState.REMOVED
    if n.cfg_version == 0:
        return MemberState.STARTUP
    if m["arbiterOnly"]:
        return MemberState.ARBITER
    return ROLE_STATE[n.role]


def electable_now(g: GroupRec, m: dict[str, Any], n: NodeRec, t: float) -> bool:
    return (
        rsconfig.electable(m)
        and n.role == Role.SECONDARY
        and n.cfg_version == g.config["version"]
        and n.lineage is not None
        and n.stepdown is None
        and due(t, n.frozen_until)
        and due(t, n.stepdown_until)
    )


def primary_of(g: GroupRec, up: list[Member]) -> NodeRec | None:
    return next((n for _, n in up if n.key == g.primary and n.role == Role.PRIMARY), None)


def writer(ctx: Ctx, g: GroupRec, up: list[Member]) -> NodeRec | None:
    """The primary clients can write to now, if any."""
    p = primary_of(g, up)
    if p is None or not ctx.client_reach(p) or p.stepdown is not None or p.fsync_locks:
        return None
    return p


def sync_source(ctx: Ctx, g: GroupRec, n: NodeRec, up: list[Member]) -> NodeRec | None:
    """Where a secondary replicates from: the primary if it can, else the freshest member that can serve."""
    chaining = bool(g.config["settings"].get("chainingAllowed", True))
    cands = [
        o
        for m, o in up
        if o is not n
        and not m["arbiterOnly"]
        and o.lineage == n.lineage
        and o.role in (Role.PRIMARY, Role.SECONDARY)
        and ctx.reach(n, o)
        and o.applied_ts >= n.applied_ts
        and o.trunc_ts <= n.applied_ts
        and (chaining or o.role == Role.PRIMARY)
    ]
    if not cands:
        return None
    primary = next((o for o in cands if o.key == g.primary and o.role == Role.PRIMARY), None)
    return primary or max(cands, key=lambda o: o.applied_ts)


def effective_indexes(ctx: Ctx, n: NodeRec) -> dict[str, list[dict[str, Any]]]:
    """The node's own index builds plus the replicated ``createIndexes`` it has applied."""
    out = {ns: list(specs) for ns, specs in n.indexes.items()}
    if n.lineage is not None:
        for op in ctx.lineage(n.lineage).index_ops:
            if op["ts"] <= n.applied_ts:
                specs = out.setdefault(op["ns"], [])
                if all(s["name"] != op["spec"]["name"] for s in specs):
                    specs.append(op["spec"])
    return out


def groups_of(ctx: Ctx, nodes: Iterable[NodeRec]) -> list[GroupRec]:
    """The replica sets these processes take part in: bound to, or listed at their address."""
    out: dict[int, GroupRec] = {}
    for n in nodes:
        for g in (ctx.group(n.gid), ctx.addr_group(n.addr) if n.port else None):
            if g is not None:
                out[g.gid] = g
    return [out[k] for k in sorted(out)]

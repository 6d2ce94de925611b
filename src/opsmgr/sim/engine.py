"""The replica set state machine: how a simulated replica set evolves as time passes.

``advance(ctx, group, now)`` moves one replica set from its own time ``group.t`` to ``now`` in steps: each
step is a stretch of constant topology (``replication.flow``: the write load on the primary, secondaries
applying the oplog at their rate, oplog truncation) followed by an evaluation at the step's end
(``evaluate``: config and term propagation, pending step-downs, a primary's majority check, initial syncs,
elections, client connections). Steps end at the next scheduled event (an election timer, a sync's end, a
process becoming ready, a step-down deadline, ...) and, while anything is still moving, at least every
heartbeat interval; an idle set jumps straight to ``now``. Replica sets do not interact, so each is advanced
only when one of its processes is touched, and the cost is that of the steps of that set, not of the world
or its history.

The parts: ``ctx`` (one transaction's view), ``members`` (reading a set at one instant), ``elections``
(elections and step-downs, with MongoDB's rules), ``replication`` (writes, replication, oplog, initial sync).
May import ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import math

from opsmgr.sim import rsconfig
from opsmgr.sim.ctx import Ctx, due
from opsmgr.sim.elections import (
    progress_step_down,
    resolve_election,
    schedule_election,
    sees_majority,
    step_down,
    update_views,
)
from opsmgr.sim.members import Member, election_timeout_s, heartbeat_s, primary_of, up_members
from opsmgr.sim.model import GroupRec, Role, WriteLoad
from opsmgr.sim.replication import busy, catch_up_times, data_role, flow


def advance(ctx: Ctx, g: GroupRec, now: float) -> None:
    """Move ``g`` to ``now``. Each evaluation leaves the set settled, so a step in which nothing moved and
    no timer fell due needs none: an idle set costs one step however long it was left alone."""
    t = g.t
    while t < now:
        up = up_members(ctx, g, t)
        scheduled = next_event(ctx, g, t, up)
        end = min(now, scheduled)
        if busy(ctx, g, up):
            end = min(end, t + heartbeat_s(g))
        moved = flow(ctx, g, up, t, end)
        t = g.t = end
        if moved or due(t, scheduled):
            evaluate(ctx, g, t)


def next_event(ctx: Ctx, g: GroupRec, t: float, up: list[Member]) -> float:
    eto = election_timeout_s(g)
    times: list[float] = []
    if g.election is not None:
        times.append(float(g.election["at"]))
    for m in g.config["members"]:
        n = ctx.listening(m["host"])
        if n is not None and not due(t, n.ready_at):
            times.append(n.ready_at)
    for _m, n in up:
        times += [n.frozen_until, n.stepdown_until]
        if n.sync_end is not None:
            times.append(n.sync_end)
        for since in (n.no_primary_since, n.minority_since, n.takeover_since):
            if since is not None:
                times.append(since + eto)
        if n.stepdown is not None:
            times.append(float(n.stepdown["deadline"]))
            times += catch_up_times(ctx, g, n, t, up)
    return min((x for x in times if not due(t, x)), default=math.inf)


def evaluate(ctx: Ctx, g: GroupRec, t: float) -> None:
    """Everything a round of heartbeats decides, at time ``t``."""
    bind_members(ctx, g)
    up = up_members(ctx, g, t)
    version = g.config["version"]
    for _, n in up:
        if n.cfg_version < version and any(o.cfg_version == version and ctx.reach(n, o) for _, o in up):
            n.cfg_version = version
    newest = {n.key: max(o.term for _, o in up if ctx.reach(n, o)) for _, n in up}
    for _, n in up:
        if newest[n.key] > n.term:
            if n.role == Role.PRIMARY:
                step_down(ctx, g, n, t, "saw a newer term")
            n.term = newest[n.key]
    for key in list(g.bound):
        b = ctx.node(key)
        if b is None or b.gid != g.gid:
            g.bound.remove(key)
        elif b.listens_replset() and b.role == Role.PRIMARY and rsconfig.member_for(g.config, b.addr) is None:
            step_down(ctx, g, b, t, "removed from the config")
    for _, n in up:
        if n.stepdown is not None:
            progress_step_down(ctx, g, n, t, up)
    up = up_members(ctx, g, t)
    eto = election_timeout_s(g)
    for _, n in up:
        if n.role != Role.PRIMARY:
            continue
        if sees_majority(ctx, g, n, up):
            n.minority_since = None
        elif n.minority_since is None:
            n.minority_since = t
        elif due(t, n.minority_since + eto):
            step_down(ctx, g, n, t, "cannot see a majority of voting members")
    update_views(ctx, g, up, t)
    resolve_election(ctx, g, t, up)
    # After the election: members whose data is not the (new) primary's start their initial sync now.
    target = primary_of(g, up)
    for m, n in up:
        if not m["arbiterOnly"]:
            data_role(ctx, g, n, t, up, target)
    update_views(ctx, g, up, t)
    if g.election is None:
        schedule_election(ctx, g, t, up)
    refresh_clients(ctx, g, t, up)


def bind_members(ctx: Ctx, g: GroupRec) -> None:
    """Processes started with this set's name at a member's address join it (they get the config)."""
    for m in g.config["members"]:
        n = ctx.listening(m["host"])
        if n is None or n.mode != "replset" or n.repl_set_name != g.set_name or n.gid == g.gid:
            continue
        other = ctx.group(n.gid)
        if other is not None and rsconfig.member_for(other.config, n.addr) is not None:
            continue  # still a member of another set: it refuses this one's heartbeats
        if other is not None and n.key in other.bound:
            other.bound.remove(n.key)
        n.gid, n.cfg_version, n.role = g.gid, 0, Role.SECONDARY
        if n.key not in g.bound:
            g.bound.append(n.key)


def refresh_clients(ctx: Ctx, g: GroupRec, t: float, up: list[Member]) -> None:
    """Client connections follow the primary; time without a writable primary is accounted."""
    p = primary_of(g, up)
    reachable = p is not None and ctx.client_reach(p)
    if reachable:
        g.connected = WriteLoad.from_json(g.load).clients
    elif g.connected:
        g.dropped += g.connected
        ctx.event(g, t, "connections dropped", count=g.connected)
        g.connected = 0
    writable = reachable and p is not None and p.stepdown is None
    if writable and g.outage_since is not None:
        lasted = t - g.outage_since
        g.outage_total += lasted
        g.outage_since = None
        ctx.event(g, t, "writable", after_s=round(lasted, 3))
    elif not writable and g.ever_primary and g.outage_since is None:
        g.outage_since = t

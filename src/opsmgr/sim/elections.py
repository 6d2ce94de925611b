"""Elections and step-downs of a simulated replica set (protocol version 1, as MongoDB documents them).

- a member stands when it is electable (priority > 0, votes 1, not an arbiter, SECONDARY, has the current
  config, not frozen by ``replSetFreeze`` nor inside a ``replSetStepDown`` period) and either it has seen
  no primary for ``electionTimeoutMillis``, or it has a higher priority than the primary and has been within
  2 seconds of its optime for ``electionTimeoutMillis`` (priority takeover), or the stepping-down primary
  handed the election to it (``enableElectionHandoff``);
- among the members that can win at that moment the highest priority stands (then the freshest optime,
  then the lowest ``_id``); winning takes ``election_s``;
- it wins with the votes of a majority of the config's voting members: each voter must be up, in a state
  that votes (PRIMARY, SECONDARY, STARTUP2, RECOVERING, ARBITER), reachable from the candidate, and not
  ahead of the candidate's optime (arbiters hold no data and always qualify);
- the term goes up by one per election, so there is never more than one primary per term; primaries of
  older terms that the winner can reach step down; a primary that cannot see a majority of voting members
  steps down after ``electionTimeoutMillis``;
- a winner behind the end of the oplog rolls back the entries after its optime on every member.

A pending ``replSetStepDown`` or shutdown of a primary waits for an electable secondary to catch up and
hands it the election, or fails at its deadline; its outcome is kept for the caller polling it. A process
that ends (shutdown or crash) keeps its data. May import ``opsmgr.drivers.base`` (``MemberState``) and
``opsmgr.sim`` modules.
"""

from __future__ import annotations

from typing import Any

from opsmgr.drivers.base import MemberState
from opsmgr.sim import rsconfig
from opsmgr.sim.ctx import Ctx, due
from opsmgr.sim.members import Member, electable_now, election_timeout_s, own_state
from opsmgr.sim.model import GroupRec, NodeRec, Role

VOTING_STATES = frozenset(
    {
        MemberState.PRIMARY,
        MemberState.SECONDARY,
        MemberState.STARTUP2,
        MemberState.RECOVERING,
        MemberState.ARBITER,
    }
)


TAKEOVER_FRESHNESS_S = 2  # MongoDB's priorityTakeoverFreshnessWindowSeconds


def voters_for(ctx: Ctx, g: GroupRec, c: NodeRec, up: list[Member]) -> list[NodeRec] | None:
    """The members that would vote for ``c`` now, when they are a majority; else None."""
    voters = [
        o
        for m, o in up
        if m["votes"] == 1
        and own_state(g, m, o) in VOTING_STATES
        and (o is c or ctx.reach(c, o))
        and (m["arbiterOnly"] or o.applied_ts <= c.applied_ts)
    ]
    return voters if len(voters) >= rsconfig.majority(g.config) else None


def sees_majority(ctx: Ctx, g: GroupRec, p: NodeRec, up: list[Member]) -> bool:
    seen = sum(
        1
        for m, o in up
        if m["votes"] == 1 and own_state(g, m, o) in VOTING_STATES and (o is p or ctx.reach(p, o))
    )
    return seen >= rsconfig.majority(g.config)


def update_views(ctx: Ctx, g: GroupRec, up: list[Member], t: float) -> None:
    """Each member's election timer (time since it last saw a primary) and priority-takeover timer."""
    primaries = [(m, p) for m, p in up if p.role == Role.PRIMARY]
    for m, n in up:
        visible = [(pm, p) for pm, p in primaries if ctx.reach(n, p) and p.term >= n.term]
        if visible:
            n.no_primary_since = None
        elif n.no_primary_since is None:
            n.no_primary_since = t
        pm, p = max(visible, key=lambda mp: mp[1].term) if visible else (None, None)
        if (
            p is not None
            and pm is not None
            and p is not n
            and rsconfig.electable(m)
            and n.role == Role.SECONDARY
            and m["priority"] > pm["priority"]
            and n.lineage == p.lineage
            and (p.applied_ts >> 32) - (n.applied_ts >> 32) <= TAKEOVER_FRESHNESS_S
        ):
            if n.takeover_since is None:
                n.takeover_since = t
        else:
            n.takeover_since = None


def schedule_election(ctx: Ctx, g: GroupRec, t: float, up: list[Member]) -> None:
    eto = election_timeout_s(g)
    cands: list[tuple[dict[str, Any], NodeRec, str]] = []
    for m, n in up:
        if not electable_now(g, m, n, t):
            continue
        if n.no_primary_since is not None and due(t, n.no_primary_since + eto):
            reason = "election timeout"
        elif n.takeover_since is not None and due(t, n.takeover_since + eto):
            reason = "priority takeover"
        else:
            continue
        if voters_for(ctx, g, n, up) is not None:
            cands.append((m, n, reason))
    if cands:
        _m, n, reason = max(cands, key=lambda c: (c[0]["priority"], c[1].applied_ts, -c[0]["_id"]))
        g.election = {"candidate": n.key, "at": t + ctx.params.election_s, "reason": reason}


def resolve_election(ctx: Ctx, g: GroupRec, t: float, up: list[Member]) -> None:
    e = g.election
    if e is None or not due(t, float(e["at"])):
        return
    g.election = None
    found = next(((m, n) for m, n in up if n.key == e["candidate"]), None)
    if found is None or not electable_now(g, found[0], found[1], t):
        return
    voters = voters_for(ctx, g, found[1], up)
    if voters is not None:
        win(ctx, g, found[1], t, voters, str(e["reason"]), up)


def win(
    ctx: Ctx, g: GroupRec, c: NodeRec, t: float, voters: list[NodeRec], reason: str, up: list[Member]
) -> None:
    term = max([g.term, *(o.term for _, o in up)]) + 1
    votes = [{"host": o.addr, "optime_ts": o.applied_ts} for o in voters]
    winner_optime = c.applied_ts
    rollback(ctx, g, c, t)
    for _, o in up:
        if o is not c and o.role == Role.PRIMARY and ctx.reach(c, o):
            step_down(ctx, g, o, t, f"saw {c.addr} win term {term}")
    c.role = Role.PRIMARY
    c.term = term
    c.no_primary_since = c.minority_since = c.takeover_since = None
    for o in voters:
        o.term = max(o.term, term)
    g.primary, g.term = c.key, term
    g.elections += 1
    g.ever_primary = True
    ctx.event(
        g,
        t,
        "election",
        term=term,
        winner=c.addr,
        reason=reason,
        winner_optime_ts=winner_optime,
        votes=votes,
        voting_members=rsconfig.voting_count(g.config),
        majority=rsconfig.majority(g.config),
        no_primary_s=round(t - g.outage_since, 3) if g.outage_since is not None else 0.0,
    )


def rollback(ctx: Ctx, g: GroupRec, c: NodeRec, t: float) -> None:
    """Undo, on every member of ``c``'s lineage, the entries after ``c``'s optime (never replicated to it)."""
    assert c.lineage is not None
    lin = ctx.lineage(c.lineage)
    if lin.last_ts <= c.applied_ts:
        return
    removed = ctx.data.truncate_after(lin.lid, c.applied_ts)
    ctx.data.rollback_docs(lin.lid, c.applied_ts)
    lin.last_ts, lin.last_cum = c.applied_ts, c.applied_cum
    lin.index_ops = [op for op in lin.index_ops if op["ts"] <= c.applied_ts]
    hosts = []
    for key in sorted(lin.refs):
        o = ctx.node(key)
        if o is None or o.applied_ts <= c.applied_ts:
            continue
        hosts.append(o.addr)
        o.applied_ts, o.applied_cum = c.applied_ts, c.applied_cum
        if o.trunc_ts >= o.applied_ts:  # nothing in common left in its oplog: it must resync
            ctx.set_lineage(o, None)
            o.applied_ts = o.applied_cum = o.trunc_ts = o.trunc_cum = 0
    ctx.touch(lin.lid)
    g.rolled_back += removed
    ctx.event(g, t, "rollback", ops=removed, to_ts=c.applied_ts, hosts=hosts)


def finish_request(n: NodeRec, error: str | None) -> None:
    """Record the outcome of ``n``'s pending step-down or shutdown for the caller polling it."""
    if n.stepdown is None:
        return
    n.results[str(n.stepdown["req"])] = error or "ok"
    while len(n.results) > 8:
        del n.results[next(iter(n.results))]
    n.stepdown = None


def step_down(ctx: Ctx, g: GroupRec, n: NodeRec, t: float, reason: str) -> None:
    pending = n.stepdown
    n.role = Role.SECONDARY
    n.minority_since = None
    if g.primary == n.key:
        g.primary = None
    ctx.event(g, t, "stepdown", host=n.addr, reason=reason)
    if pending is not None and pending["shutdown"]:
        halt(ctx, g, n, t, "shutdown")
    else:
        finish_request(n, f"InterruptedDueToReplStateChange: stepped down because it {reason}")


def halt(ctx: Ctx, g: GroupRec | None, n: NodeRec, t: float, how: str) -> None:
    """The process ends (``how``: "shutdown" or "crash"); its data stays."""
    finish_request(n, None if how == "shutdown" else f"HostUnreachable: the process ended ({how})")
    n.running = False
    ctx.ports_changed()
    n.role = Role.SECONDARY
    n.sync_end = n.sync_source = None
    n.no_primary_since = n.minority_since = n.takeover_since = None
    n.fsync_locks = 0
    n.apply_credit = 0.0
    if g is not None:
        if g.primary == n.key:
            g.primary = None
        ctx.event(g, t, how, host=n.addr)


def handoff_candidates(ctx: Ctx, g: GroupRec, p: NodeRec, t: float, up: list[Member]) -> list[Member]:
    """Electable secondaries caught up with ``p``, best first (priority, then lowest index)."""
    caught = [
        (m, o)
        for m, o in up
        if o is not p
        and electable_now(g, m, o, t)
        and ctx.reach(p, o)
        and o.lineage == p.lineage
        and o.applied_ts >= p.applied_ts
    ]
    return sorted(caught, key=lambda mo: (-mo[0]["priority"], g.config["members"].index(mo[0])))


def hand_off(ctx: Ctx, g: GroupRec, t: float, to: NodeRec) -> None:
    if ctx.params.election_handoff:
        g.election = {"candidate": to.key, "at": t + ctx.params.election_s, "reason": "election handoff"}


def progress_step_down(ctx: Ctx, g: GroupRec, p: NodeRec, t: float, up: list[Member]) -> None:
    sd = p.stepdown
    assert sd is not None
    caught = handoff_candidates(ctx, g, p, t, up)
    if caught:
        p.stepdown_until = max(p.stepdown_until, float(sd["until"]))
        p.stepdown = None
        step_down(ctx, g, p, t, "shutdown" if sd["shutdown"] else "replSetStepDown")
        p.results[str(sd["req"])] = "ok"
        hand_off(ctx, g, t, caught[0][1])
        if sd["shutdown"]:
            halt(ctx, g, p, t, "shutdown")
    elif due(t, float(sd["deadline"])):
        finish_request(
            p,
            "ExceededTimeLimit: No electable secondaries caught up as of "
            f"{t:.3f}. Please use the replSetStepDown command with the argument {{force: true}} to force "
            "node to step down.",
        )

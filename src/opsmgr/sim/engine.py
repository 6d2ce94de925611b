"""The replica set state machine: how a simulated replica set evolves as time passes.

``advance(ctx, group, now)`` moves one replica set from its own time ``group.t`` to ``now`` in steps: each
step is a stretch of constant topology (``flow``: the write load on the primary, secondaries applying the
oplog at their rate, oplog truncation) followed by an evaluation at the step's end (``evaluate``: config and
term propagation, pending step-downs, a primary's majority check, initial syncs, elections, client
connections). Steps end at the next scheduled event (an election timer, a sync's end, a process becoming
ready, a step-down deadline, ...) and, while anything is still moving, at least every heartbeat interval;
an idle set jumps straight to ``now``. Replica sets do not interact, so each is advanced only when one of
its processes is touched, and the cost is that of the steps of that set, not of the world or its history.

Election rules (protocol version 1, as MongoDB documents them):

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

May import ``opsmgr.errors``, ``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from opsmgr.drivers.base import MemberState
from opsmgr.sim import rsconfig
from opsmgr.sim.data import DataOps, Entry, gc_points, id_key, keep_ranges
from opsmgr.sim.model import (
    ROLE_STATE,
    AddrRec,
    EventsRec,
    GroupRec,
    HostRec,
    LineageRec,
    Meta,
    NodeRec,
    Role,
    SimParams,
    WriteLoad,
)
from opsmgr.sim.store import Tx

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
_MASK64 = (1 << 64) - 1

Member = tuple[dict[str, Any], NodeRec]  # (member config, the process up at that address)
# Scheduled times are sums of floats; an event computed for time x must be due when the clock reads x.
EPS = 1e-6


def due(t: float, when: float) -> bool:
    return t + EPS >= when


def mix(*parts: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): the world's deterministic randomness."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (part & _MASK64)) & _MASK64
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x


def next_ts(last_ts: int, wall: float) -> int:
    """A BSON-Timestamp-shaped ``seconds << 32 | increment`` after ``last_ts``."""
    return max(last_ts + 1, (int(wall) << 32) | 1)


class Ctx:
    """One transaction's view of the world: cached records, faults and helpers."""

    def __init__(self, tx: Tx, params: SimParams) -> None:
        self.tx = tx
        self.data: DataOps = tx.data
        self.params = params
        meta = tx.get(Meta, "meta")
        assert meta is not None, "the world's meta record is created with the world"
        self.meta = meta
        self.cut = set(meta.cut_hosts)
        self._nodes: dict[str, NodeRec] = {}
        self._hosts: dict[str, list[NodeRec]] = {}  # records are live within a transaction
        self._listening: dict[str, NodeRec | None] = {}  # cleared whenever a process starts or stops
        self._touched: set[int] = set()

    # -- records -----------------------------------------------------------------------------------------

    def node(self, key: str) -> NodeRec | None:
        n = self._nodes.get(key) or self.tx.get(NodeRec, key)
        if n is not None:
            self._nodes[key] = n
        return n

    def host_nodes(self, hostname: str) -> list[NodeRec]:
        cached = self._hosts.get(hostname)
        if cached is None:
            host = self.tx.get(HostRec, hostname)
            names = host.names if host is not None else []
            cached = [n for n in (self.node(f"{hostname}/{name}") for name in names) if n is not None]
            self._hosts[hostname] = cached
        return cached

    def add_node(self, n: NodeRec) -> None:
        host = self.tx.get(HostRec, n.hostname)
        if host is None:
            host = HostRec(n.hostname)
            self.tx.put(host)
        if n.name not in host.names:
            host.names.append(n.name)
        self.tx.put(n)
        self._nodes[n.key] = n
        self._hosts.pop(n.hostname, None)
        self.ports_changed()

    def ports_changed(self) -> None:
        self._listening.clear()

    def group(self, gid: int | None) -> GroupRec | None:
        return self.tx.get(GroupRec, str(gid)) if gid is not None else None

    def addr_group(self, addr: str) -> GroupRec | None:
        rec = self.tx.get(AddrRec, addr)
        return self.group(rec.gid) if rec else None

    def lineage(self, lid: int) -> LineageRec:
        lin = self.tx.get(LineageRec, str(lid))
        assert lin is not None, f"lineage {lid} is referenced but missing"
        return lin

    def new_lineage(self) -> LineageRec:
        lin = LineageRec(self.meta.next_lid)
        self.meta.next_lid += 1
        self.tx.put(lin)
        return lin

    def new_req(self) -> str:
        self.meta.next_req += 1
        return str(self.meta.next_req)

    def listening(self, addr: str) -> NodeRec | None:
        """The running process listening on ``host:port``, in whatever mode."""
        if addr in self._listening:
            return self._listening[addr]
        hostname, port = rsconfig.split_host(addr)
        found = next((n for n in self.host_nodes(hostname) if n.running and n.port == port), None)
        self._listening[addr] = found
        return found

    # -- network and faults ------------------------------------------------------------------------------

    def reach(self, a: NodeRec, b: NodeRec) -> bool:
        return a.hostname == b.hostname or (a.hostname not in self.cut and b.hostname not in self.cut)

    def client_reach(self, n: NodeRec) -> bool:
        return n.hostname not in self.cut

    def apply_rate(self, n: NodeRec) -> float:
        return self.meta.stalled.get(n.key, self.params.apply_rate)

    # -- lineages ----------------------------------------------------------------------------------------

    def set_lineage(self, n: NodeRec, lid: int | None) -> None:
        if n.lineage is not None and n.lineage != lid:
            old = self.lineage(n.lineage)
            old.refs.pop(n.key, None)
            self._touched.add(old.lid)
        n.lineage = lid
        if lid is not None:
            self._touched.add(lid)

    def touch(self, lid: int) -> None:
        self._touched.add(lid)

    def finish(self) -> None:
        """Record every node's oplog range in its lineage, then prune entries and versions nobody needs."""
        for n in self._nodes.values():
            if n.lineage is None:
                continue
            lin = self.lineage(n.lineage)
            ref = [n.trunc_ts, n.applied_ts]
            if lin.refs.get(n.key) != ref:
                lin.refs[n.key] = ref
                self._touched.add(lin.lid)
        for lid in sorted(self._touched):
            touched = self.tx.get(LineageRec, str(lid))
            if touched is None:
                continue
            if not touched.refs:
                self.data.drop(lid)
                self.tx.delete(touched)
                continue
            refs = list(touched.refs.values())
            self.data.prune_entries(lid, keep_ranges(refs))
            moving_min, frozen = gc_points(refs)
            self.data.gc_docs(lid, moving_min, frozen)
        self._touched.clear()

    # -- events ------------------------------------------------------------------------------------------

    def events(self, g: GroupRec) -> EventsRec:
        rec = self.tx.get(EventsRec, str(g.gid))
        if rec is None:
            rec = EventsRec(g.gid)
            self.tx.put(rec)
        return rec

    def event(self, g: GroupRec, t: float, kind: str, **fields: Any) -> None:
        events = self.events(g).events
        events.append({"t": round(t, 3), "kind": kind, **fields})
        if len(events) > self.params.max_events:
            del events[: len(events) - self.params.max_events]


# ---------------------------------------------------------------------------------------------------------
# Reading a replica set


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


# ---------------------------------------------------------------------------------------------------------
# Writes


def append_write(
    ctx: Ctx,
    g: GroupRec,
    p: NodeRec,
    wall: float,
    op: str,
    ns: str,
    o: dict[str, Any],
    o2: dict[str, Any] | None,
    doc_after: tuple[str, dict[str, Any] | None] | None,
    batch: list[Entry] | None = None,
) -> Entry:
    """One oplog entry written by primary ``p``; ``doc_after`` is ``(id key, document or None)``."""
    assert p.lineage is not None
    lin = ctx.lineage(p.lineage)
    ts = next_ts(lin.last_ts, wall)
    entry = Entry.make(ts, lin.last_cum, op, ns, o, o2, int(wall * 1000))
    if doc_after is not None:
        ctx.data.put_doc(lin.lid, ns, doc_after[0], ts, doc_after[1])
        g.writes += 1
    if batch is None:
        ctx.data.append(lin.lid, [entry])
    else:
        batch.append(entry)
    lin.last_ts, lin.last_cum = ts, entry.cum
    p.applied_ts, p.applied_cum = ts, entry.cum
    ctx.touch(lin.lid)
    return entry


def cap_oplog(ctx: Ctx, n: NodeRec) -> None:
    """Truncate the oldest entries of ``n``'s oplog beyond its ``oplogSizeMB``."""
    if n.lineage is None or n.applied_cum - n.trunc_cum <= n.cap_bytes:
        return
    first_kept = ctx.data.first_cum_at_least(n.lineage, n.applied_cum - n.cap_bytes)
    if first_kept is not None:
        n.trunc_ts, n.trunc_cum = first_kept.ts, first_kept.cum


def write_load(ctx: Ctx, g: GroupRec, p: NodeRec, t0: float, t1: float) -> None:
    load = WriteLoad.from_json(g.load)
    if load.rate <= 0 or p.lineage is None:
        return
    credit = g.load_credit + load.rate * (t1 - t0)
    count = int(credit)
    g.load_credit = credit - count
    if count == 0:
        return
    lid = p.lineage
    batch: list[Entry] = []
    for i in range(count):
        wall = t0 + (t1 - t0) * (i + 0.5) / count
        n = g.load_n
        g.load_n += 1
        r = mix(ctx.params.seed, g.gid, n)
        ns = load.namespaces[r % len(load.namespaces)]
        doc_id = (r >> 8) % load.keys
        key = id_key(doc_id)
        exists = ctx.data.get_doc(lid, ns, key, p.applied_ts) is not None
        if exists and (r >> 40) % 10_000 < load.delete_ratio * 10_000:
            append_write(ctx, g, p, wall, "d", ns, {"_id": doc_id}, None, (key, None), batch)
            continue
        value = mix(r, 1) & 0x7FFF_FFFF_FFFF
        doc = {
            "_id": doc_id,
            "n": n,
            "v": value,
            "at": int(wall * 1000),
            "payload": (f"{value:012x}" * (load.payload_bytes // 12 + 1))[: load.payload_bytes],
        }
        if exists:
            append_write(ctx, g, p, wall, "u", ns, doc, {"_id": doc_id}, (key, doc), batch)
        else:
            append_write(ctx, g, p, wall, "i", ns, doc, None, (key, doc), batch)
    ctx.data.append(lid, batch)


# ---------------------------------------------------------------------------------------------------------
# Time


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


def busy(ctx: Ctx, g: GroupRec, up: list[Member]) -> bool:
    """Whether a secondary is behind its source. Writes alone need no short steps: a secondary that keeps
    up ends every step caught up whatever its length, and one that does not is behind at the next."""
    for m, n in up:
        if m["arbiterOnly"] or n.role != Role.SECONDARY or n.fsync_locks or ctx.apply_rate(n) <= 0:
            continue
        src = sync_source(ctx, g, n, up)
        if src is not None and src.applied_ts > n.applied_ts:
            return True
    return False


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


def catch_up_times(ctx: Ctx, g: GroupRec, p: NodeRec, t: float, up: list[Member]) -> list[float]:
    """When each electable secondary will have caught up with a primary that blocks writes."""
    out: list[float] = []
    for m, o in up:
        rate = ctx.apply_rate(o)
        if o is p or not electable_now(g, m, o, t) or o.lineage != p.lineage or rate <= 0:
            continue
        lag = ctx.data.count_between(p.lineage, o.applied_ts, p.applied_ts) if p.lineage is not None else 0
        out.append(t + max(0.0, (lag - o.apply_credit) / rate))
    return out


def flow(ctx: Ctx, g: GroupRec, up: list[Member], t0: float, t1: float) -> bool:
    """Writes, replication and oplog truncation from ``t0`` to ``t1``; whether any optime moved."""
    if t1 <= t0:
        return False
    before = [n.applied_ts for _, n in up]
    p = writer(ctx, g, up)
    if p is not None:
        write_load(ctx, g, p, t0, t1)
    for m, n in sorted(up, key=lambda mn: -mn[1].applied_ts):
        if m["arbiterOnly"] or n.role != Role.SECONDARY or n.lineage is None:
            continue
        src = sync_source(ctx, g, n, up)
        n.sync_source = src.addr if src is not None else None
        if src is None or n.fsync_locks or src.applied_ts <= n.applied_ts:
            n.apply_credit = 0.0
            continue
        credit = n.apply_credit + ctx.apply_rate(n) * (t1 - t0)
        count = int(credit)
        if count < 1:
            n.apply_credit = credit
            continue
        e = ctx.data.nth_after(n.lineage, n.applied_ts, src.applied_ts, count)
        if e is None:
            continue
        n.apply_credit = 0.0 if e.ts >= src.applied_ts else credit - count
        n.applied_ts, n.applied_cum = e.ts, e.cum
    # Truncate only now: a secondary that keeps up read this step's entries before the primary dropped them.
    for _m, n in up:
        cap_oplog(ctx, n)
    return before != [n.applied_ts for _, n in up]


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


# ---------------------------------------------------------------------------------------------------------
# Transitions


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


def data_role(ctx: Ctx, g: GroupRec, n: NodeRec, t: float, up: list[Member], target: NodeRec | None) -> None:
    """Initial sync for members without this set's data, RECOVERING for members too stale to catch up."""
    if n.role == Role.PRIMARY or n.cfg_version == 0:
        return
    if n.role == Role.STARTUP2:
        if n.sync_end is not None and due(t, n.sync_end):
            src = next((o for _, o in up if o.addr == n.sync_source), None)
            if src is not None and can_seed(ctx, n, src, target):
                complete_sync(ctx, g, n, src, t)
                return
            n.sync_end = None
        if n.sync_end is None:
            begin_sync(ctx, n, t, up, target)
        return
    differs = target is not None and target.lineage != n.lineage and ctx.reach(n, target)
    if n.lineage is None or differs:
        n.role = Role.STARTUP2
        ctx.event(g, t, "initial sync", host=n.addr, reason="no data" if n.lineage is None else "diverged")
        begin_sync(ctx, n, t, up, target)
    elif n.role == Role.SECONDARY and too_stale(ctx, n, up):
        n.role = Role.RECOVERING
        ctx.event(g, t, "too stale", host=n.addr)


def can_seed(ctx: Ctx, n: NodeRec, src: NodeRec, target: NodeRec | None) -> bool:
    return (
        src is not n
        and src.lineage is not None
        and src.role in (Role.PRIMARY, Role.SECONDARY)
        and ctx.reach(n, src)
        and (target is None or src.lineage == target.lineage)
    )


def begin_sync(ctx: Ctx, n: NodeRec, t: float, up: list[Member], target: NodeRec | None) -> None:
    sources = [o for m, o in up if not m["arbiterOnly"] and can_seed(ctx, n, o, target)]
    if not sources:
        n.sync_end = n.sync_source = None
        return
    src = target if target in sources else max(sources, key=lambda o: o.applied_ts)
    assert src is not None and src.lineage is not None
    docs = ctx.data.count_docs(src.lineage, src.applied_ts)
    n.sync_source = src.addr
    n.sync_end = t + ctx.params.initial_sync_s + docs / ctx.params.clone_docs_per_s


def complete_sync(ctx: Ctx, g: GroupRec, n: NodeRec, src: NodeRec, t: float) -> None:
    assert src.lineage is not None
    last = ctx.data.entry_at(src.lineage, src.applied_ts)
    n.indexes = effective_indexes(ctx, src)
    ctx.set_lineage(n, src.lineage)
    n.applied_ts, n.applied_cum = src.applied_ts, src.applied_cum
    n.trunc_ts, n.trunc_cum = src.applied_ts - 1, src.applied_cum - (last.size if last else 0)
    n.role = Role.SECONDARY
    n.sync_end = None
    ctx.event(g, t, "initial sync done", host=n.addr, source=src.addr)


def too_stale(ctx: Ctx, n: NodeRec, up: list[Member]) -> bool:
    ahead = [
        o
        for m, o in up
        if o is not n
        and not m["arbiterOnly"]
        and o.lineage == n.lineage
        and o.applied_ts > n.applied_ts
        and ctx.reach(n, o)
    ]
    return bool(ahead) and all(o.trunc_ts > n.applied_ts for o in ahead)


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


def groups_of(ctx: Ctx, nodes: Iterable[NodeRec]) -> list[GroupRec]:
    """The replica sets these processes take part in: bound to, or listed at their address."""
    out: dict[int, GroupRec] = {}
    for n in nodes:
        for g in (ctx.group(n.gid), ctx.addr_group(n.addr) if n.port else None):
            if g is not None:
                out[g.gid] = g
    return [out[k] for k in sorted(out)]

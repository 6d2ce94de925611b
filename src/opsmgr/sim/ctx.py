"""One transaction's view of the simulated world, and the deterministic helpers the state machine shares.

:class:`Ctx` caches the records a transaction reads (processes, hosts, replica sets, lineages), knows the
injected faults (cut hosts, stalled members), keeps each lineage's references current and prunes what no
member needs when the transaction finishes, and appends a set's events. ``due`` compares scheduled times with
a tolerance, ``mix`` is the world's seeded randomness and ``next_ts`` makes BSON-Timestamp-shaped optimes.
May import ``opsmgr.sim`` modules.
"""

from __future__ import annotations

from typing import Any

from opsmgr.sim import rsconfig
from opsmgr.sim.data import DataOps, gc_points, keep_ranges
from opsmgr.sim.model import AddrRec, EventsRec, GroupRec, HostRec, LineageRec, Meta, NodeRec, SimParams
from opsmgr.sim.store import Tx

_MASK64 = (1 << 64) - 1


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

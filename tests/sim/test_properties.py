"""Property tests of the election rules over random topologies and random fault sequences.

For 1 to 7 members (priorities, arbiters, hidden, non-voting and priority-0 members) and up to 20 random
faults (crash, restart, partition, reconnect, stalled replication, freeze, step-down, heal) on a fake clock:

- never two primaries in one term, whoever is asked and whenever;
- every election was won with the votes of a majority of the config's voting members, each of which was, by
  this test's own record of the faults it injected, running and able to reach the winner, and no voter was
  ahead of the winner's optime;
- terms only grow;
- once the faults heal and every process runs again, a primary is elected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmgr.drivers.base import MemberState
from opsmgr.errors import OpsmgrError
from opsmgr.sim.model import SimParams
from tests.sim.cluster import Cluster, make_cluster

MEMBER = st.one_of(
    st.sampled_from([0.5, 1.0, 2.0, 3.0]).map(lambda p: {"priority": p}),
    st.just({"arbiterOnly": True}),
    st.just({"priority": 0, "hidden": True}),
    st.just({"priority": 0, "votes": 0}),
    st.just({"priority": 0}),
)
TOPOLOGY = (
    st.integers(0, 6)
    .flatmap(lambda k: st.lists(MEMBER, min_size=k, max_size=k))
    .map(lambda rest: [{"priority": 1.0}, *rest])
)
# The index picks a member (modulo the set's size); -1 picks the current primary, when there is one.
FAULT = st.tuples(
    st.sampled_from(["kill", "start", "cut", "reconnect", "stall", "heal", "stepdown", "freeze"]),
    st.one_of(st.just(-1), st.integers(0, 6)),
)
STEPS = st.lists(st.tuples(FAULT, st.floats(0.1, 25.0)), min_size=4, max_size=20)


@dataclass
class Faults:
    """This test's own record of what it did to the world, valid from ``since`` on."""

    since: float
    running: frozenset[int]
    cut: frozenset[int]


@dataclass
class Observer:
    c: Cluster
    history: list[Faults] = field(default_factory=list)
    term_owner: dict[int, str] = field(default_factory=dict)

    def record(self, running: set[int], cut: set[int], *, since: float | None = None) -> None:
        at = self.c.clock.now() if since is None else since
        self.history.append(Faults(at, frozenset(running), frozenset(cut)))

    def faults_at(self, t: float) -> list[Faults]:
        """The fault states that may have held at ``t`` (both, when ``t`` is the instant of a change)."""
        # event times are rounded to the millisecond
        current = [f for f in self.history if f.since <= t + 1e-3]
        exact = [f for f in self.history if abs(f.since - t) <= 1e-3]
        out = [current[-1]] if current else []
        if exact and len(current) >= 2:
            out.append(current[-2])
        return out

    def check_primaries(self) -> None:
        primaries: dict[int, str] = {}
        for i in range(len(self.c.members)):
            if not self.c.driver(i).observe(self.c.name(i)).running:
                continue
            status = self.c.driver(i).rs_status(self.c.name(i))
            if status is None or status.my_state is not MemberState.PRIMARY:
                continue
            assert status.term not in primaries, f"two primaries in term {status.term}"
            primaries[status.term] = self.c.addr(i)
            assert self.term_owner.setdefault(status.term, self.c.addr(i)) == self.c.addr(i)

    def check_elections(self) -> None:
        config = self.c.config()
        voting = {m["host"] for m in config["members"] if m.get("votes", 1) == 1}
        majority = len(voting) // 2 + 1
        elections = [e for e in self.c.view().events if e["kind"] == "election"]
        terms = [e["term"] for e in elections]
        assert terms == sorted(set(terms)), "terms only grow, one election per term"
        for e in elections:
            assert self.term_owner.setdefault(e["term"], e["winner"]) == e["winner"]
            voters = [v["host"] for v in e["votes"]]
            assert len(set(voters)) == len(voters) >= majority
            assert set(voters) <= voting
            assert all(
                v["optime_ts"] <= e["winner_optime_ts"] for v in e["votes"] if not self.arbiter(v["host"])
            )
            winner = self.c.index_of(e["winner"])
            assert any(self.could_vote(f, winner, voters) for f in self.faults_at(e["t"])), e

    def arbiter(self, addr: str) -> bool:
        return bool(self.c.members[self.c.index_of(addr)].get("arbiterOnly"))

    def could_vote(self, faults: Faults, winner: int, voters: list[str]) -> bool:
        for addr in voters:
            i = self.c.index_of(addr)
            reachable = i == winner or (i not in faults.cut and winner not in faults.cut)
            if i not in faults.running or not reachable:
                return False
        return winner in faults.running


def apply(c: Cluster, op: str, i: int, running: set[int], cut: set[int]) -> None:
    try:
        if op == "kill" and c.world.kill(c.host(i), c.name(i)):
            running.discard(i)
        elif op == "start":
            c.start(i)
            running.add(i)
        elif op == "cut":
            c.world.cut_host(c.host(i))
            cut.add(i)
        elif op == "reconnect":
            c.world.reconnect_host(c.host(i))
            cut.discard(i)
        elif op == "stall":
            c.world.stall_replication(c.host(i), c.name(i), rate=0)
        elif op == "heal":
            c.world.heal()
            cut.clear()
        elif op == "freeze":
            c.driver(i).freeze(c.name(i), 30)
        elif op == "stepdown":
            primary = c.primary()
            if primary is not None:
                c.driver(primary).step_down(c.name(primary), step_down_secs=30, catch_up_secs=5)
    except OpsmgrError:
        pass  # refusals (stepping down a primary nobody can replace, freezing a primary, ...) are fine


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topology=TOPOLOGY, steps=STEPS, seed=st.integers(0, 2**16))
def test_one_primary_per_term_and_majority_elections(
    topology: list[dict[str, Any]], steps: list[tuple[tuple[str, int], float]], seed: int
) -> None:
    c = make_cluster(topology, params=SimParams(seed=seed))
    c.set_load(rate=5, keys=100)
    running, cut = set(range(len(topology))), set[int]()
    obs = Observer(c)
    obs.record(running, cut, since=0.0)
    for (op, index), wait in steps:
        primary = c.primary()
        apply(c, op, primary if index < 0 and primary is not None else index % len(topology), running, cut)
        obs.record(running, cut)
        c.run(wait)
        obs.check_primaries()
    c.world.heal()
    cut.clear()
    obs.record(running, cut)
    for i in range(len(topology)):
        c.start(i)  # returns once the process accepts connections, as from then on it can vote
        running.add(i)
        obs.record(running, cut)
    c.run_until(lambda: c.view().primary is not None, within_s=120, step_s=1)
    obs.check_primaries()
    obs.check_elections()

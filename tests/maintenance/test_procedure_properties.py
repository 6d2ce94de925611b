"""Properties of the rolling procedure over random replica sets (3 to 7 members, priorities, votes, arbiters,
hidden members) with members failing during the change: never two members down for maintenance at once,
never a going-down move that leaves less than a majority, one planned election (exactly one, and no other,
when nothing fails; with faults, one more at most for each election a fault caused), and the goal reached once
the faults heal."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opsmgr.maintenance.moves import temporary_arbiter_name
from opsmgr.maintenance.rolling import ArbiterSpec, MaintenanceOptions, RollingChange, Task
from opsmgr.maintenance.snapshot import Policy
from tests.maintenance.fake_rs import FakeMember, FakeSet, Fault, play

POLICY = Policy(member_timeout_s=300, election_timeout_s=120)
KINDS = ("electable", "electable", "electable", "hidden", "arbiter", "non-voting")


@dataclass(frozen=True)
class Topology:
    kinds: tuple[str, ...]
    priorities: tuple[int, ...]

    def members(self) -> list[FakeMember]:
        out = []
        for i, (kind, priority) in enumerate(zip(self.kinds, self.priorities, strict=True)):
            name = f"rs0_{i}"
            if kind == "electable":
                out.append(FakeMember(name, priority=priority))
            elif kind == "hidden":
                out.append(FakeMember(name, priority=0, hidden=True))
            elif kind == "arbiter":
                out.append(FakeMember(name, priority=0, arbiter=True))
            else:
                out.append(FakeMember(name, votes=0, priority=0))
        return out

    @property
    def votes(self) -> int:
        return sum(m.votes for m in self.members())


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    n = draw(st.integers(3, 7))
    kinds = (
        "electable",
        "electable",
        *draw(st.lists(st.sampled_from(KINDS), min_size=n - 2, max_size=n - 2)),
    )
    priorities = tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    topology = Topology(kinds, priorities)
    assume(topology.votes >= 3)
    return topology


faults = st.lists(
    st.builds(Fault, st.integers(0, 60), st.integers(0, 7), st.sampled_from([30.0, 100.0, 400.0, 900.0])),
    max_size=3,
)


def check(topology: Topology, fault_list: list[Fault], with_arbiter: bool, leaver: bool) -> None:
    rs = FakeSet("rs0", topology.members())
    tasks = {name: frozenset({Task.CHANGE_VERSION}) for name in rs.members}
    primary = rs.primary
    assert primary is not None
    leaving = None
    if leaver:
        # A voting secondary leaves, where the set keeps three votes and two electable members without it.
        electable = [m.name for m in rs.members.values() if m.electable]
        leaving = next(
            (
                m.name
                for m in rs.members.values()
                if m.name != primary
                and m.votes
                and topology.votes > 3
                and len([e for e in electable if e != m.name]) >= 2
            ),
            None,
        )
        if leaving is not None:
            tasks[leaving] = frozenset({Task.REMOVE_PROCESS})
    change = RollingChange("rs0", "rs0", tasks=tasks)
    options = MaintenanceOptions(
        temporary_arbiter=ArbiterSpec("h9.example.net", 27099) if with_arbiter else None
    )
    trace = play(rs, change, options=options, policy=POLICY, faults=tuple(fault_list), max_steps=1500)

    assert trace.violations == []
    assert trace.done, trace.decisions[-1]
    # One planned election: the step-down hands over once, plus at most once more for each election a fault
    # caused (a fault can put the primary on a member whose cycle began as a secondary's).
    assert rs.handoffs <= 1 + rs.unplanned_elections
    staying = sorted(n for n in tasks if n != leaving)
    assert sorted(rs.performed) == staying
    assert rs.left == ([leaving] if leaving else [])
    assert temporary_arbiter_name("rs0") not in rs.members
    rs.tick(max([0.0, *(m.down_until - rs.t for m in rs.members.values())]))  # let the faults heal
    assert all(rs.up(m) for m in rs.members.values())
    assert all((m.votes, m.priority) == (m.config_votes, m.config_priority) for m in rs.members.values())
    if not fault_list:
        assert trace.progress.step_downs == rs.handoffs == rs.elections == 1
        assert not trace.blocked()


@settings(max_examples=80, deadline=None)
@given(topologies(), faults, st.booleans(), st.booleans())
def test_rolling_change_invariants(
    topology: Topology, fault_list: list[Fault], with_arbiter: bool, leaver: bool
) -> None:
    check(topology, fault_list, with_arbiter, leaver)


@settings(max_examples=30, deadline=None)
@given(topologies(), st.booleans())
def test_without_faults_exactly_one_election(topology: Topology, with_arbiter: bool) -> None:
    check(topology, [], with_arbiter, leaver=False)

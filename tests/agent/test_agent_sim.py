"""Agents on the simulated world (``drivers.sim``) with a scripted server: goal-state automation of a real
model of replica sets (elections, initial sync, reconfig rules), under a fake clock moved by the test."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from opsmgr.agent.loop import Agent, CycleResult
from opsmgr.agent.plan import Move
from opsmgr.agent.settings import AgentSettings, DriverKind
from opsmgr.drivers.base import MemberState
from opsmgr.drivers.sim import SimDriver
from opsmgr.sim.clock import FakeClock
from opsmgr.sim.world import SimWorld
from tests.agent.agent_fakes import FakeServer
from tests.agent.agent_helpers import goal_config, host_of, name_of

pytestmark = pytest.mark.anyio

SIM_SECONDS_PER_ROUND = 2.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SimRig:
    def __init__(self, tmp_path: Path, http: httpx.AsyncClient, server: FakeServer) -> None:
        self.tmp_path, self.http, self.server = tmp_path, http, server
        self.clock = FakeClock()
        self.world = SimWorld.in_memory(clock=self.clock)
        self.agents: dict[int, Agent] = {}

    def agent(self, i: int) -> Agent:
        settings = AgentSettings(
            group_id="g1",
            api_key="k1",
            base_url="http://opsmgr.test",
            hostname=host_of(i),
            state_dir=self.tmp_path / f"host{i}",
            driver=DriverKind.SIM,
            poll_interval_s=0.2,
            sim_world=":memory:",
        )
        agent = Agent(settings, SimDriver(self.world, host_of(i)), self.http, rng=random.Random(i))
        self.agents[i] = agent
        return agent

    async def converge(self, version: int, hosts: list[int], max_rounds: int = 40) -> list[list[CycleResult]]:
        """Rounds of one cycle per agent, the simulated clock moving between rounds, until all are at goal."""
        rounds: list[list[CycleResult]] = []
        for _ in range(max_rounds):
            rounds.append([await self.agents[i].cycle() for i in hosts])
            if all(r.sentence.startswith(f"goal state: version {version},") for r in rounds[-1]):
                return rounds
            self.clock.advance(SIM_SECONDS_PER_ROUND)
        raise AssertionError("no goal state; last sentences: " + " | ".join(r.sentence for r in rounds[-1]))

    def states(self, hosts: list[int]) -> dict[str, str]:
        out = {}
        for i in hosts:
            status = self.world.rs_status(host_of(i), name_of(i))
            out[name_of(i)] = status.my_state.value if status is not None else "none"
        return out


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimRig]:
    server = FakeServer()
    async with httpx.AsyncClient(transport=server.transport()) as http:
        rig = SimRig(tmp_path, http, server)
        try:
            yield rig
        finally:
            rig.world.close()


async def test_three_agents_bring_a_replica_set_from_nothing_to_goal(sim: SimRig) -> None:
    for i in range(3):
        sim.agent(i)
    version = sim.server.set_config(goal_config())
    rounds = await sim.converge(version, [0, 1, 2])
    moves = [r.move for rnd in rounds for r in rnd if r.move is not None]
    assert moves.count(Move.START) == 3 and moves.count(Move.RS_INIT) == 1
    assert sorted(sim.states([0, 1, 2]).values()) == ["PRIMARY", "SECONDARY", "SECONDARY"]
    for i in range(3):
        status = sim.server.last_status(host_of(i))
        assert status["lastGoalVersionAchieved"] == version
        assert status["processes"][0]["observed"]["replicaSetName"] == "rs0"
        assert sim.agents[i].goal_version == version


async def test_membership_priority_and_disable_changes_converge_on_the_sim(sim: SimRig) -> None:
    for i in range(5):
        sim.agent(i)
    await sim.converge(sim.server.set_config(goal_config()), [0, 1, 2])

    rounds = await sim.converge(sim.server.set_config(goal_config([0, 1, 2, 3, 4])), [0, 1, 2, 3, 4])
    assert sum(1 for rnd in rounds for r in rnd if r.move is Move.RS_RECONFIG) == 2  # one voter per reconfig
    assert sorted(sim.states([0, 1, 2, 3, 4]).values()) == ["PRIMARY"] + ["SECONDARY"] * 4

    await sim.converge(
        sim.server.set_config(goal_config([0, 1, 2, 3, 4], priorities={4: 5})), [0, 1, 2, 3, 4]
    )
    assert sim.states([4]) == {"rs0_4": "PRIMARY"}  # priority takeover by the sim's elections

    version = sim.server.set_config(goal_config([0, 1, 2], priorities={1: 3}))
    await sim.converge(version, [0, 1, 2, 3, 4])
    assert not sim.world.observe(host_of(4), name_of(4)).running  # it was the primary: stepped down first
    assert not sim.world.observe(host_of(3), name_of(3)).running
    assert sim.states([0, 1, 2]) == {"rs0_0": "SECONDARY", "rs0_1": "PRIMARY", "rs0_2": "SECONDARY"}

    await sim.converge(
        sim.server.set_config(goal_config([0, 1, 2], priorities={1: 3}, disabled=(2,))), [0, 1, 2]
    )
    assert not sim.world.observe(host_of(2), name_of(2)).running
    await sim.converge(sim.server.set_config(goal_config([0, 1, 2], priorities={1: 3})), [0, 1, 2])
    assert sim.states([2]) == {"rs0_2": MemberState.SECONDARY.value}


async def test_a_new_agent_on_the_same_state_dir_resumes_mid_plan(sim: SimRig) -> None:
    for i in range(3):
        sim.agent(i)
    version = sim.server.set_config(goal_config())
    for i in range(3):
        await sim.agents[i].cycle()  # every process started, nothing initiated yet
    for i in range(3):
        sim.agent(i)  # the agents restart: new objects on the same state dirs and world
    rounds = await sim.converge(version, [0, 1, 2])
    assert sum(1 for rnd in rounds for r in rnd if r.move is Move.START) == 0  # found running, not restarted
    assert sorted(sim.states([0, 1, 2]).values()) == ["PRIMARY", "SECONDARY", "SECONDARY"]

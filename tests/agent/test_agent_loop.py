"""The reconcile loop against a fake driver world and a scripted server (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.agent.loop import Agent, CycleResult
from opsmgr.agent.plan import Move
from opsmgr.agent.settings import AgentSettings, DriverKind, render_settings
from opsmgr.agent.state import STATE_FILE
from tests.agent.agent_fakes import FakeDriver, FakeServer, FakeWorld
from tests.agent.agent_helpers import goal_config, host_of

BASE_URL = "http://opsmgr.test"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def agent_settings(tmp_path: Path, i: int, *, poll: float = 0.2, key: str = "k1") -> AgentSettings:
    return AgentSettings(
        sim_world=str(tmp_path / "world.sqlite"),  # required by driver=sim; the fake world stands in for it
        group_id="g1",
        api_key=key,
        base_url=BASE_URL,
        hostname=host_of(i),
        state_dir=tmp_path / f"host{i}",
        driver=DriverKind.SIM,
        poll_interval_s=poll,
    )


class Rig:
    """A fake server, a fake world and a way to make agents that talk to them."""

    def __init__(self, tmp_path: Path, http: httpx.AsyncClient, server: FakeServer) -> None:
        self.tmp_path, self.http, self.server = tmp_path, http, server
        self.world = FakeWorld()

    def agent(self, i: int, **kw: Any) -> Agent:
        settings = agent_settings(self.tmp_path, i, **{k: v for k, v in kw.items() if k in ("poll", "key")})
        extra = {k: v for k, v in kw.items() if k not in ("poll", "key")}
        return Agent(settings, FakeDriver(self.world, host_of(i)), self.http, rng=random.Random(i), **extra)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    server = FakeServer()
    async with httpx.AsyncClient(transport=server.transport()) as http:
        yield Rig(tmp_path, http, server)


async def until(
    agents: list[Agent],
    done: Callable[[list[CycleResult]], bool],
    *,
    max_rounds: int = 30,
    on_round: Callable[[int], Awaitable[None]] | None = None,
) -> list[list[CycleResult]]:
    """Run rounds of one cycle per agent until ``done`` holds for a round (a bounded number of rounds)."""
    rounds: list[list[CycleResult]] = []
    for n in range(max_rounds):
        rounds.append([await a.cycle() for a in agents])
        if done(rounds[-1]):
            return rounds
        if on_round is not None:
            await on_round(n)
    raise AssertionError("no convergence; last sentences: " + " | ".join(r.sentence for r in rounds[-1]))


def all_at_goal(version: int) -> Callable[[list[CycleResult]], bool]:
    return lambda results: all(r.sentence.startswith(f"goal state: version {version},") for r in results)


async def test_single_member_set_from_nothing_one_move_per_cycle(rig: Rig) -> None:
    rig.server.set_config(goal_config([0]))
    agent = rig.agent(0)
    sentences = []
    for _ in range(3):
        before = len(rig.world.mutations())
        sentences.append((await agent.cycle()).sentence)
        assert len(rig.world.mutations()) - before <= 1
    assert sentences[0].startswith("plan for version 1: Start (step 1/4) on rs0_0")
    assert sentences[1].startswith("plan for version 1: RsInit (step 2/4) on rs0_0")
    assert sentences[2] == "goal state: version 1, 1 process running"
    assert rig.world.mutations() == [("start", "rs0_0"), ("initiate", "rs0_0")]
    status = rig.server.last_status(host_of(0))
    assert (status["cv"], status["lastGoalVersionAchieved"], status["statusSentence"]) == (1, 1, sentences[2])
    proc = status["processes"][0]
    assert (
        proc["lastGoalVersionAchieved"] == 1
        and proc["currentStep"] is None
        and proc["plan"] == []
        and proc["blockedReason"] is None
    )
    assert proc["observed"]["replicaStateName"] == "PRIMARY" and proc["observed"]["running"] is True


async def test_three_agents_bring_a_replica_set_to_goal(rig: Rig) -> None:
    rig.server.set_config(goal_config())
    agents = [rig.agent(i) for i in (1, 2, 0)]  # the initiator's agent cycles last in each round
    rounds = await until(agents, all_at_goal(1))
    first = [r.sentence for r in rounds[0]]
    assert all(s.startswith("plan for version 1: Start (step 1/") for s in first)
    blocked = "blocked: waiting for rs0_0 to initiate rs0 (WaitRsInit on rs0_1, version 1)"
    assert rounds[1][0].sentence == blocked
    assert rounds[1][2].move is Move.RS_INIT
    assert len(rounds) <= 4
    assert sum(1 for c in rig.world.mutations() if c[0] == "initiate") == 1
    statuses = [rig.server.last_status(host_of(i)) for i in range(3)]
    assert {s["processes"][0]["observed"]["replicaStateName"] for s in statuses} == {"PRIMARY", "SECONDARY"}


async def test_membership_and_priority_changes_converge(rig: Rig) -> None:
    rig.server.set_config(goal_config())
    agents = [rig.agent(i) for i in range(5)]
    await until(agents[:3], all_at_goal(1))

    rig.server.set_config(goal_config([0, 1, 2, 3, 4]))
    rounds = await until(agents, all_at_goal(2))
    reconfigs = [r.sentence for rnd in rounds for r in rnd if r.move is Move.RS_RECONFIG]
    assert len(reconfigs) == 2  # one voting member per reconfig
    assert (
        "RsReconfig (step 1/4) on rs0_0" in reconfigs[0] and "RsReconfig (step 3/4) on rs0_0" in reconfigs[1]
    )
    assert len(rig.world.configs["rs0"]["members"]) == 5

    rig.server.set_config(goal_config([0, 1, 2], priorities={0: 1, 1: 5, 2: 1}))
    await until(agents, all_at_goal(3))
    assert not rig.world.procs["rs0_3"].running and not rig.world.procs["rs0_4"].running
    assert rig.world.procs["rs0_1"].state.value == "PRIMARY"  # the new top priority took over
    assert [m["host"] for m in rig.world.configs["rs0"]["members"]] == [
        f"{host_of(i)}:27017" for i in range(3)
    ]

    rig.server.set_config(goal_config([0, 1, 2], priorities={0: 1, 1: 5, 2: 1}, disabled=(2,)))
    await until(agents[:3], all_at_goal(4))
    assert not rig.world.procs["rs0_2"].running
    rig.server.set_config(goal_config([0, 1, 2], priorities={0: 1, 1: 5, 2: 1}))
    await until(agents[:3], all_at_goal(5))
    assert rig.world.procs["rs0_2"].running


async def test_last_goal_config_survives_a_new_agent_on_the_same_state_dir(rig: Rig) -> None:
    rig.server.set_config(goal_config([0]))
    await until([rig.agent(0)], all_at_goal(1))
    saved = json.loads((rig.tmp_path / "host0" / STATE_FILE).read_text())
    assert saved["lastGoalVersionAchieved"] == 1 and saved["goalConfig"]["version"] == 1

    rig.server.statuses.clear()
    restarted = rig.agent(0)
    assert (restarted.held_version, restarted.goal_version) == (1, 1)
    result = await restarted.cycle()
    assert result.sentence == "goal state: version 1, 1 process running"
    assert rig.server.polls[-1] == (host_of(0), 1)  # it polled with the version it kept: the answer was 304
    assert rig.server.last_status(host_of(0))["lastGoalVersionAchieved"] == 1


async def test_304_keeps_the_held_config(rig: Rig) -> None:
    rig.server.set_config(goal_config([0]))
    agent = rig.agent(0)
    await until([agent], all_at_goal(1))
    polls = len(rig.server.polls)
    result = await agent.cycle()
    assert rig.server.polls[polls:] == [(host_of(0), 1)]
    assert result.sentence.startswith("goal state: version 1") and agent.held_version == 1


async def test_unreachable_server_backs_off_and_touches_nothing(rig: Rig) -> None:
    rig.server.set_config(goal_config([0]))
    agent = rig.agent(0, poll=1.0)
    await until([agent], all_at_goal(1))
    mutations = list(rig.world.mutations())
    rig.server.down = True
    rig.server.statuses.clear()
    delays = []
    for _ in range(9):
        result = await agent.cycle()
        assert result.sentence.startswith("server unreachable, retrying in ")
        assert "Connection refused" in result.sentence
        delays.append(result.delay_s)
    for n, delay in enumerate(delays):
        ceiling = min(30.0, 1.0 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert delays[-1] > 10 and max(delays) <= 30
    assert rig.world.mutations() == mutations and rig.server.statuses == []
    rig.world.procs["rs0_0"].running = False  # a crash while the server is away is left alone, too
    await agent.cycle()
    assert rig.world.mutations() == mutations

    rig.server.down = False
    result = await agent.cycle()
    assert result.move is Move.START  # the server answered: reconcile again
    assert agent.backoff.failures == 0


async def test_401_is_reported_and_retried_slowly_then_recovers_when_the_key_is_fixed(
    rig: Rig, tmp_path: Path
) -> None:
    rig.server.set_config(goal_config([0]))
    config_file = tmp_path / "automation-agent.config"
    bad = agent_settings(tmp_path, 0, poll=10.0, key="wrong")
    config_file.write_text(render_settings(bad))
    agent = Agent(bad, FakeDriver(rig.world, host_of(0)), rig.http, config_path=config_file)
    for _ in range(3):
        result = await agent.cycle()
        assert result.sentence == "rejected by server: 401 invalid agent API key, retrying in 60s"
        assert result.delay_s == 60
    assert rig.world.mutations() == []

    config_file.write_text(render_settings(agent_settings(tmp_path, 0, poll=10.0, key="wrong-again")))
    assert (await agent.cycle()).sentence.startswith("rejected by server: 401")
    config_file.write_text(render_settings(agent_settings(tmp_path, 0, poll=10.0, key="k1")))
    assert (await agent.cycle()).sentence.startswith("rejected by server: 401")  # re-read after this one
    result = await agent.cycle()
    assert result.sentence.startswith("plan for version 1: Start")


async def test_unknown_project_is_a_rejection_not_a_crash(rig: Rig, tmp_path: Path) -> None:
    settings = agent_settings(tmp_path, 0)
    other = AgentSettings(**{**settings.__dict__, "group_id": "nope"})
    agent = Agent(other, FakeDriver(rig.world, host_of(0)), rig.http)
    result = await agent.cycle()
    assert result.sentence == "rejected by server: 404 no project nope, retrying in 1.2s"
    assert result.delay_s == pytest.approx(1.2)


async def test_a_bad_config_is_reported_and_not_adopted(rig: Rig) -> None:
    rig.server.set_config(goal_config([0]))
    agent = rig.agent(0)
    await until([agent], all_at_goal(1))
    mutations = list(rig.world.mutations())

    broken = goal_config([0])
    broken["processes"][0]["args2_6"]["net"]["port"] = "not a port"
    rig.server.set_config(broken)
    result = await agent.cycle()
    assert result.sentence.startswith(
        "error: config version 2 from the server is invalid, keeping version 1: "
    )
    assert "args2_6.net.port" in result.sentence
    assert agent.held_version == 1 and rig.world.mutations() == mutations
    assert rig.server.last_status(host_of(0))["statusSentence"] == result.sentence

    rig.server.raw_config = b"<html>proxy error</html>"
    result = await agent.cycle()
    assert result.sentence.startswith("error: unusable answer from the server, keeping version 1")
    rig.server.raw_config = b'{"version": "seven"}'
    result = await agent.cycle()
    assert result.sentence.startswith("error: config version seven from the server is invalid")
    assert rig.world.mutations() == mutations


async def test_a_failing_move_is_reported_and_retried(rig: Rig) -> None:
    rig.server.set_config(goal_config())
    agent = rig.agent(0)
    await agent.cycle()  # Start
    result = await agent.cycle()  # RsInit while the other members are not up
    assert result.sentence.startswith(
        "error: RsInit (step 2/4) on rs0_0 failed, will retry: replSetInitiate quorum"
    )
    proc = rig.server.last_status(host_of(0))["processes"][0]
    assert proc["errorText"].startswith("RsInit failed: replSetInitiate quorum check failed")
    assert proc["currentStep"] == "RsInit" and proc["stepIndex"] == 1
    assert proc["plan"] == ["Start", "RsInit", "WaitPrimary", "WaitAllRsMembersUp"]


async def test_server_requests_go_to_their_handler_and_unknown_ones_are_ignored(rig: Rig) -> None:
    rig.server.set_config(goal_config([0]))
    seen: list[dict[str, Any]] = []

    async def upload(request: dict[str, Any]) -> None:
        seen.append(request)

    async def broken(request: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    agent = rig.agent(0, request_handlers={"uploadConfig": upload, "broken": broken})
    rig.server.requests = [{"type": "somethingNew"}, {"type": "broken"}, {"type": "uploadConfig", "id": 7}]
    result = await agent.cycle()
    assert result.move is Move.START
    assert seen == [{"type": "uploadConfig", "id": 7}]


async def test_a_process_dropped_from_the_config_is_stopped(rig: Rig) -> None:
    """What Restoration Mode prevents: an agent served an older config stops what it does not name."""
    rig.server.set_config(goal_config([0, 1]))
    agents = [rig.agent(i) for i in range(2)]
    await until(agents, all_at_goal(1))
    rig.server.set_config(goal_config([0]))
    await until(agents, all_at_goal(2))
    mutations = rig.world.mutations()
    assert mutations.index(("reconfig", "rs0_0")) < mutations.index(("stop", "rs0_1"))
    assert [m["host"] for m in rig.world.configs["rs0"]["members"]] == [f"{host_of(0)}:27017"]
    assert rig.agent(1).state.managed == frozenset()


async def test_run_stops_cleanly_without_touching_processes(rig: Rig) -> None:
    rig.server.set_config(goal_config([0]))
    agent = rig.agent(0, poll=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    deadline = asyncio.get_running_loop().time() + 5
    while agent.goal_version != 1:
        assert asyncio.get_running_loop().time() < deadline, agent.last_sentence
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert rig.world.procs["rs0_0"].running
    assert ("stop", "rs0_0") not in rig.world.mutations()


async def test_a_process_that_stops_on_its_own_is_restarted_never_loaded(rig: Rig) -> None:
    """A restore job targets the process, but only the server disabling it for the job makes it a load: a
    process that merely stopped is started again by the cycle and never loaded from a backup."""
    rig.server.set_config(goal_config([0]))
    agent = rig.agent(0)
    await until([agent], all_at_goal(1))
    job = {"jobId": "j1", "processes": [{"name": "rs0_0", "hostname": host_of(0)}]}
    rig.server.work = {"version": "w1", "backup": {"sources": [], "restores": [job]}}
    rig.world.procs["rs0_0"].running = False  # it stops on its own

    result = await agent.cycle()
    assert result.move is Move.START, result.sentence
    await agent.backup.step()
    await agent.long.wait()
    assert rig.world.loaded == {} and rig.server.restored == []
    assert rig.world.procs["rs0_0"].running

    rig.server.set_config(goal_config([0], disabled=(0,)))  # the server disables it for the job
    await until([agent], lambda results: not rig.world.procs["rs0_0"].running)
    await agent.backup.step()
    await agent.long.wait()
    assert rig.world.loaded["rs0_0"] == [("app.a", {"_id": 0}), ("app.a", {"_id": 1})]
    # Announced before the load (so that a cancelled job is not loaded), then reported done.
    assert rig.server.restored == [
        {"processes": ["rs0_0"], "state": state, "detail": ""} for state in ("LOADING", "DONE")
    ]

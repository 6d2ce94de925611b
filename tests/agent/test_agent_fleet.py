"""The fleet: many agent loops in one event loop, one shared HTTP client, one world, per-host directories."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from opsmgr.agent.fleet import CONFIG_FILE, FleetHost, fleet_hostnames, run_fleet, serve_fleet
from opsmgr.agent.loop import Agent
from opsmgr.agent.settings import MEMORY_WORLD, DriverKind, load_settings
from opsmgr.automation.config import validate
from opsmgr.drivers.sim import SimDriver
from opsmgr.errors import InvalidInput
from opsmgr.sim.world import SimWorld
from tests.agent.agent_fakes import FakeDriver, FakeServer, FakeWorld

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def two_sets(hostnames: list[str]) -> dict[str, Any]:
    processes, sets = [], []
    for s in range(len(hostnames) // 3):
        members = []
        for j, host in enumerate(hostnames[3 * s : 3 * s + 3]):
            name = f"rs{s}_{j}"
            processes.append(
                {
                    "name": name,
                    "processType": "mongod",
                    "hostname": host,
                    "version": "7.0.5",
                    "args2_6": {
                        "net": {"port": 27017},
                        "storage": {"dbPath": f"/data/{name}"},
                        "replication": {"replSetName": f"rs{s}"},
                    },
                }
            )
            members.append({"_id": j, "host": name})
        sets.append({"_id": f"rs{s}", "members": members})
    return validate({"processes": processes, "replicaSets": sets})


def test_hostnames_are_valid_and_distinct() -> None:
    names = fleet_hostnames(1500)
    assert len(set(names)) == 1500 and names[0] == "sim0000.fleet.internal"
    validate(
        {
            "processes": [
                {
                    "name": "p",
                    "processType": "mongod",
                    "hostname": names[-1],
                    "version": "7.0.5",
                    "args2_6": {},
                }
            ]
        }
    )


async def test_fleet_brings_two_sets_to_goal_and_stops_cleanly(tmp_path: Path) -> None:
    server, world = FakeServer(), FakeWorld()
    hostnames = fleet_hostnames(6)
    server.set_config(two_sets(hostnames))
    stop = asyncio.Event()
    agents: list[Agent] = []
    task = asyncio.create_task(
        serve_fleet(
            "http://opsmgr.test",
            [FleetHost(h, "g1", "k1") for h in hostnames],
            tmp_path,
            lambda h: FakeDriver(world, h),
            stop,
            poll_interval_s=0.05,
            transport=server.transport(),
            driver_threads=1,  # the fake world is not thread-safe
            started=agents.extend,
        )
    )
    deadline = asyncio.get_running_loop().time() + 10
    while not agents or any(a.goal_version != 1 for a in agents):
        assert asyncio.get_running_loop().time() < deadline, [a.last_sentence for a in agents]
        await asyncio.sleep(0.02)
    stop.set()
    assert len(await asyncio.wait_for(task, 5)) == 6
    assert all(p.running for p in world.procs.values()) and len(world.procs) == 6
    assert {h for h, _ in server.polls} == set(hostnames)
    for host in hostnames:
        settings = load_settings(tmp_path / host / CONFIG_FILE)
        assert (settings.hostname, settings.group_id, settings.driver) == (host, "g1", DriverKind.SIM)
        assert settings.sim_world == MEMORY_WORLD and settings.state_dir == tmp_path / host
        assert (tmp_path / host / "agent-state.json").exists()


async def test_fleet_on_a_sqlite_sim_world(tmp_path: Path) -> None:
    """The real configuration: sim drivers on a shared world file, driver calls on worker threads."""
    server = FakeServer()
    hostnames = fleet_hostnames(6)
    server.set_config(two_sets(hostnames))
    world_file = tmp_path / "world.sqlite"
    world = SimWorld.open(world_file)
    stop = asyncio.Event()
    agents: list[Agent] = []
    try:
        task = asyncio.create_task(
            serve_fleet(
                "http://opsmgr.test",
                [FleetHost(h, "g1", "k1") for h in hostnames],
                tmp_path / "fleet",
                lambda h: SimDriver(world, h),
                stop,
                world=str(world_file),
                poll_interval_s=0.2,
                transport=server.transport(),
                started=agents.extend,
            )
        )
        deadline = asyncio.get_running_loop().time() + 60
        while not agents or any(a.goal_version != 1 for a in agents):
            assert asyncio.get_running_loop().time() < deadline, [a.last_sentence for a in agents]
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        states = sorted(
            s.my_state.value
            for h, name in zip(hostnames, ["rs0_0", "rs0_1", "rs0_2", "rs1_0", "rs1_1", "rs1_2"], strict=True)
            if (s := world.rs_status(h, name)) is not None
        )
        assert states == ["PRIMARY"] * 2 + ["SECONDARY"] * 4
        assert load_settings(tmp_path / "fleet" / hostnames[0] / CONFIG_FILE).sim_world == str(world_file)
    finally:
        world.close()


def test_run_fleet_needs_hosts(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="hostnames or a count"):
        run_fleet("http://opsmgr.test", "g1", "k1", tmp_path, hostnames=[], count=0)

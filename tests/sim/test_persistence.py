"""The world in a SQLite file: shared by SimWorld objects and processes, and the same as the in-memory one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from opsmgr.drivers.base import MemberState
from opsmgr.sim.clock import FakeClock
from opsmgr.sim.model import SimParams
from opsmgr.sim.store import SqliteBackend
from opsmgr.sim.world import SimWorld
from tests.at_once import errors_opening_at_once
from tests.sim.cluster import Cluster, make_cluster


def scripted(world: SimWorld, clock: FakeClock) -> tuple[object, ...]:
    """A scenario touching most of the world's machinery; returns everything observable at the end."""
    c = make_cluster([{}, {}, {"priority": 2}], world=world, clock=clock, oplog_mb=0.1)
    c.set_load(rate=40, namespaces=("a.x", "a.y"), keys=30, delete_ratio=0.3, clients=5)
    c.run(20)
    c.world.stall_replication(c.host(1), c.name(1), rate=5)
    c.run(5)
    c.world.kill(c.host(2), c.name(2))
    c.run(15)
    c.world.cut_host(c.host(0))
    c.run(12)
    c.world.heal()
    c.start(2)
    c.run(40)
    primary = c.primary()
    assert primary is not None
    c.driver(primary).create_index(c.name(primary), "a.x", [("n", 1)], {"unique": True})
    c.run(1)
    view = c.view()
    return (
        view.primary,
        view.term,
        view.elections,
        view.writes,
        view.connections_dropped,
        view.no_primary_s,
        view.rolled_back_ops,
        view.events,
        [(m.state, m.optime_ts) for m in view.members],
        [c.driver(i).dump(c.name(i)) for i in range(3)],
        [c.driver(i).oplog_window(c.name(i)) for i in range(3)],
        [c.driver(i).list_indexes(c.name(i), "a.x") for i in range(3)],
    )


def test_the_sqlite_world_behaves_exactly_like_the_in_memory_one(tmp_path: Path) -> None:
    memory_clock, file_clock = FakeClock(), FakeClock()
    in_memory = scripted(SimWorld.in_memory(clock=memory_clock), memory_clock)
    on_file = scripted(SimWorld.open(tmp_path / "world.sqlite", clock=file_clock), file_clock)
    assert in_memory == on_file


def test_two_world_objects_on_one_file_see_one_world(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "world.sqlite"
    first = SimWorld.open(path, clock=clock)
    c = make_cluster(3, world=first, clock=clock)
    c.set_load(rate=20)
    c.run(5)
    second = SimWorld.open(path, clock=clock)
    other = Cluster(world=second, clock=clock, members=c.members, set_id=c.set_id)
    assert other.view().primary == c.addr(0)
    assert other.driver(1).dump(other.name(1)) == c.driver(1).dump(c.name(1))
    second.kill(c.host(0), c.name(0))
    first.close()
    clock.advance(11)
    assert other.view().primary in (c.addr(1), c.addr(2))
    reopened = Cluster(
        world=SimWorld.open(path, clock=clock), clock=clock, members=c.members, set_id=c.set_id
    )
    assert reopened.view() == other.view()
    assert reopened.driver(1).observe(reopened.name(1)).running, "processes outlive the world objects"


def test_another_process_sees_the_processes_this_one_started(tmp_path: Path) -> None:
    """The agents of a replica set are separate OS processes sharing the world file (real clock here)."""
    path = tmp_path / "world.sqlite"
    SimWorld.open(path, params=SimParams(startup_s=0.05, initial_sync_s=0.1, election_s=0.05)).close()
    script = textwrap.dedent(
        f"""
        from opsmgr.drivers.base import ProcessSpec
        from opsmgr.drivers.sim import SimDriver
        from opsmgr.sim.world import SimWorld

        world = SimWorld.open({str(path)!r})
        members = []
        for i in range(3):
            host = f"agent{{i}}.sim"
            SimDriver(world, host).start(ProcessSpec(name=f"rs_{{i}}", hostname=host, port=27017,
                version="7.0.14", args={{}}, repl_set_name="rs", dbpath=f"/data/{{i}}"))
            members.append({{"_id": i, "host": f"{{host}}:27017"}})
        SimDriver(world, "agent0.sim").initiate("rs_0", {{"_id": "rs", "members": members}})
        world.close()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    world = SimWorld.open(path)
    try:
        deadline = time.monotonic() + 20
        while True:
            states = [p.state for p in world.processes()]
            if sorted(s.value for s in states if s) == ["PRIMARY", "SECONDARY", "SECONDARY"]:
                break
            assert time.monotonic() < deadline, f"no primary and two secondaries in time: {states}"
            time.sleep(0.05)
        assert [p.hostname for p in world.processes() if p.state is MemberState.PRIMARY] == ["agent0.sim"]
    finally:
        world.close()


def _open_and_close(path: str) -> None:
    SqliteBackend(path).close()


def test_processes_opening_a_new_world_file_at_once_all_open_it(tmp_path: Path) -> None:
    """Agents of one deployment start together and each opens the (not yet created) world file: none may
    fail with "database is locked" (the schema's creation raced and SQLite refused without waiting)."""
    assert errors_opening_at_once(_open_and_close, tmp_path) == []

"""The sim driver: the Driver protocol on simulated hosts, MongoDB's refusals as DriverError subclasses."""

from __future__ import annotations

import inspect

import pytest

from opsmgr.drivers.base import (
    CommandConflict,
    CommandInvalid,
    Driver,
    DriverError,
    MemberState,
    ProcessUnreachable,
    RunMode,
)
from opsmgr.drivers.sim import SimDriver
from opsmgr.errors import InvalidInput, OplogGap
from opsmgr.sim.clock import FakeClock
from opsmgr.sim.world import SimWorld
from tests.sim.cluster import PORT, Cluster, make_cluster


def bare(n: int = 3) -> Cluster:
    """Processes started, not initiated."""
    clock = FakeClock()
    c = Cluster(world=SimWorld.in_memory(clock=clock), clock=clock, members=[{} for _ in range(n)])
    for i in range(n):
        c.start(i)
    return c


def test_it_implements_every_method_of_the_driver_protocol() -> None:
    protocol = {
        name for name, _ in inspect.getmembers(Driver, inspect.isfunction) if not name.startswith("_")
    }
    assert protocol
    for name in protocol:
        assert inspect.signature(getattr(SimDriver, name)) == inspect.signature(getattr(Driver, name)), name


def test_start_waits_until_the_process_accepts_connections_and_records_what_it_runs() -> None:
    c = bare(1)
    seen = c.driver(0).observe(c.name(0))
    assert seen.running and seen.mode is RunMode.REPLSET and seen.port == PORT
    assert seen.version == "7.0.14" and seen.args == c.spec(0).args and seen.pid
    start = c.clock.now()
    c.start(0)  # already running exactly so: nothing happens
    assert c.clock.now() == start and c.driver(0).observe(c.name(0)).pid == seen.pid
    assert c.driver(0).rs_status(c.name(0)) is None, "no config yet"
    with pytest.raises(CommandConflict, match="already runs"):
        c.start(0, standalone=True)


def test_start_refusals() -> None:
    c = bare(1)
    other = c.spec(0)
    clash = type(other)(**{**other.__dict__, "name": "other", "dbpath": "/data/other"})
    with pytest.raises(DriverError, match="Address already in use") as raised:
        c.driver(0).start(clash)
    assert raised.value.code_name == "SocketException"
    with pytest.raises(InvalidInput, match="belongs to host"):
        c.driver(0).start(type(other)(**{**other.__dict__, "hostname": "elsewhere"}))
    c.driver(0).stop(c.name(0))
    c.world.fail_start(c.host(0), c.name(0))
    with pytest.raises(DriverError, match="fails to start"):
        c.start(0)
    assert not c.driver(0).observe(c.name(0)).running
    c.world.heal()
    c.start(0)
    assert c.driver(0).observe(c.name(0)).running


def test_commands_to_a_stopped_process_are_unreachable_and_stop_is_idempotent() -> None:
    c = make_cluster(3)
    c.driver(1).stop(c.name(1))
    c.driver(1).stop(c.name(1))
    assert not c.driver(1).observe(c.name(1)).running
    with pytest.raises(ProcessUnreachable):
        c.driver(1).rs_status(c.name(1))
    with pytest.raises(ProcessUnreachable):
        c.driver(1).dump(c.name(1))


def test_processes_outlive_the_driver_that_started_them() -> None:
    c = make_cluster(3)
    fresh = SimDriver(c.world, c.host(0))
    status = fresh.rs_status(c.name(0))
    assert status is not None and status.my_state is MemberState.PRIMARY


def test_initiate_rules() -> None:
    c = bare(3)
    config = c.config()
    with pytest.raises(CommandInvalid, match="maps to this node") as raised:
        c.driver(0).initiate(c.name(0), {**config, "members": config["members"][1:]})
    assert raised.value.code_name == "NodeNotFound"
    with pytest.raises(CommandInvalid, match="unique _id"):
        c.driver(0).initiate(c.name(0), {**config, "members": [{**m, "_id": 0} for m in config["members"]]})
    with pytest.raises(CommandInvalid, match="command line reports"):
        c.driver(0).initiate(c.name(0), {**config, "_id": "other"})
    with pytest.raises(CommandInvalid, match="arbiters must have priority 0"):
        c.driver(0).initiate(
            c.name(0),
            {
                **config,
                "members": [
                    *config["members"][:2],
                    {**config["members"][2], "arbiterOnly": True, "priority": 1},
                ],
            },
        )
    c.driver(2).stop(c.name(2))
    with pytest.raises(CommandConflict, match="quorum check failed") as raised:
        c.driver(0).initiate(c.name(0), config)
    assert raised.value.code_name == "NodeNotFound"
    c.start(2)
    c.driver(0).initiate(c.name(0), config)
    c.driver(0).initiate(c.name(0), config)  # the same set again: left alone, as the mongod driver does
    with pytest.raises(CommandConflict, match="already initialized") as raised:
        c.world.initiate(c.host(0), c.name(0), config)
    assert raised.value.code == 23


def test_initiate_on_a_standalone_process_is_refused() -> None:
    c = bare(1)
    c.driver(0).stop(c.name(0))
    c.start(0, standalone=True)
    assert c.driver(0).rs_status(c.name(0)) is None
    with pytest.raises(CommandConflict, match="not started with replication enabled"):
        c.driver(0).initiate(c.name(0), c.config())


def test_reconfig_lays_the_change_over_the_current_config_and_bumps_the_version() -> None:
    c = make_cluster(3)
    c.driver(0).reconfig(
        c.name(0), {"members": [{**m, "priority": 2 if m["_id"] == 1 else 1} for m in c.config()["members"]]}
    )
    cfg = c.driver(1).rs_config(c.name(1))
    assert cfg is not None and cfg["version"] == 2 and cfg["members"][1]["priority"] == 2
    assert cfg["settings"]["replicaSetId"] and cfg["protocolVersion"] == 1
    c.run_until(lambda: c.primary() == 1, within_s=30)
    with pytest.raises(CommandConflict, match="writable PRIMARY") as raised:
        c.driver(0).reconfig(c.name(0), {"settings": {"chainingAllowed": False}})
    assert raised.value.code == 10107


def test_reconfig_adds_and_removes_one_voter_at_a_time() -> None:
    c = make_cluster(3)
    members = c.config()["members"]
    c.members += [{}, {}]
    for i in (3, 4):
        c.start(i)
    with pytest.raises(CommandInvalid, match="at most 1 voting member"):
        c.driver(0).reconfig(c.name(0), {"members": c.config()["members"]})
    c.driver(0).reconfig(c.name(0), {"members": c.config()["members"][:4]})
    c.run_until(lambda: c.state(3) is MemberState.SECONDARY, within_s=30)
    c.driver(0).reconfig(c.name(0), {"members": [members[0], members[1], c.config()["members"][3]]})
    status = c.driver(2).rs_status(c.name(2))
    assert status is not None and status.my_state is MemberState.REMOVED
    assert [m.host for m in c.driver(0).rs_status(c.name(0)).members] == [c.addr(0), c.addr(1), c.addr(3)]  # type: ignore[union-attr]


def test_force_reconfig_restores_a_primary_after_losing_the_majority() -> None:
    c = make_cluster(3)
    for i in (0, 1):
        c.world.kill(c.host(i), c.name(i))
    c.run(30)
    assert c.view().primary is None
    survivor = [m for m in c.config()["members"] if m["_id"] == 2]
    with pytest.raises(CommandConflict, match="writable PRIMARY"):
        c.driver(2).reconfig(c.name(2), {"members": survivor})
    c.driver(2).reconfig(c.name(2), {"members": survivor}, force=True)
    c.run(11)
    status = c.driver(2).rs_status(c.name(2))
    assert status is not None and status.my_state is MemberState.PRIMARY
    cfg = c.driver(2).rs_config(c.name(2))
    assert cfg is not None and cfg["version"] > 10_000


def test_connections_are_counted_on_the_primary_only() -> None:
    c = make_cluster(3)
    c.set_load(rate=0, clients=25)
    c.run(1)
    assert [c.driver(i).connections(c.name(i)) for i in range(3)] == [25, 0, 0]


def test_oplog_reads_through_the_driver() -> None:
    c = make_cluster(3, oplog_mb=0.05)
    assert c.driver(0).oplog_read(c.name(0), 0)[0].op == "n", "a new set's oplog starts with its initiation"
    c.set_load(rate=100)
    c.run(30)
    window = c.driver(1).oplog_window(c.name(1))
    assert window is not None and window.window_hours > 0
    with pytest.raises(OplogGap):
        c.driver(1).oplog_read(c.name(1), 0)
    records = c.driver(1).oplog_read(c.name(1), window.first_ts, limit=10)
    assert len(records) == 10 and records[0].ts > window.first_ts
    standalone = bare(1)
    standalone.driver(0).stop(standalone.name(0))
    standalone.start(0, standalone=True)
    assert standalone.driver(0).oplog_window(standalone.name(0)) is None
    with pytest.raises(CommandConflict, match="no oplog"):
        standalone.driver(0).oplog_read(standalone.name(0), 0)


def test_a_restore_loads_every_member_and_the_set_comes_back_with_that_data() -> None:
    c = make_cluster(3)
    c.set_load(rate=50)
    c.run(10)
    restored = [("app.orders", {"_id": i, "total": i * 10}) for i in range(25)]
    for i in range(3):
        c.driver(i).stop(c.name(i), force=True)
    for i in range(3):
        c.driver(i).load(c.name(i), restored)
    c.set_load(rate=0)
    for i in range(3):
        c.start(i)
    c.run_until(
        lambda: (
            c.view().primary is not None
            and all(
                m.state is MemberState.SECONDARY or m.state is MemberState.PRIMARY for m in c.view().members
            )
        ),
        within_s=60,
    )
    c.run(10)  # members whose restored copy is not the new primary's resync from it
    assert {m.state for m in c.view().members} == {MemberState.PRIMARY, MemberState.SECONDARY}
    for i in range(3):
        assert sorted(c.driver(i).dump(c.name(i)), key=lambda d: d[1]["_id"]) == restored


def test_freeze_and_fsync_through_the_driver() -> None:
    c = make_cluster(3)
    c.driver(1).freeze(c.name(1), 30)
    c.driver(1).fsync_lock(c.name(1))
    c.driver(1).fsync_unlock(c.name(1))
    with pytest.raises(CommandConflict, match="not locked"):
        c.driver(1).fsync_unlock(c.name(1))
    with pytest.raises(CommandConflict, match="cannot freeze node when primary"):
        c.driver(0).freeze(c.name(0), 30)

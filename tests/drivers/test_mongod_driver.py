"""The mongod driver: an attached process's lifecycle (against a wire-protocol peer), process supervision
(against a stand-in binary), and a real replica set when ``OPSMGR_MONGOD`` names a ``mongod`` binary."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import stat
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
import yaml

from opsmgr.drivers.base import (
    CommandConflict,
    DriverError,
    MemberState,
    OplogRecord,
    ProcessSpec,
    ProcessUnreachable,
    RunMode,
)
from opsmgr.drivers.mongod import Credentials, MongodDriver
from opsmgr.errors import OplogGap
from tests.drivers.specs import NAME, error, spec
from tests.drivers.wirepeer import OP_QUERY, WirePeer
from tests.procs import free_port, wait_for

# ---------------------------------------------------------------------------------------------------------
# The wire-protocol peer, and an attached process's lifecycle against it


def test_the_peer_answers_a_legacy_op_query_handshake(peer: WirePeer) -> None:
    query = bson.encode({"isMaster": 1})
    body = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + query
    with socket.create_connection(("127.0.0.1", peer.port), timeout=5) as s:
        s.sendall(struct.pack("<iiii", 16 + len(body), 7, 0, OP_QUERY) + body)
        length, _, response_to, opcode = struct.unpack("<iiii", s.recv(16))
        payload = b""
        while len(payload) < length - 16:
            payload += s.recv(length - 16 - len(payload))
    assert (response_to, opcode) == (7, 1)
    (returned,) = struct.unpack_from("<i", payload, 16)
    reply = bson.decode(payload[20:])
    assert returned == 1 and reply["maxWireVersion"] == 21 and reply["ok"] == 1.0
    (seen,) = peer.received("isMaster", handshake=True)
    assert seen.opcode == OP_QUERY and seen.db == "admin"


def test_stop_of_an_attached_process_sends_a_forced_shutdown(peer: WirePeer, driver: MongodDriver) -> None:
    peer.on_shutdown = peer.stop
    driver.stop(NAME, force=True)
    assert peer.last("shutdown") == {"shutdown": 1, "force": True, "timeoutSecs": 10}
    assert driver.observe(NAME).running is False


def test_a_refused_shutdown_is_raised_unless_forced(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("shutdown", error(262, "ExceededTimeLimit", "No electable secondaries caught up as of ..."))
    with pytest.raises(CommandConflict, match="No electable secondaries"):
        driver.stop(NAME)
    assert peer.last("shutdown")["force"] is False
    assert driver.observe(NAME).running


def test_observe_of_an_attached_process(peer: WirePeer, driver: MongodDriver) -> None:
    seen = driver.observe(NAME)
    assert (seen.running, seen.mode, seen.port, seen.version, seen.pid) == (
        True,
        RunMode.REPLSET,
        peer.port,
        "7.0.14",
        None,
    )
    assert driver.observe("unknown").running is False


def test_unreachable_and_unknown_processes(tmp_path: Path) -> None:
    d = MongodDriver("mongod", "h", tmp_path, connect_timeout_s=0.2)
    d.attach("gone", free_port())
    try:
        with pytest.raises(ProcessUnreachable, match=r"gone \(127.0.0.1:\d+\): replSetGetStatus failed"):
            d.rs_status("gone")
        with pytest.raises(ProcessUnreachable, match="not started nor attached"):
            d.freeze("never", 10)
        assert d.observe("gone").running is False
    finally:
        d.close()


def test_credentials_authenticate_with_scram(peer: WirePeer, tmp_path: Path) -> None:
    d = MongodDriver("mongod", "h", tmp_path, credentials=Credentials("mms-automation", "secret"))
    d.attach(NAME, peer.port)
    peer.script("saslStart", error(18, "AuthenticationFailed", "Authentication failed."))
    try:
        with pytest.raises(DriverError, match="Authentication failed") as raised:
            d.freeze(NAME, 10)
        assert raised.value.code == 18
    finally:
        d.close()
    (start,) = peer.received("saslStart")
    assert (start.db, start.command["mechanism"]) == ("admin", "SCRAM-SHA-256")
    assert b"n=mms-automation" in start.command["payload"]
    assert peer.received("replSetFreeze") == [], "nothing is sent before authenticating"


# ---------------------------------------------------------------------------------------------------------
# Supervision, with the wire peer standing in for the mongod binary

WIREPEER = Path(__file__).with_name("wirepeer.py")


def fake_mongod(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "mongod"
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{WIREPEER}" "$@"\n')
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[MongodDriver]:
    fake_mongod(tmp_path / "bin" / "7.0.14")
    d = MongodDriver(
        str(tmp_path / "bin" / "{version}" / "mongod"),
        "127.0.0.1",
        tmp_path / "state",
        connect_timeout_s=0.5,
        start_deadline_s=30,
        stop_deadline_s=2,
        kill_grace_s=2,
    )
    try:
        yield d
    finally:
        for name in d.processes():
            d.stop(name, force=True)
        d.close()


def local_spec(tmp_path: Path, **overrides: Any) -> ProcessSpec:
    return spec(**{"hostname": "127.0.0.1", "port": free_port(), "dbpath": str(tmp_path / "db"), **overrides})


def test_start_writes_the_config_and_supervises_the_process(supervisor: MongodDriver, tmp_path: Path) -> None:
    process = local_spec(tmp_path, args={"net": {"bindIp": "127.0.0.1"}, "replication": {"oplogSizeMB": 990}})
    supervisor.start(process)
    seen = supervisor.observe(NAME)
    assert (seen.running, seen.mode, seen.port, seen.version, seen.args) == (
        True,
        RunMode.REPLSET,
        process.port,
        "7.0.14",
        process.args,
    )
    assert seen.pid is not None and seen.uptime_s is not None and seen.uptime_s >= 0
    config = yaml.safe_load((tmp_path / "state" / "mongod" / f"{NAME}.conf").read_text())
    assert config["replication"] == {"replSetName": "rs0", "oplogSizeMB": 990}
    assert config["net"]["port"] == process.port and Path(process.dbpath).is_dir()
    assert supervisor.processes() == [NAME]

    supervisor.start(process)  # already running exactly so: nothing happens
    assert supervisor.observe(NAME).pid == seen.pid
    with pytest.raises(CommandConflict, match="already runs"):
        supervisor.start(local_spec(tmp_path, repl_set_name=None))

    supervisor.stop(NAME)
    assert supervisor.observe(NAME).running is False
    assert supervisor.processes() == []


def test_standalone_start(supervisor: MongodDriver, tmp_path: Path) -> None:
    supervisor.start(local_spec(tmp_path, repl_set_name=None, args={"replication": {"replSetName": "rs0"}}))
    assert supervisor.observe(NAME).mode is RunMode.STANDALONE
    config = yaml.safe_load((tmp_path / "state" / "mongod" / f"{NAME}.conf").read_text())
    assert "replication" not in config
    assert config["setParameter"] == {"disableLogicalSessionCacheRefresh": True}


def test_a_restarted_agent_finds_its_processes_again(supervisor: MongodDriver, tmp_path: Path) -> None:
    supervisor.start(local_spec(tmp_path))
    pid = supervisor.observe(NAME).pid
    again = MongodDriver(
        supervisor.binary, "127.0.0.1", tmp_path / "state", connect_timeout_s=0.5, stop_deadline_s=5
    )
    try:
        assert again.processes() == [NAME]
        assert (again.observe(NAME).running, again.observe(NAME).pid) == (True, pid)
        again.stop(NAME)
        wait_for(lambda: not supervisor.observe(NAME).running, 10, what="the old driver to see the stop")
    finally:
        again.close()


def test_a_recorded_pid_now_used_by_another_program_is_not_taken_for_mongod(
    supervisor: MongodDriver, tmp_path: Path
) -> None:
    supervisor.start(local_spec(tmp_path))
    record = tmp_path / "state" / "mongod" / f"{NAME}.json"
    real = json.loads(record.read_text())
    record.write_text(json.dumps({**real, "pid": os.getpid()}))
    fresh = MongodDriver(supervisor.binary, "127.0.0.1", tmp_path / "state")
    assert fresh.observe(NAME).running is False
    record.write_text(json.dumps(real))


def test_a_crashed_process_is_seen_as_stopped(supervisor: MongodDriver, tmp_path: Path) -> None:
    supervisor.start(local_spec(tmp_path))
    pid = supervisor.observe(NAME).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not supervisor.observe(NAME).running, 10, what="the crash to be seen")


def test_a_process_that_exits_at_start_up_reports_its_output(
    supervisor: MongodDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIREPEER_FAIL", "Error parsing option: net.bogus")
    with pytest.raises(
        DriverError, match=r"exited with status 2 while starting: Error parsing option: net\.bogus"
    ):
        supervisor.start(local_spec(tmp_path))
    assert supervisor.observe(NAME).running is False


def test_a_port_held_by_another_server_is_not_mistaken_for_ours(
    supervisor: MongodDriver, tmp_path: Path
) -> None:
    with WirePeer() as squatter:
        squatter.script("serverStatus", {"pid": 1})
        with pytest.raises(
            DriverError, match=r"exited with status 1 while starting: .*Address already in use"
        ):
            supervisor.start(local_spec(tmp_path, port=squatter.port))
    assert supervisor.observe(NAME).running is False


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    d = MongodDriver(str(tmp_path / "nowhere" / "mongod"), "h", tmp_path / "state")
    with pytest.raises(DriverError, match=r"cannot run .*nowhere/mongod"):
        d.start(local_spec(tmp_path))


def test_a_process_deaf_to_shutdown_and_sigterm_is_killed(
    supervisor: MongodDriver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("WIREPEER_STUBBORN", "1")
    impatient = MongodDriver(
        supervisor.binary,
        "127.0.0.1",
        tmp_path / "state",
        connect_timeout_s=0.5,
        stop_deadline_s=0.3,
        kill_grace_s=0.3,
    )
    try:
        impatient.start(local_spec(tmp_path))
        pid = impatient.observe(NAME).pid
        assert pid is not None
        with caplog.at_level("WARNING", logger="opsmgr.drivers.mongod"):
            impatient.stop(NAME)
        assert impatient.observe(NAME).running is False
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        said = caplog.text
        assert "shutdown of rs0_0 failed" in said and "sending SIGTERM" in said and "sending SIGKILL" in said
    finally:
        impatient.close()


# ---------------------------------------------------------------------------------------------------------
# A real replica set


@pytest.fixture
def real(tmp_path: Path) -> Iterator[MongodDriver]:
    binary = os.environ.get("OPSMGR_MONGOD")
    if not binary:
        pytest.skip("OPSMGR_MONGOD not set: real mongod integration test skipped")
    d = MongodDriver(binary, "127.0.0.1", tmp_path / "state", stop_deadline_s=60)
    try:
        yield d
    finally:
        for name in d.processes():
            d.stop(name, force=True)
        d.close()


def test_real_replica_set(real: MongodDriver, tmp_path: Path) -> None:
    args = {
        "net": {"bindIp": "127.0.0.1"},
        "storage": {"wiredTiger": {"engineConfig": {"cacheSizeGB": 0.25}}},
        "replication": {"oplogSizeMB": 990},
    }
    specs = [
        ProcessSpec(
            name=f"rs0_{i}",
            hostname="127.0.0.1",
            port=free_port(),
            version="",
            args=args,
            repl_set_name="rs0",
            dbpath=str(tmp_path / f"db{i}"),
        )
        for i in range(3)
    ]
    for s in specs:
        real.start(s)
        assert real.observe(s.name).running
    assert real.rs_status("rs0_0") is None, "not initiated yet"
    members = [
        {"_id": i, "host": f"127.0.0.1:{s.port}", "priority": 2 if i == 0 else 1} for i, s in enumerate(specs)
    ]
    real.initiate("rs0_0", {"_id": "rs0", "members": members})

    def settled(name: str, primary: str | None = None, not_primary: str | None = None) -> Any:
        """``name``'s view once every member is PRIMARY or SECONDARY (and the primary is as asked)."""
        status = real.rs_status(name)
        if not status or not all(
            m.state in (MemberState.PRIMARY, MemberState.SECONDARY) for m in status.members
        ):
            return None
        elected = status.primary()
        if elected is None or elected.host == not_primary or primary not in (None, elected.host):
            return None
        return status

    # The highest priority wins, possibly by a priority takeover after a first election.
    status = wait_for(lambda: settled("rs0_0", primary=members[0]["host"]), 120, 0.5, "rs0_0 primary")
    assert status.set_name == "rs0" and sum(m.self for m in status.members) == 1
    assert real.rs_config("rs0_0")["members"][0]["priority"] == 2

    real.load("rs0_0", [("shop.orders", {"_id": i, "sku": f"s{i}"}) for i in range(5)])
    assert real.dump("rs0_0") == [("shop.orders", {"_id": i, "sku": f"s{i}"}) for i in range(5)]
    real.create_index("rs0_0", "shop.orders", [("sku", 1)], {"unique": True})
    assert any(ix["name"] == "sku_1" and ix.get("unique") for ix in real.list_indexes("rs0_0", "shop.orders"))
    assert real.connections("rs0_0") >= 1
    window = real.oplog_window("rs0_0")
    assert window is not None and window.size_mb == 990 and window.last_ts >= window.first_ts
    assert inserted_ids(real.oplog_read("rs0_0", window.first_ts), "shop.orders") == list(range(5))
    with pytest.raises(OplogGap):
        real.oplog_read("rs0_0", window.first_ts - 1)

    real.step_down("rs0_0", step_down_secs=60, catch_up_secs=10)
    status = wait_for(lambda: settled("rs0_1", not_primary=members[0]["host"]), 60, 0.5, "a new primary")

    # Maintenance of a secondary, as the rolling procedure does it: standalone on another port, then back.
    secondary = next(s for s in specs[1:] if f"127.0.0.1:{s.port}" != status.primary().host)
    real.stop(secondary.name)
    maintenance = dataclasses.replace(secondary, port=free_port(), repl_set_name=None)
    real.start(maintenance)
    assert real.observe(secondary.name).mode is RunMode.STANDALONE
    assert real.rs_status(secondary.name) is None
    real.stop(secondary.name)
    real.start(secondary)
    wait_for(lambda: settled(secondary.name), 120, 0.5, "the member to rejoin as a secondary")

    for s in specs:
        real.stop(s.name, force=True)
        assert real.observe(s.name).running is False


def inserted_ids(records: list[OplogRecord], ns: str) -> list[Any]:
    """The ``_id`` of each insert into ``ns``, whether logged alone or batched in an ``applyOps`` entry."""
    ids: list[Any] = []
    for r in records:
        if r.op == "i" and r.ns == ns:
            ids.append(r.o["_id"])
        elif r.op == "c":
            ids.extend(op["o"]["_id"] for op in r.o.get("applyOps", []) if op["op"] == "i" and op["ns"] == ns)
    return ids

"""The mongod driver: args2_6 translation, the command documents it sends (checked against a wire-protocol
peer), process supervision (against a stand-in binary), and a real replica set when ``OPSMGR_MONGOD``
names a ``mongod`` binary."""

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
import pytest
import yaml
from bson import ObjectId
from bson.int64 import Int64
from bson.timestamp import Timestamp

from opsmgr.drivers.base import (
    CommandConflict,
    CommandInvalid,
    DriverError,
    MemberState,
    OplogRecord,
    ProcessSpec,
    ProcessUnreachable,
    RunMode,
)
from opsmgr.drivers.mongod import Credentials, MongodDriver
from opsmgr.drivers.mongod_commands import ts_to_int
from opsmgr.errors import Conflict, InvalidInput, OplogGap
from tests.drivers.specs import NAME, spec
from tests.drivers.wirepeer import CLOSE, OP_QUERY, WirePeer
from tests.procs import free_port, wait_for

# ---------------------------------------------------------------------------------------------------------
# Command documents, against a wire-protocol peer


@pytest.fixture
def peer() -> Iterator[WirePeer]:
    with WirePeer() as p:
        yield p


@pytest.fixture
def driver(peer: WirePeer, tmp_path: Path) -> Iterator[MongodDriver]:
    d = MongodDriver("mongod", "db1.example.net", tmp_path, connect_timeout_s=0.5, stop_deadline_s=5)
    d.attach(NAME, peer.port, repl_set_name="rs0")
    try:
        yield d
    finally:
        d.close()


def error(code: int, code_name: str, errmsg: str) -> dict[str, Any]:
    return {"ok": 0.0, "code": code, "codeName": code_name, "errmsg": errmsg}


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


# A replSetGetStatus reply shaped like the example in MongoDB's replSetGetStatus reference.
RS_STATUS = {
    "set": "replset",
    "date": datetime(2020, 3, 5, 5, 24, 45, 567000, tzinfo=UTC),
    "myState": 1,
    "term": Int64(3),
    "syncSourceHost": "",
    "syncSourceId": -1,
    "heartbeatIntervalMillis": Int64(2000),
    "majorityVoteCount": 2,
    "writeMajorityCount": 2,
    "votingMembersCount": 3,
    "writableVotingMembersCount": 3,
    "optimes": {
        "lastCommittedOpTime": {"ts": Timestamp(1583385878, 1), "t": Int64(3)},
        "appliedOpTime": {"ts": Timestamp(1583385878, 1), "t": Int64(3)},
        "durableOpTime": {"ts": Timestamp(1583385878, 1), "t": Int64(3)},
    },
    "members": [
        {
            "_id": 0,
            "name": "m1.example.net:27017",
            "health": 1.0,
            "state": 1,
            "stateStr": "PRIMARY",
            "uptime": 269,
            "optime": {"ts": Timestamp(1583385878, 1), "t": Int64(3)},
            "optimeDate": datetime(2020, 3, 5, 5, 24, 38, tzinfo=UTC),
            "syncSourceHost": "",
            "syncSourceId": -1,
            "infoMessage": "",
            "electionTime": Timestamp(1583385618, 1),
            "electionDate": datetime(2020, 3, 5, 5, 20, 18, tzinfo=UTC),
            "configVersion": 1,
            "configTerm": 0,
            "self": True,
            "lastHeartbeatMessage": "",
        },
        {
            "_id": 1,
            "name": "m2.example.net:27017",
            "health": 1.0,
            "state": 2,
            "stateStr": "SECONDARY",
            "uptime": 14,
            "optime": {"ts": Timestamp(1583385877, 4), "t": Int64(3)},
            "optimeDurable": {"ts": Timestamp(1583385877, 4), "t": Int64(3)},
            "optimeDate": datetime(2020, 3, 5, 5, 24, 37, tzinfo=UTC),
            "lastHeartbeat": datetime(2020, 3, 5, 5, 24, 44, tzinfo=UTC),
            "pingMs": Int64(0),
            "lastHeartbeatMessage": "",
            "syncSourceHost": "m1.example.net:27017",
            "syncSourceId": 0,
            "infoMessage": "",
            "configVersion": 1,
            "configTerm": 0,
        },
        {
            "_id": 2,
            "name": "m3.example.net:27017",
            "health": 0.0,
            "state": 8,
            "stateStr": "(not reachable/healthy)",
            "uptime": 0,
            "optime": {"ts": Timestamp(0, 0), "t": Int64(-1)},
            "optimeDate": datetime(1970, 1, 1, tzinfo=UTC),
            "lastHeartbeatMessage": "Error connecting to m3.example.net:27017 :: caused by :: refused",
            "syncSourceHost": "",
            "syncSourceId": -1,
            "configVersion": -1,
        },
    ],
    "ok": 1.0,
    "operationTime": Timestamp(1583385878, 1),
}


def test_rs_status_sends_replsetgetstatus_and_parses_the_reply(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetGetStatus", RS_STATUS)
    status = driver.rs_status(NAME)
    assert peer.last("replSetGetStatus") == {"replSetGetStatus": 1}
    assert status is not None
    assert (status.set_name, status.my_state, status.term, status.config_version) == (
        "replset",
        MemberState.PRIMARY,
        3,
        1,
    )
    m1, m2, m3 = status.members
    assert (m1.host, m1.state, m1.health, m1.self, m1.sync_source) == (
        "m1.example.net:27017",
        MemberState.PRIMARY,
        True,
        True,
        None,
    )
    assert m1.optime_ts == (1583385878 << 32) | 1
    assert (m2.state, m2.optime_ts, m2.sync_source, m2.self) == (
        MemberState.SECONDARY,
        (1583385877 << 32) | 4,
        "m1.example.net:27017",
        False,
    )
    assert (m3.state, m3.health, m3.optime_ts, m3.config_version) == (MemberState.DOWN, False, 0, -1)
    assert status.primary() == m1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (error(94, "NotYetInitialized", "no replset config has been received"), None),
        (error(76, "NoReplicationEnabled", "not running with --replSet"), None),
        (
            error(
                93,
                "InvalidReplicaSetConfig",
                "Our replica set config is invalid or we are not a member of it",
            ),
            MemberState.REMOVED,
        ),
    ],
)
def test_rs_status_without_a_usable_config(
    peer: WirePeer, driver: MongodDriver, reply: dict[str, Any], expected: MemberState | None
) -> None:
    peer.script("replSetGetStatus", reply)
    status = driver.rs_status(NAME)
    if expected is None:
        assert status is None
    else:
        assert status is not None and status.my_state is expected and status.set_name == "rs0"


def test_rs_status_of_old_protocol_optimes(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "replSetGetStatus",
        {
            "set": "rs0",
            "myState": 2,
            "members": [
                {
                    "name": "a:1",
                    "health": 1,
                    "state": 2,
                    "stateStr": "SECONDARY",
                    "optime": Timestamp(10, 2),
                    "self": True,
                },
                {
                    "name": "b:1",
                    "health": 1,
                    "state": 1,
                    "stateStr": "PRIMARY",
                    "optimeDate": datetime(1970, 1, 1, 0, 0, 11, tzinfo=UTC),
                },
            ],
        },
    )
    status = driver.rs_status(NAME)
    assert status is not None
    assert [m.optime_ts for m in status.members] == [(10 << 32) | 2, 11 << 32]
    assert (status.term, status.config_version) == (0, 0)


def test_rs_config_returns_the_config_document(peer: WirePeer, driver: MongodDriver) -> None:
    config = {"_id": "rs0", "version": 4, "term": 2, "members": [{"_id": 0, "host": "a:1"}]}
    peer.script("replSetGetConfig", {"config": config})
    assert driver.rs_config(NAME) == config
    assert peer.last("replSetGetConfig") == {"replSetGetConfig": 1}


CONFIG = {
    "_id": "rs0",
    "members": [
        {"_id": 0, "host": "db1.example.net:27017", "priority": 2, "votes": 1},
        {"_id": 1, "host": "db2.example.net:27017", "priority": 1, "votes": 1},
        {"_id": 2, "host": "db3.example.net:27017", "arbiterOnly": True},
    ],
}


def test_initiate_sends_the_config_as_given(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetInitiate", {})
    driver.initiate(NAME, CONFIG)
    assert peer.last("replSetInitiate") == {"replSetInitiate": CONFIG}


def test_initiate_again_of_the_same_set_is_a_no_op_but_of_another_set_a_conflict(
    peer: WirePeer, driver: MongodDriver
) -> None:
    peer.script("replSetInitiate", error(23, "AlreadyInitialized", "already initialized"))
    peer.script("replSetGetConfig", {"config": {**CONFIG, "version": 1}})
    driver.initiate(NAME, CONFIG)
    with pytest.raises(CommandConflict, match="already initialized") as raised:
        driver.initiate(NAME, {**CONFIG, "_id": "other"})
    assert isinstance(raised.value, Conflict) and raised.value.code == 23


def test_a_bad_config_is_invalid_input(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetInitiate", error(93, "InvalidReplicaSetConfig", "members must have unique _id"))
    with pytest.raises(
        CommandInvalid, match=r"rs0_0 .* replSetInitiate failed: members must have unique _id"
    ) as e:
        driver.initiate(NAME, CONFIG)
    assert isinstance(e.value, InvalidInput) and e.value.http_status == 400


@pytest.mark.parametrize("force", [False, True])
def test_reconfig_increments_the_current_version(peer: WirePeer, driver: MongodDriver, force: bool) -> None:
    set_id = ObjectId()
    current = {
        **CONFIG,
        "version": 7,
        "term": 3,
        "protocolVersion": Int64(1),
        "settings": {"replicaSetId": set_id, "electionTimeoutMillis": 10000},
    }
    peer.script("replSetGetConfig", {"config": current})
    peer.script("replSetReconfig", {})
    driver.reconfig(
        NAME,
        {
            "_id": "rs0",
            "version": 1,
            "members": CONFIG["members"][:2],
            "settings": {"electionTimeoutMillis": 5000},
        },
        force=force,
    )
    assert peer.last("replSetReconfig") == {
        "replSetReconfig": {
            "_id": "rs0",
            "members": CONFIG["members"][:2],
            "version": 8,
            "protocolVersion": 1,
            "settings": {"replicaSetId": set_id, "electionTimeoutMillis": 5000},
        },
        "force": force,
    }
    names = [r.name for r in peer.received()]
    assert names.index("replSetGetConfig") < names.index("replSetReconfig")


def test_reconfig_of_a_set_not_initiated_is_a_conflict(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetGetConfig", error(94, "NotYetInitialized", "no replset config"))
    with pytest.raises(CommandConflict, match="not initiated"):
        driver.reconfig(NAME, CONFIG)
    assert peer.received("replSetReconfig") == []


def test_step_down_sends_both_periods(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetStepDown", {})
    driver.step_down(NAME, step_down_secs=120, catch_up_secs=15)
    assert peer.last("replSetStepDown") == {"replSetStepDown": 120, "secondaryCatchUpPeriodSecs": 15}


def test_step_down_without_a_caught_up_secondary_is_a_conflict(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "replSetStepDown",
        error(262, "ExceededTimeLimit", "No electable secondaries caught up as of 2024-01-01T00:00:10Z"),
    )
    with pytest.raises(CommandConflict, match="No electable secondaries caught up"):
        driver.step_down(NAME)


def test_step_down_of_a_secondary_is_a_conflict(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetStepDown", error(10107, "NotWritablePrimary", "not primary so can't step down"))
    with pytest.raises(CommandConflict, match="not primary so can't step down") as raised:
        driver.step_down(NAME)
    assert raised.value.code == 10107


def test_step_down_answered_by_a_closed_connection_succeeded(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetStepDown", CLOSE)  # what servers before 4.2 did
    driver.step_down(NAME)
    assert len(peer.received("replSetStepDown")) == 1


def test_freeze(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetFreeze", {})
    driver.freeze(NAME, 120)
    assert peer.last("replSetFreeze") == {"replSetFreeze": 120}


def test_set_parameter_sends_the_values_and_shows_them_in_the_options(
    peer: WirePeer, driver: MongodDriver
) -> None:
    peer.script("setParameter", {"was": 0})
    driver.set_parameter(NAME, {"logLevel": 2})
    assert peer.last("setParameter") == {"setParameter": 1, "logLevel": 2}
    assert driver.observe(NAME).args["setParameter"] == {"logLevel": 2}


def test_rename_replica_set_rewrites_local_system_replset(peer: WirePeer, driver: MongodDriver) -> None:
    config = {"_id": "rs0", "version": 3, "members": []}
    peer.script("find", {"cursor": {"firstBatch": [config], "id": Int64(0), "ns": "local.system.replset"}})
    peer.script("delete", {"n": 1})
    peer.script("insert", {"n": 1})
    driver.rename_replica_set(NAME, "rs9")
    assert peer.last("delete")["deletes"][0]["q"] == {"_id": "rs0"}
    inserted = peer.last("insert")
    assert inserted["insert"] == "system.replset" and inserted["documents"][0]["_id"] == "rs9"


def test_fsync_lock_and_unlock(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("fsync", {"info": "now locked against writes", "lockCount": Int64(1)})
    peer.script("fsyncUnlock", {"info": "fsyncUnlock completed", "lockCount": Int64(0)})
    driver.fsync_lock(NAME)
    driver.fsync_unlock(NAME)
    assert [r.command for r in peer.received()] == [{"fsync": 1, "lock": True}, {"fsyncUnlock": 1}]
    assert {r.db for r in peer.received()} == {"admin"}


def test_create_index_sends_key_name_and_options(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "createIndexes",
        {"numIndexesBefore": 1, "numIndexesAfter": 2, "createdCollectionAutomatically": False},
    )
    driver.create_index(
        NAME, "shop.orders", [("customer", 1), ("date", -1)], {"unique": True, "sparse": True}
    )
    driver.create_index(NAME, "shop.orders", [("sku", 1)], {"name": "by_sku"})
    first, second = peer.received("createIndexes")
    assert first.db == "shop"
    assert first.command == {
        "createIndexes": "orders",
        "indexes": [
            {"key": {"customer": 1, "date": -1}, "name": "customer_1_date_-1", "unique": True, "sparse": True}
        ],
    }
    assert list(first.command["indexes"][0]["key"]) == ["customer", "date"], "key order is the index's order"
    assert second.command["indexes"] == [{"key": {"sku": 1}, "name": "by_sku"}]


def test_a_unique_index_over_duplicates_is_a_conflict(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "createIndexes", error(11000, "DuplicateKey", "E11000 duplicate key error collection: shop.orders")
    )
    with pytest.raises(CommandConflict, match="E11000"):
        driver.create_index(NAME, "shop.orders", [("sku", 1)], {"unique": True})


def test_create_index_needs_a_full_namespace(driver: MongodDriver) -> None:
    with pytest.raises(InvalidInput, match=r"<database>\.<collection>"):
        driver.create_index(NAME, "orders", [("sku", 1)], {})


def test_list_indexes(peer: WirePeer, driver: MongodDriver) -> None:
    indexes = [
        {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        {"v": 2, "key": {"sku": 1}, "name": "sku_1", "unique": True},
    ]
    peer.script("listIndexes", {"cursor": {"id": Int64(0), "ns": "shop.orders", "firstBatch": indexes}})
    assert driver.list_indexes(NAME, "shop.orders") == indexes
    sent = peer.received("listIndexes")[-1]
    assert (sent.db, sent.command) == ("shop", {"listIndexes": "orders", "cursor": {}})


def test_connections_from_server_status(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "serverStatus", {"host": "db1", "connections": {"current": 17, "available": 800, "totalCreated": 40}}
    )
    assert driver.connections(NAME) == 17
    assert peer.last("serverStatus") == {"serverStatus": 1}


FIRST = {
    "ts": Timestamp(1_700_000_000, 1),
    "t": Int64(1),
    "op": "n",
    "ns": "",
    "o": {"msg": "initiating set"},
}
LAST = {
    "ts": Timestamp(1_700_000_000 + 9000, 3),
    "t": Int64(1),
    "op": "n",
    "ns": "",
    "o": {"msg": "periodic noop"},
}


def cursor(ns: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cursor": {"id": Int64(0), "ns": ns, "firstBatch": docs}}


def oplog_finds(entries: list[dict[str, Any]]) -> Any:
    """Answers finds on local.oplog.rs as a server would for our three shapes: first, last, ts > x."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        gt = body.get("filter", {}).get("ts", {}).get("$gt")
        found = [e for e in entries if gt is None or e["ts"] > gt]
        if body.get("sort") == {"$natural": -1}:
            found.reverse()
        return cursor("local.oplog.rs", found[: body.get("limit") or None])

    return answer


def test_oplog_window_as_print_replication_info_computes_it(peer: WirePeer, driver: MongodDriver) -> None:
    stats = {
        "ns": "local.oplog.rs",
        "storageStats": {"size": 100 * 2**20, "count": 5000, "capped": True, "maxSize": 2**30},
    }
    peer.script("aggregate", cursor("local.oplog.rs", [stats]))
    peer.script("find", oplog_finds([FIRST, LAST]))
    window = driver.oplog_window(NAME)
    assert window is not None
    assert (window.size_mb, window.used_mb, window.window_hours) == (1024.0, 100.0, 2.5)
    assert (window.first_ts, window.last_ts) == (ts_to_int(FIRST["ts"]), ts_to_int(LAST["ts"]))
    agg = peer.received("aggregate")[-1]
    assert (agg.db, agg.command["aggregate"], agg.command["pipeline"]) == (
        "local",
        "oplog.rs",
        [{"$collStats": {"storageStats": {}}}],
    )
    finds = [r.command for r in peer.received("find")]
    assert [(f["find"], f["filter"], f["sort"], f["limit"]) for f in finds] == [
        ("oplog.rs", {}, {"$natural": 1}, 1),
        ("oplog.rs", {}, {"$natural": -1}, 1),
    ]


def test_no_oplog_no_window(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "aggregate", error(26, "NamespaceNotFound", "Unable to retrieve storageStats: local.oplog.rs")
    )
    assert driver.oplog_window(NAME) is None


def test_oplog_read_returns_entries_after_ts(peer: WirePeer, driver: MongodDriver) -> None:
    insert = {
        "ts": Timestamp(1_700_000_100, 2),
        "t": Int64(1),
        "op": "i",
        "ns": "shop.orders",
        "ui": bson.Binary(b"0" * 16, 4),
        "o": {"_id": 1, "sku": "x"},
        "o2": {"_id": 1},
        "wall": datetime(2023, 11, 14, 22, 15, tzinfo=UTC),
        "v": Int64(2),
    }
    update = {
        "ts": Timestamp(1_700_000_101, 1),
        "op": "u",
        "ns": "shop.orders",
        "o": {"$v": 2, "diff": {"u": {"sku": "y"}}},
        "o2": {"_id": 1},
    }
    peer.script("find", oplog_finds([FIRST, insert, update]))
    after = ts_to_int(FIRST["ts"])
    records = driver.oplog_read(NAME, after, limit=50)
    assert records == [
        OplogRecord(
            ts=ts_to_int(insert["ts"]),
            op="i",
            ns="shop.orders",
            o={"_id": 1, "sku": "x"},
            o2={"_id": 1},
            wall_ms=1_700_000_100_000,
        ),
        OplogRecord(ts=ts_to_int(update["ts"]), op="u", ns="shop.orders", o=update["o"], o2={"_id": 1}),
    ]
    query = peer.received("find")[0].command
    assert query["filter"] == {"ts": {"$gt": Timestamp(1_700_000_000, 1)}}
    assert (query["sort"], query["limit"]) == ({"$natural": 1}, 50)


def test_oplog_read_behind_the_first_entry_is_a_gap(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("find", oplog_finds([FIRST, LAST]))
    behind = ts_to_int(FIRST["ts"]) - 1
    with pytest.raises(OplogGap) as gap:
        driver.oplog_read(NAME, behind)
    assert (gap.value.after_ts, gap.value.first_available_ts) == (behind, ts_to_int(FIRST["ts"]))


def test_dump_reads_user_collections_only(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "listDatabases",
        {"databases": [{"name": n} for n in ("admin", "config", "local", "shop")], "totalSize": 1},
    )
    peer.script(
        "listCollections",
        cursor(
            "shop.$cmd.listCollections",
            [{"name": "orders", "type": "collection"}, {"name": "system.js", "type": "collection"}],
        ),
    )
    peer.script("find", cursor("shop.orders", [{"_id": 1, "sku": "x"}, {"_id": 2, "sku": "y"}]))
    assert driver.dump(NAME) == [
        ("shop.orders", {"_id": 1, "sku": "x"}),
        ("shop.orders", {"_id": 2, "sku": "y"}),
    ]
    (listing,) = peer.received("listCollections")
    assert (listing.db, listing.command["filter"]) == ("shop", {"type": "collection"})
    (find,) = peer.received("find")
    assert (find.db, find.command["find"]) == ("shop", "orders")


def test_load_replaces_user_databases(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("listDatabases", {"databases": [{"name": "admin"}, {"name": "old"}], "totalSize": 1})
    peer.script("dropDatabase", {})
    peer.script("insert", lambda body: {"n": len(body["documents"])})
    driver.load(
        NAME, [("shop.orders", {"_id": 1}), ("shop.items", {"_id": "a"}), ("shop.orders", {"_id": 2})]
    )
    (drop,) = peer.received("dropDatabase")
    assert drop.db == "old"
    inserts = [
        (r.db, r.command["insert"], r.command["documents"], r.command["ordered"])
        for r in peer.received("insert")
    ]
    assert inserts == [
        ("shop", "orders", [{"_id": 1}, {"_id": 2}], True),
        ("shop", "items", [{"_id": "a"}], True),
    ]


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


def test_other_server_errors_keep_their_code(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetFreeze", error(13, "Unauthorized", "command replSetFreeze requires authentication"))
    with pytest.raises(DriverError, match="requires authentication") as raised:
        driver.freeze(NAME, 10)
    assert not isinstance(raised.value, Conflict | InvalidInput)
    assert (raised.value.code, raised.value.code_name) == (13, "Unauthorized")


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

"""The mongod driver's administrative commands: the command documents it sends and the replies and errors it
reads, checked against a wire-protocol peer."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from bson.int64 import Int64
from bson.timestamp import Timestamp

from opsmgr.drivers.base import (
    CommandConflict,
    CommandInvalid,
    DriverError,
    MemberState,
)
from opsmgr.drivers.mongod import MongodDriver
from opsmgr.drivers.mongod_admin import data_partition
from opsmgr.errors import Conflict, InvalidInput
from tests.drivers.specs import NAME, error
from tests.drivers.wirepeer import CLOSE, WirePeer

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


def test_other_server_errors_keep_their_code(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("replSetFreeze", error(13, "Unauthorized", "command replSetFreeze requires authentication"))
    with pytest.raises(DriverError, match="requires authentication") as raised:
        driver.freeze(NAME, 10)
    assert not isinstance(raised.value, Conflict | InvalidInput)
    assert (raised.value.code, raised.value.code_name) == (13, "Unauthorized")


def test_server_sample_from_server_status(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "serverStatus",
        {"connections": {"current": 3}, "opcounters": {"insert": 5, "command": 9}, "mem": {"resident": 70}},
    )
    expected = {"OPCOUNTER_INSERT": 5.0, "OPCOUNTER_CMD": 9.0, "MEMORY_RESIDENT": 70.0}
    assert driver.server_sample(NAME) == expected
    assert peer.last("serverStatus") == {"serverStatus": 1}


def test_server_sample_adds_the_disk_from_db_stats(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("serverStatus", {"opcounters": {"insert": 1}})
    peer.script("dbStats", {"db": "admin", "fsUsedSize": 4000.0, "fsTotalSize": 10000.0})
    assert driver.server_sample(NAME) == {
        "OPCOUNTER_INSERT": 1.0,
        "DISK_PARTITION_SPACE_USED": 4000.0,
        "DISK_PARTITION_SPACE_FREE": 6000.0,
    }
    sent = peer.received("dbStats")[-1]
    assert (sent.db, sent.command) == ("admin", {"dbStats": 1})


def test_storage_sample_is_db_stats_of_each_listed_database(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("listDatabases", {"databases": [{"name": "shop"}, {"name": "admin"}], "totalSize": 1})
    peer.script(
        "dbStats",
        lambda cmd: (
            {"db": "x", "objects": 4, "dataSize": 400, "collections": 1}
            if peer.received("dbStats")[-1].db == "shop"
            else error(13, "Unauthorized", "not authorized on admin")
        ),
    )
    got = driver.storage_sample(NAME)
    assert got.databases == {
        "shop": {"DATABASE_OBJECT_COUNT": 4.0, "DATABASE_DATA_SIZE": 400.0, "DATABASE_COLLECTION_COUNT": 1.0}
    }
    assert got.partitions == {}  # an attached process's data directory is not known
    assert peer.last("listDatabases") == {"listDatabases": 1, "nameOnly": True}
    sent = sorted((r.db, r.command["dbStats"]) for r in peer.received("dbStats"))
    assert sent == [("admin", 1), ("shop", 1)]


def test_the_data_directory_partition_is_read_from_the_filesystem(tmp_path: Path) -> None:
    (name, disk), *others = data_partition({"storage": {"dbPath": str(tmp_path)}}).items()
    usage = shutil.disk_usage(tmp_path)
    assert not others and name and "/" not in name
    assert disk["DISK_PARTITION_SPACE_USED"] + disk["DISK_PARTITION_SPACE_FREE"] == usage.total
    assert 0 <= disk["DISK_PARTITION_SPACE_PERCENT_USED"] <= 100
    assert data_partition({}) == {} and data_partition({"storage": {"dbPath": str(tmp_path / "gone")}}) == {}

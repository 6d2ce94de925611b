"""The measurement sample an agent ships per process: ``serverStatus`` read into Ops Manager's names
(``drivers.mongod_commands.server_status_sample``), completed with connections, lag and oplog window
(``agent.observe.sample``), and bounded by the status report's model; the storage sample: ``dbStats`` per
database of ``listDatabases``, the data directory's partition named after its mount's device, and the
report's bounds on partition and database names; storage is read at most every few seconds per process."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest
from bson.int64 import Int64
from pydantic import ValidationError

from opsmgr.agent.observe import StorageSchedule, sample
from opsmgr.automation.status import MAX_DATABASES, MAX_MEASUREMENTS, MAX_PARTITIONS, Observed, StatusReport
from opsmgr.drivers.base import Driver, MemberState, MemberStatus, OplogWindow, RsStatus, StorageSample
from opsmgr.drivers.mongod_commands import (
    database_names,
    database_sample,
    db_stats_sample,
    disk_space_sample,
    partition_name,
    server_status_sample,
)

SERVER_STATUS: dict[str, Any] = {
    "opcounters": {"insert": Int64(120), "query": 7, "update": 30, "delete": 2, "getmore": 0, "command": 900},
    "mem": {"bits": 64, "resident": 312, "virtual": 2048},
    "extra_info": {"page_faults": 11},
    "wiredTiger": {"concurrentTransactions": {"read": {"available": 127}, "write": {"available": 125}}},
    "connections": {"current": 17},
}


def test_server_status_reads_into_ops_manager_names() -> None:
    assert server_status_sample(SERVER_STATUS) == {
        "OPCOUNTER_INSERT": 120.0,
        "OPCOUNTER_QUERY": 7.0,
        "OPCOUNTER_UPDATE": 30.0,
        "OPCOUNTER_DELETE": 2.0,
        "OPCOUNTER_GETMORE": 0.0,
        "OPCOUNTER_CMD": 900.0,
        "MEMORY_RESIDENT": 312.0,
        "MEMORY_VIRTUAL": 2048.0,
        "EXTRA_INFO_PAGE_FAULTS": 11.0,
        "TICKETS_AVAILABLE_READS": 127.0,
        "TICKETS_AVAILABLE_WRITE": 125.0,
    }


def test_what_server_status_lacks_or_garbles_is_left_out() -> None:
    garbled = {
        "opcounters": {"insert": "many", "update": True, "delete": math.nan},
        "mem": 3,
        "wiredTiger": {},
    }
    assert server_status_sample(garbled) == {}


def test_db_stats_gives_the_disk_used_and_free() -> None:
    assert db_stats_sample({"fsUsedSize": 3.0, "fsTotalSize": 10}) == {
        "DISK_PARTITION_SPACE_USED": 3.0,
        "DISK_PARTITION_SPACE_FREE": 7.0,
    }
    assert db_stats_sample({"fsUsedSize": 3.0}) == {}  # a server before 3.6 does not say
    assert db_stats_sample({"fsUsedSize": True, "fsTotalSize": 10}) == {}


def _status(lag_s: int) -> RsStatus:
    members = (
        MemberStatus("a:1", MemberState.PRIMARY, True, (1000 + lag_s) << 32),
        MemberStatus("b:1", MemberState.SECONDARY, True, 1000 << 32, self=True),
    )
    return RsStatus("rs0", MemberState.SECONDARY, 1, members, 1)


def test_sample_adds_connections_lag_and_oplog_window() -> None:
    window = OplogWindow(size_mb=990, used_mb=10, first_ts=0, last_ts=0, window_hours=26.5)
    got = sample({"OPCOUNTER_INSERT": 3.0}, 4, _status(12), window)
    assert got == {
        "OPCOUNTER_INSERT": 3.0,
        "CONNECTIONS": 4.0,
        "OPLOG_SLAVE_LAG_MASTER_TIME": 12.0,
        "OPLOG_MASTER_TIME": 26.5,
    }
    assert sample(None, None, None, None) == {}


@pytest.mark.parametrize(
    "measurements",
    [
        {"connections": 1},  # not a measurement name
        {"CONNECTIONS": "1"},  # a string is not a number
        {"CONNECTIONS": True},
        {"CONNECTIONS": 1e300},
        {f"M{i}": 1 for i in range(MAX_MEASUREMENTS + 1)},
        {"X" * 65: 1},
    ],
)
def test_the_report_refuses_a_hostile_sample(measurements: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Observed.model_validate({"measurements": measurements})


def test_the_report_keeps_a_sample() -> None:
    observed = Observed.model_validate({"measurements": {"CONNECTIONS": 3, "OPLOG_MASTER_TIME": 1.5}})
    assert observed.measurements == {"CONNECTIONS": 3.0, "OPLOG_MASTER_TIME": 1.5}


def test_db_stats_reads_into_the_database_measurements() -> None:
    stats = {
        "db": "shop",
        "collections": 2,
        "views": 0,
        "objects": Int64(40),
        "avgObjSize": 55.5,
        "dataSize": 2220,
        "storageSize": 8192.0,
        "indexes": 3,
        "indexSize": 12288,
        "ok": 1,
    }
    assert database_sample(stats) == {
        "DATABASE_OBJECT_COUNT": 40.0,
        "DATABASE_AVERAGE_OBJECT_SIZE": 55.5,
        "DATABASE_DATA_SIZE": 2220.0,
        "DATABASE_STORAGE_SIZE": 8192.0,
        "DATABASE_INDEX_SIZE": 12288.0,
        "DATABASE_COLLECTION_COUNT": 2.0,
        "DATABASE_INDEX_COUNT": 3.0,
        "DATABASE_VIEW_COUNT": 0.0,
    }
    assert database_sample({"objects": "many", "dataSize": -1, "indexes": math.inf}) == {}


def test_list_databases_gives_the_first_names_by_name() -> None:
    reply = {"databases": [{"name": "zoo"}, {"name": "admin"}, {"name": ""}, {"nope": 1}, 3, {"name": "b"}]}
    assert database_names(reply, 2) == ["admin", "b"]
    assert database_names({"databases": "x"}, 5) == [] and database_names({}, 5) == []


MOUNTS = """overlay / overlay rw 0 0
/dev/nvme1n1 /data xfs rw 0 0
/dev/nvme1n1p2 /data/db/with\\040space ext4 rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/data/db/rs0_0", "nvme1n1"),
        ("/data", "nvme1n1"),
        ("/database", "overlay"),  # a mount point is a path's prefix by whole segments only
        ("/data/db/with space/x", "nvme1n1p2"),
        ("/srv", "overlay"),
    ],
)
def test_the_data_directory_partition_is_its_mount_device(path: str, name: str) -> None:
    assert partition_name(path, MOUNTS) == name
    assert partition_name(path, "") == "root"
    assert partition_name("/x", "weird/../dev$ /x ext4\n") == "weird_.._dev_"


def test_disk_space_in_bytes_and_percent() -> None:
    assert disk_space_sample(total=1000, free=250) == {
        "DISK_PARTITION_SPACE_USED": 750.0,
        "DISK_PARTITION_SPACE_FREE": 250.0,
        "DISK_PARTITION_SPACE_PERCENT_USED": 75.0,
        "DISK_PARTITION_SPACE_PERCENT_FREE": 25.0,
    }


@pytest.mark.parametrize(
    "storage",
    [
        {"disks": {"../etc": {"DISK_PARTITION_SPACE_USED": 1}}},
        {"disks": {"..": {}}},
        {"disks": {"a/b": {}}},
        {"disks": {f"p{i}": {} for i in range(MAX_PARTITIONS + 1)}},
        {"databases": {"a.b": {}}},
        {"databases": {"a/b": {}}},
        {"databases": {"x" * 64: {}}},
        {"databases": {f"db{i}": {} for i in range(MAX_DATABASES + 1)}},
        {"databases": {"shop": {"DATABASE_OBJECT_COUNT": "3"}}},
    ],
)
def test_the_report_refuses_hostile_storage(storage: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Observed.model_validate(storage)


def test_the_report_keeps_storage() -> None:
    observed = Observed.model_validate(
        {
            "disks": {"xvdb": {"DISK_PARTITION_SPACE_USED": 5}},
            "databases": {"shop": {"DATABASE_OBJECT_COUNT": 2}},
        }
    )
    assert observed.disks == {"xvdb": {"DISK_PARTITION_SPACE_USED": 5.0}}
    assert observed.databases == {"shop": {"DATABASE_OBJECT_COUNT": 2.0}}


class _Storage:
    """A driver whose storage answers count the reads (the rest of the protocol is not asked)."""

    def __init__(self) -> None:
        self.reads = 0

    def storage_sample(self, name: str) -> StorageSample:
        self.reads += 1
        return StorageSample(
            {"xvdb": {"DISK_PARTITION_SPACE_USED": 1.0}}, {"shop": {"DATABASE_VIEW_COUNT": 0.0}}
        )


def test_storage_is_read_at_most_every_interval_per_driver_and_process() -> None:
    schedule, one, two = StorageSchedule(5.0), _Storage(), _Storage()
    driver_one, driver_two = cast(Driver, one), cast(Driver, two)
    assert schedule.sample(driver_one, "a", 100.0).databases == {"shop": {"DATABASE_VIEW_COUNT": 0.0}}
    assert schedule.sample(driver_one, "a", 104.9) == StorageSample()  # the report between carries none
    assert schedule.sample(driver_one, "b", 104.9).partitions  # another process is its own
    assert schedule.sample(driver_two, "a", 104.9).partitions  # another agent's driver too
    assert schedule.sample(driver_one, "a", 105.0).partitions
    assert (one.reads, two.reads) == (3, 1)


def test_the_agent_status_kept_holds_no_storage_sample() -> None:
    observed = {
        "running": True,
        "measurements": {"CONNECTIONS": 2},
        "databases": {"shop": {"DATABASE_VIEW_COUNT": 0}},
    }
    report = StatusReport.model_validate({"processes": [{"name": "a", "observed": observed}, {"name": "b"}]})
    kept = report.stored()["processes"]
    assert kept[0]["observed"]["measurements"] == {"CONNECTIONS": 2.0}
    assert "databases" not in kept[0]["observed"] and "disks" not in kept[0]["observed"]
    assert kept[1]["observed"] is None

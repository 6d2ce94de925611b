"""The measurement sample an agent ships per process: ``serverStatus`` read into Ops Manager's names
(``drivers.mongod_commands.server_status_sample``), completed with connections, lag and oplog window
(``agent.observe.sample``), and bounded by the status report's model."""

from __future__ import annotations

import math
from typing import Any

import pytest
from bson.int64 import Int64
from pydantic import ValidationError

from opsmgr.agent.observe import sample
from opsmgr.automation.status import MAX_MEASUREMENTS, Observed
from opsmgr.drivers.base import MemberState, MemberStatus, OplogWindow, RsStatus
from opsmgr.drivers.mongod_commands import db_stats_sample, server_status_sample

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

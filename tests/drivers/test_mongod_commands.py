"""The mongod driver's pure half: args2_6 to a mongod config file, and how a local mongod is reached."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.drivers.base import MemberState, ProcessSpec
from opsmgr.drivers.mongod_commands import (
    admin_host,
    int_to_ts,
    mongod_options,
    oplog_record,
    parse_rs_status,
    render_config,
    requires_tls,
    ts_to_int,
)
from opsmgr.errors import InvalidInput
from tests.drivers.specs import spec

# ---------------------------------------------------------------------------------------------------------
# args2_6 -> mongod options

REPLSET_ARGS = {
    "net": {
        "port": 27017,
        "bindIp": "0.0.0.0",
        "tls": {"mode": "requireTLS", "certificateKeyFile": "/s.pem"},
    },
    "storage": {"dbPath": "/data/rs0_0", "wiredTiger": {"engineConfig": {"cacheSizeGB": 0.25}}},
    "systemLog": {"destination": "file", "path": "/log/rs0_0.log"},
    "replication": {"replSetName": "rs0", "oplogSizeMB": 2048},
    "security": {"keyFile": "/etc/keyfile", "authorization": "enabled"},
    "setParameter": {"ttlMonitorEnabled": False},
}

TRANSLATIONS = [
    pytest.param(
        spec(args=REPLSET_ARGS, log_path="/log/rs0_0.log"),
        {
            **REPLSET_ARGS,
            "systemLog": {"destination": "file", "path": "/log/rs0_0.log", "logAppend": True},
        },
        id="replset: args2_6 kept as they are",
    ),
    pytest.param(
        spec(args=REPLSET_ARGS, port=37017, repl_set_name=None, log_path="/log/rs0_0.log"),
        {
            "net": {**REPLSET_ARGS["net"], "port": 37017},
            "storage": REPLSET_ARGS["storage"],
            "systemLog": {"destination": "file", "path": "/log/rs0_0.log", "logAppend": True},
            "security": REPLSET_ARGS["security"],
            "setParameter": {"ttlMonitorEnabled": False, "disableLogicalSessionCacheRefresh": True},
        },
        id="standalone maintenance: no replication section, maintenance port",
    ),
    pytest.param(
        spec(args={"replication": {"replSetName": "old"}}, repl_set_name="renamed", dbpath="/d"),
        {
            "replication": {"replSetName": "renamed"},
            "net": {"port": 27017},
            "storage": {"dbPath": "/d"},
            "systemLog": {"destination": "file", "path": "/default.log", "logAppend": True},
        },
        id="the spec's set name wins (renaming a replica set)",
    ),
    pytest.param(
        spec(args={"net": {"port": 1}, "storage": {"dbPath": "/elsewhere"}}, port=2, dbpath="/d"),
        {
            "net": {"port": 2},
            "storage": {"dbPath": "/d"},
            "systemLog": {"destination": "file", "path": "/default.log", "logAppend": True},
            "replication": {"replSetName": "rs0"},
        },
        id="the spec's port and dbpath win",
    ),
    pytest.param(
        spec(args={"systemLog": {"destination": "file", "path": "/a.log", "logAppend": False}}, dbpath="/d"),
        {
            "systemLog": {"destination": "file", "path": "/a.log", "logAppend": False},
            "net": {"port": 27017},
            "storage": {"dbPath": "/d"},
            "replication": {"replSetName": "rs0"},
        },
        id="args2_6 log path kept when the spec has none",
    ),
    pytest.param(
        spec(args={"systemLog": {"destination": "syslog"}}, dbpath="/d"),
        {
            "systemLog": {"destination": "syslog"},
            "net": {"port": 27017},
            "storage": {"dbPath": "/d"},
            "replication": {"replSetName": "rs0"},
        },
        id="syslog left alone",
    ),
    pytest.param(
        spec(args={"processManagement": {"fork": True, "pidFilePath": "/run/m.pid"}}, dbpath="/d"),
        {
            "processManagement": {"pidFilePath": "/run/m.pid"},
            "net": {"port": 27017},
            "storage": {"dbPath": "/d"},
            "systemLog": {"destination": "file", "path": "/default.log", "logAppend": True},
            "replication": {"replSetName": "rs0"},
        },
        id="fork dropped: the driver supervises",
    ),
    pytest.param(
        spec(args={"sharding": {"clusterRole": "shardsvr"}}, repl_set_name=None, port=37017, dbpath="/d"),
        {
            "net": {"port": 37017},
            "storage": {"dbPath": "/d"},
            "systemLog": {"destination": "file", "path": "/default.log", "logAppend": True},
            "setParameter": {
                "disableLogicalSessionCacheRefresh": True,
                "skipShardingConfigurationChecks": True,
            },
        },
        id="standalone shard member: no clusterRole, sharding checks skipped",
    ),
]


@pytest.mark.parametrize(("process", "expected"), TRANSLATIONS)
def test_args2_6_translation(process: ProcessSpec, expected: dict[str, Any]) -> None:
    options = mongod_options(process, default_log_path="/default.log")
    assert options == expected
    assert yaml.safe_load(render_config(options)) == expected
    assert process.args.get("replication", {}).get("replSetName") != "renamed", (
        "spec.args must not be mutated"
    )


def test_rendered_config_reads_back_tricky_values() -> None:
    options = {
        "setParameter": {"yes": "no", "on": True, "1key": 1.5e-07, "a b": "c: d # e", "empty": {}},
        "net": {"bindIp": "localhost,10.0.0.1", "compression": {"compressors": ["zstd", "snappy"]}},
        "x": {"list": [{"k": "v", "null": None}], "version": "1.10", "big": 1e20, "nl": "a\nb\u2028c\x85"},
    }
    assert yaml.safe_load(render_config(options)) == options


def test_a_value_a_config_file_cannot_hold_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot go in a mongod config file"):
        render_config({"storage": {"x": float("nan")}})


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1), _values, max_size=5))
def test_any_json_document_renders_to_yaml_that_reads_back_equal(options: dict[str, Any]) -> None:
    assert yaml.safe_load(render_config(options)) == (options or None)


@pytest.mark.parametrize(
    ("net", "host"),
    [
        ({}, "127.0.0.1"),
        ({"bindIp": "0.0.0.0"}, "127.0.0.1"),
        ({"bindIp": "localhost,10.1.2.3"}, "127.0.0.1"),
        ({"bindIpAll": True, "bindIp": "10.1.2.3"}, "127.0.0.1"),
        ({"bindIp": "10.1.2.3, 10.1.2.4"}, "10.1.2.3"),
    ],
)
def test_admin_host_is_loopback_unless_bind_ip_leaves_it_out(net: dict[str, Any], host: str) -> None:
    assert admin_host({"net": net}) == host


@pytest.mark.parametrize(
    ("net", "tls"),
    [
        ({}, False),
        ({"tls": {"mode": "disabled"}}, False),
        ({"tls": {"mode": "allowTLS"}}, False),
        ({"tls": {"mode": "preferTLS"}}, False),
        ({"tls": {"mode": "requireTLS"}}, True),
        ({"ssl": {"mode": "requireSSL"}}, True),
    ],
)
def test_the_agent_uses_tls_only_when_the_process_requires_it(net: dict[str, Any], tls: bool) -> None:
    assert requires_tls({"net": net}) is tls


# ---------------------------------------------------------------------------------------------------------
# Server replies -> driver types


def test_a_down_members_state_comes_from_its_number_and_old_optimes_from_optime_date() -> None:
    reply = {
        "set": "rs0",
        "myState": 1,
        "term": 3,
        "members": [
            {
                "name": "a:27017",
                "stateStr": "PRIMARY",
                "health": 1,
                "self": True,
                "configVersion": 4,
                "optime": {"ts": Timestamp(100, 2), "t": 3},
            },
            {
                "name": "b:27017",
                "state": 8,
                "stateStr": "(not reachable/healthy)",
                "health": 0,
                "optimeDate": datetime(1970, 1, 1, 0, 1, 40, tzinfo=UTC),
                "syncSourceHost": "",
            },
        ],
    }
    status = parse_rs_status(reply)
    assert (status.set_name, status.my_state, status.term, status.config_version) == (
        "rs0",
        MemberState.PRIMARY,
        3,
        4,
    )
    me, down = status.members
    assert me.self and me.optime_ts == (100 << 32) | 2 and me.state is MemberState.PRIMARY
    assert down.state is MemberState.DOWN and not down.health and down.optime_ts == 100 << 32
    assert down.sync_source is None


def test_timestamps_round_trip_and_an_oplog_entry_keeps_its_fields() -> None:
    assert int_to_ts(ts_to_int(Timestamp(1_700_000_000, 7))) == Timestamp(1_700_000_000, 7)
    wall = datetime(2024, 5, 1, tzinfo=UTC)
    record = oplog_record(
        {
            "ts": Timestamp(5, 1),
            "op": "u",
            "ns": "db.c",
            "o": {"$set": {"x": 1}},
            "o2": {"_id": 1},
            "wall": wall,
        }
    )
    assert (record.ts, record.op, record.ns) == ((5 << 32) | 1, "u", "db.c")
    assert record.o == {"$set": {"x": 1}} and record.o2 == {"_id": 1}
    assert record.wall_ms == int(wall.timestamp() * 1000)

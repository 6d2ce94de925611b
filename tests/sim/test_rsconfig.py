"""Replica set config rules: defaults, one case per validation rule, and the rules of a change."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.drivers.base import CommandInvalid
from opsmgr.sim import rsconfig


def cfg(*members: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return rsconfig.normalize(
        {
            "_id": "rs",
            "members": [{"_id": i, "host": f"h{i}:27017", **m} for i, m in enumerate(members)],
            **extra,
        }
    )


def test_defaults_are_mongodbs() -> None:
    c = cfg({}, {"arbiterOnly": True})
    assert c["protocolVersion"] == 1
    assert (
        c["settings"]["electionTimeoutMillis"] == 10_000 and c["settings"]["heartbeatIntervalMillis"] == 2000
    )
    assert c["members"][0] | {} == {
        "_id": 0,
        "host": "h0:27017",
        "arbiterOnly": False,
        "buildIndexes": True,
        "hidden": False,
        "priority": 1.0,
        "tags": {},
        "secondaryDelaySecs": 0,
        "votes": 1,
    }
    assert c["members"][1]["priority"] == 0
    assert rsconfig.majority(c) == 2 and rsconfig.voting_count(c) == 2


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([{}, {"_id": 0}], "unique _id"),
        ([{}, {"host": "h0:27017"}], "unique host"),
        ([{}] * 8, "at most 7 voting members"),
        ([{"votes": 0, "priority": 0}], "at least one voting member"),
        ([{}, {"priority": 1001}], "between 0 and 1000"),
        ([{}, {"arbiterOnly": True, "priority": 1}], "arbiters must have priority 0"),
        ([{}, {"hidden": True}], "hidden members must have priority 0"),
        ([{}, {"votes": 0}], "non-voting members must have priority 0"),
        (
            [{}, {"priority": 0, "secondaryDelaySecs": 5, "hidden": False}, {"secondaryDelaySecs": 5}],
            "delayed",
        ),
        ([{"priority": 0}, {"arbiterOnly": True}], "at least one electable member"),
    ],
)
def test_each_rule(members: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(CommandInvalid, match=message) as raised:
        rsconfig.validate(cfg(*members))
    assert raised.value.code_name == "InvalidReplicaSetConfig"


@pytest.mark.parametrize(
    "bad",
    [
        {"_id": "rs", "members": []},
        {"_id": "", "members": [{"_id": 0, "host": "h:1"}]},
        {"_id": "rs", "members": [{"_id": 0, "host": "no-port"}]},
        {"_id": "rs", "members": [{"_id": 300, "host": "h:1"}]},
        {"_id": "rs", "members": [{"_id": 0, "host": "h:1", "votes": 2}]},
        {"_id": "rs", "members": [{"_id": 0, "host": "h:1", "priority": "high"}]},
    ],
)
def test_malformed_configs(bad: dict[str, Any]) -> None:
    with pytest.raises(CommandInvalid):
        rsconfig.normalize(bad)


def test_change_rules() -> None:
    old = cfg({}, {}, {})
    rsconfig.validate_change(old, cfg({}, {}, {}, {}), force=False)
    with pytest.raises(CommandInvalid, match="at most 1 voting member"):
        rsconfig.validate_change(old, cfg({}, {}, {}, {}, {}), force=False)
    rsconfig.validate_change(old, cfg({}, {}, {}, {}, {}), force=True)
    with pytest.raises(CommandInvalid, match="replica set name cannot change"):
        rsconfig.validate_change(old, rsconfig.normalize({**old, "_id": "other"}), force=True)
    moved = rsconfig.normalize({**old, "members": [{**m, "_id": m["_id"] + 10} for m in old["members"]]})
    with pytest.raises(CommandInvalid, match="cannot change its _id or arbiterOnly"):
        rsconfig.validate_change(old, moved, force=True)

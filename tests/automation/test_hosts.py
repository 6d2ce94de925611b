"""Host documents (``automation.hosts``): what a listing says of each reported process, from the goal config
and the agents' reports, and the first-seen record behind ``created``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from opsmgr.automation.hosts import first_seen, host_id, host_views
from opsmgr.automation.templates import replica_set_config
from opsmgr.store.engine import Store

G = "5f0c0ffee0000000000000aa"
HOSTS = ["h1.example.net", "h2.example.net", "10.0.0.3"]


def _config() -> dict[str, Any]:
    config = replica_set_config(HOSTS, port=27017)
    members = config["replicaSets"][0]["members"]
    members[2] |= {"hidden": True, "priority": 0, "secondaryDelaySecs": 3600}
    config["processes"][1]["args2_6"]["net"]["tls"] = {"mode": "requireTLS"}
    config["processes"][2]["args2_6"]["storage"]["journal"] = {"enabled": False}
    config["auth"] = {"disabled": False, "autoAuthMechanism": "MONGODB-CR"}
    return config


def _status(host: str, name: str, state: str | None, received: int = 1_700_000_000_123) -> dict[str, Any]:
    observed = {"running": state is not None, "replicaStateName": state, "version": "7.0.5", "port": 27017}
    return {
        "hostname": host,
        "receivedAt": received,
        "driver": "sim",
        "processes": [{"name": name, "observed": observed}],
    }


def _views(**kw: Any) -> dict[str, dict[str, Any]]:
    statuses = [
        _status("h1.example.net", "rs0_0", "PRIMARY"),
        _status("h2.example.net", "rs0_1", None),
        _status("10.0.0.3", "rs0_2", "SECONDARY"),
    ]
    views = host_views(G, _config(), statuses, created=kw.get("created", {}), cluster_ids={"rs0": "c" * 24})
    return {v["processName"]: v for v in views}


def test_ids_are_32_hex_stable_and_distinct() -> None:
    ids = {host_id(G, f"rs0_{i}") for i in range(3)}
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert host_id(G, "rs0_0") == host_id(G, "rs0_0") != host_id("another", "rs0_0")
    assert _views()["rs0_0"]["id"] == host_id(G, "rs0_0")


def test_fields_come_from_the_reports_and_the_goal_config() -> None:
    views = _views()
    primary, down, hidden = views["rs0_0"], views["rs0_1"], views["rs0_2"]
    assert primary["typeName"] == "REPLICA_PRIMARY" and primary["replicaStateName"] == "PRIMARY"
    assert primary["clusterId"] == "c" * 24 and primary["replicaSetName"] == "rs0"
    assert primary["lastPing"] == 1_700_000_000_123 and primary["created"] == primary["lastPing"]
    assert primary["authMechanismName"] == "MONGODB_CR"
    assert (primary["sslEnabled"], down["sslEnabled"]) == (False, True)
    assert (primary["journalingEnabled"], hidden["journalingEnabled"]) == (True, False)
    assert (hidden["hidden"], hidden["hiddenSecondary"], hidden["slaveDelaySec"]) == (True, True, 3600)
    assert (primary["hidden"], primary["slaveDelaySec"]) == (False, 0)
    assert down["replicaStateName"] == "DOWN" and down["typeName"] == "NO_DATA" and not down["running"]
    assert hidden["ipAddress"] == "10.0.0.3" and "ipAddress" not in primary
    assert "shardName" not in primary and "uptimeMsec" not in primary
    assert primary["hostEnabled"] and primary["alertsEnabled"] and not primary["deactivated"]


def test_sorted_by_hostname_then_port() -> None:
    statuses = [_status("b.example.net", "x", "PRIMARY"), _status("a.example.net", "y", "PRIMARY")]
    views = host_views(G, {}, statuses, created={}, cluster_ids={})
    assert [v["hostname"] for v in views] == ["a.example.net", "b.example.net"]
    assert "clusterId" not in views[0] and views[0]["authMechanismName"] == "NONE"


def test_shard_members_and_mongos_have_sharded_types() -> None:
    config = _config() | {"sharding": [{"name": "sh", "shards": [{"_id": "shard0", "rs": "rs0"}]}]}
    views = host_views(G, config, [_status("h1.example.net", "rs0_0", "PRIMARY")], created={}, cluster_ids={})
    assert views[0]["typeName"] == "SHARD_PRIMARY" and views[0]["shardName"] == "shard0"


def test_created_is_the_first_sight_and_stays(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")
    assert first_seen(store, G, {"rs0_0": 1000}) == {host_id(G, "rs0_0"): 1000}
    again = first_seen(store, G, {"rs0_0": 2000, "rs0_1": 2000})
    assert again == {host_id(G, "rs0_0"): 1000, host_id(G, "rs0_1"): 2000}
    assert first_seen(store, "other", {}) == {}
    created = {host_id(G, "rs0_0"): 42}
    assert _views(created=created)["rs0_0"]["created"] == 42

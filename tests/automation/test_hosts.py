"""Host documents (``automation.hosts``): what a listing says of each reported process, from the goal config
and the agents' reports, the first-seen record behind ``created``, and freshness (a host whose agent is
silent for 3 poll intervals, or has not reported since the server started, is unreachable)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from opsmgr.automation.hosts import Freshness, Hearing, first_seen, freshness, host_id, host_views
from opsmgr.automation.templates import replica_set_config
from opsmgr.store.engine import Store

G = "5f0c0ffee0000000000000aa"
HOSTS = ["h1.example.net", "h2.example.net", "10.0.0.3"]
RECEIVED = 1_700_000_000_123
# A listing a second after the reports, by a server polled every 10 s that started before them.
SOON = Hearing(now_ms=RECEIVED + 1000, poll_interval_s=10, since_ms=RECEIVED - 60_000)


def _config() -> dict[str, Any]:
    config = replica_set_config(HOSTS, port=27017)
    members = config["replicaSets"][0]["members"]
    members[2] |= {"hidden": True, "priority": 0, "secondaryDelaySecs": 3600}
    config["processes"][1]["args2_6"]["net"]["tls"] = {"mode": "requireTLS"}
    config["processes"][2]["args2_6"]["storage"]["journal"] = {"enabled": False}
    config["auth"] = {"disabled": False, "autoAuthMechanism": "MONGODB-CR"}
    return config


def _status(host: str, name: str, state: str | None, received: int = RECEIVED) -> dict[str, Any]:
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
    views = host_views(
        G,
        _config(),
        statuses,
        created=kw.get("created", {}),
        cluster_ids={"rs0": "c" * 24},
        heard=kw.get("heard", SOON),
    )
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
    views = host_views(G, {}, statuses, created={}, cluster_ids={}, heard=SOON)
    assert [v["hostname"] for v in views] == ["a.example.net", "b.example.net"]
    assert "clusterId" not in views[0] and views[0]["authMechanismName"] == "NONE"


def test_shard_members_and_mongos_have_sharded_types() -> None:
    config = _config() | {"sharding": [{"name": "sh", "shards": [{"_id": "shard0", "rs": "rs0"}]}]}
    statuses = [_status("h1.example.net", "rs0_0", "PRIMARY")]
    views = host_views(G, config, statuses, created={}, cluster_ids={}, heard=SOON)
    assert views[0]["typeName"] == "SHARD_PRIMARY" and views[0]["shardName"] == "shard0"


def test_created_is_the_first_sight_and_stays(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")
    assert first_seen(store, G, {"rs0_0": 1000}) == {host_id(G, "rs0_0"): 1000}
    again = first_seen(store, G, {"rs0_0": 2000, "rs0_1": 2000})
    assert again == {host_id(G, "rs0_0"): 1000, host_id(G, "rs0_1"): 2000}
    assert first_seen(store, "other", {}) == {}
    created = {host_id(G, "rs0_0"): 42}
    assert _views(created=created)["rs0_0"]["created"] == 42


def test_a_report_is_fresh_for_three_poll_intervals_and_only_since_the_start() -> None:
    assert freshness(10_000, now_ms=40_000, poll_interval_s=10) is Freshness.FRESH  # exactly 3 intervals
    assert freshness(10_000, now_ms=40_001, poll_interval_s=10) is Freshness.STALE
    assert freshness(10_000, now_ms=10_700, poll_interval_s=0.2) is Freshness.STALE
    assert freshness(10_000, now_ms=10_500, poll_interval_s=0.2) is Freshness.FRESH
    assert freshness(None, now_ms=10_000, poll_interval_s=10) is Freshness.STALE  # never heard from
    # A report restored with the application database, older than this server's start, tells nothing now.
    assert freshness(10_000, now_ms=10_001, poll_interval_s=10, since_ms=10_001) is Freshness.STALE
    assert freshness(10_001, now_ms=10_001, poll_interval_s=10, since_ms=10_001) is Freshness.FRESH
    assert freshness(12_000, now_ms=10_000, poll_interval_s=10) is Freshness.FRESH  # another server's clock


def test_fresh_hosts_say_what_their_agents_reported() -> None:
    views = _views()
    assert not any(v["stale"] for v in views.values())
    assert all("lastReportedState" not in v for v in views.values())
    assert views["rs0_0"]["running"] is True and views["rs0_0"]["replicaStateName"] == "PRIMARY"


def test_a_silent_agents_hosts_are_unreachable_with_an_honest_last_ping() -> None:
    late = Hearing(now_ms=RECEIVED + 30_001, poll_interval_s=10, since_ms=0)
    views = _views(heard=late)
    primary, hidden = views["rs0_0"], views["rs0_2"]
    assert primary["stale"] is True and primary["running"] is False
    assert primary["replicaStateName"] == "DOWN" and primary["lastPing"] == RECEIVED
    assert primary["lastReportedState"] == {
        "replicaStateName": "PRIMARY",
        "running": True,
        "typeName": "REPLICA_PRIMARY",
    }
    assert (
        hidden["hiddenSecondary"] is False and hidden["lastReportedState"]["replicaStateName"] == "SECONDARY"
    )
    # Only the silent agent's hosts: the listing judges each report on its own.
    statuses = [
        _status("h1.example.net", "rs0_0", "PRIMARY", received=RECEIVED + 30_000),
        _status("h2.example.net", "rs0_1", "SECONDARY"),
    ]
    mixed = {
        v["processName"]: v
        for v in host_views(G, _config(), statuses, created={}, cluster_ids={}, heard=late)
    }
    assert (mixed["rs0_0"]["stale"], mixed["rs0_0"]["replicaStateName"]) == (False, "PRIMARY")
    assert (mixed["rs0_1"]["stale"], mixed["rs0_1"]["replicaStateName"]) == (True, "DOWN")


def test_reports_from_before_the_servers_start_are_stale() -> None:
    restored = Hearing(now_ms=RECEIVED + 1000, poll_interval_s=10, since_ms=RECEIVED + 500)
    views = _views(heard=restored)
    assert all(v["stale"] and not v["running"] for v in views.values())
    assert views["rs0_0"]["lastReportedState"]["replicaStateName"] == "PRIMARY"

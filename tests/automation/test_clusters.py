"""The clusters of a deployment as Ops Manager lists them (``automation.clusters``) and the sharded hosts'
type names, shard names and cluster ids (``automation.hosts``), from a sharded goal config and reports."""

from __future__ import annotations

import re
from typing import Any

from opsmgr.automation.clusters import (
    Layout,
    Part,
    cluster_docs,
    last_heartbeats,
    members_of_cluster,
    sharded_cluster_id,
)
from opsmgr.automation.config import validate
from opsmgr.automation.hosts import Hearing, host_views
from opsmgr.automation.templates import replica_set_config, sharded_cluster_config

G = "5f0c0ffee0000000000000aa"
HOSTS = ["a.example.net", "b.example.net", "c.example.net"]
IDS = {"csrs": "1" * 24, "sh0": "2" * 24, "sh1": "3" * 24, "solo": "4" * 24}
AT = 1_700_000_000_000
SOON = Hearing(now_ms=AT + 1000, poll_interval_s=10, since_ms=AT - 60_000)


def _deployment() -> dict[str, Any]:
    """The sharded cluster c1 (csrs, sh0, sh1; two mongos) and a replica set ``solo`` of its own."""
    config = sharded_cluster_config(HOSTS, routers=2)
    solo = replica_set_config(HOSTS[:1], "solo", port=28000)
    config["processes"] += solo["processes"]
    config["replicaSets"] += solo["replicaSets"]
    return validate(config)


def test_the_sharded_cluster_its_shards_and_config_servers_are_listed_as_ops_manager_does() -> None:
    docs = cluster_docs(G, _deployment(), IDS)
    sharded_id = sharded_cluster_id(G, "c1")
    assert docs == [
        {"id": sharded_id, "groupId": G, "clusterName": "c1", "typeName": "SHARDED_REPLICA_SET"},
        {
            "id": IDS["csrs"],
            "groupId": G,
            "clusterName": "c1",
            "typeName": "CONFIG_SERVER_REPLICA_SET",
            "replicaSetName": "csrs",
        },
        *(
            {
                "id": IDS[rs],
                "groupId": G,
                "clusterName": "c1",
                "typeName": "REPLICA_SET",
                "replicaSetName": rs,
                "shardName": rs,
            }
            for rs in ("sh0", "sh1")
        ),
        {
            "id": IDS["solo"],
            "groupId": G,
            "clusterName": "solo",
            "typeName": "REPLICA_SET",
            "replicaSetName": "solo",
        },
    ]
    assert members_of_cluster(docs, sharded_id) == {sharded_id, IDS["csrs"], IDS["sh0"], IDS["sh1"]}
    assert members_of_cluster(docs, IDS["sh0"]) == {IDS["sh0"]}
    assert members_of_cluster(docs, "f" * 24) == {"f" * 24}


def test_a_sharded_clusters_id_is_stable_per_project_and_name() -> None:
    first = sharded_cluster_id(G, "c1")
    assert re.fullmatch(r"[0-9a-f]{24}", first)
    assert sharded_cluster_id(G, "c1") == first
    assert len({first, sharded_cluster_id(G, "c2"), sharded_cluster_id("another", "c1")}) == 3


def test_a_replica_set_without_a_cluster_id_is_left_out_and_a_partial_config_is_read() -> None:
    assert [d["clusterName"] for d in cluster_docs(G, _deployment(), {"sh0": "x"})] == ["c1", "c1"]
    partial = {
        "sharding": [{"name": "c9", "shards": [{"_id": "s", "rs": 3}, "junk"]}, "junk"],
        "processes": [7],
    }
    layout = Layout.of(partial)
    assert layout.sharded == ("c9",) and dict(layout.parts) == {} and dict(layout.mongos) == {}
    assert Layout.of({}).part("rs0") == Part() and Layout.of({}).part(None) == Part()


def _report(name: str, state: str | None, port: int, received: int = AT) -> dict[str, Any]:
    observed: dict[str, Any] = {"running": True, "version": "7.0.5", "port": port}
    if state is not None:
        observed["replicaStateName"] = state
    return {"hostname": "x", "receivedAt": received, "processes": [{"name": name, "observed": observed}]}


def test_hosts_of_a_sharded_cluster_carry_ops_managers_types_shards_and_cluster_ids() -> None:
    statuses = [
        _report("csrs_0", "PRIMARY", 27018),
        _report("csrs_1", "SECONDARY", 27018),
        _report("sh1_0", "PRIMARY", 27020),
        _report("sh1_2", "SECONDARY", 27020),
        _report("mongos_1", None, 27017, received=AT + 5),
        _report("solo_0", "PRIMARY", 28000),
    ]
    views = {
        v["processName"]: v
        for v in host_views(G, _deployment(), statuses, created={}, cluster_ids=IDS, heard=SOON)
    }
    sharded_id = sharded_cluster_id(G, "c1")
    got = {
        n: (v["typeName"], v.get("shardName"), v.get("clusterId"), v.get("replicaSetName"))
        for n, v in views.items()
    }
    assert got == {
        "csrs_0": ("SHARD_CONFIG_PRIMARY", None, IDS["csrs"], "csrs"),
        "csrs_1": ("SHARD_CONFIG_SECONDARY", None, IDS["csrs"], "csrs"),
        "sh1_0": ("SHARD_PRIMARY", "sh1", IDS["sh1"], "sh1"),
        "sh1_2": ("SHARD_SECONDARY", "sh1", IDS["sh1"], "sh1"),
        "mongos_1": ("SHARD_MONGOS", None, sharded_id, None),
        "solo_0": ("REPLICA_PRIMARY", None, IDS["solo"], "solo"),
    }
    mongos = views["mongos_1"]
    assert mongos["running"] and not mongos["journalingEnabled"]
    assert "replicaStateName" not in mongos and "replicaSetName" not in mongos, "Ops Manager leaves them out"
    assert views["solo_0"]["replicaSetName"] == "solo"
    docs = cluster_docs(G, _deployment(), IDS)
    beats = last_heartbeats(docs, views.values())
    assert beats[sharded_id] == AT + 5, "a sharded cluster was last heard of through its mongos"
    assert beats[IDS["sh1"]] == AT and IDS["sh0"] not in beats


def test_an_unlisted_mongos_reported_by_its_agent_is_still_a_mongos() -> None:
    status = _report("gone", None, 27017)
    status["processes"][0]["observed"]["mode"] = "mongos"
    (view,) = host_views(G, {}, [status], created={}, cluster_ids={}, heard=SOON)
    assert view["typeName"] == "SHARD_MONGOS" and "clusterId" not in view

"""ui.deployment_view of a sharded cluster: its config server set and shards titled as such, its routers in a
group of their own with the state their hosts report (MONGOS), never UNKNOWN."""

from __future__ import annotations

from opsmgr.automation.templates import sharded_cluster_config
from opsmgr.ui.deployment_view import NO_REPORT, deployment_view

HOSTS = ["a.shard.sim", "b.shard.sim"]


def test_a_sharded_cluster_shows_its_parts_and_its_routers() -> None:
    config = sharded_cluster_config(HOSTS, shards=2, name="c1", routers=2) | {"version": 3}
    hosts = [
        {"processName": "mongos_0", "running": True, "typeName": "SHARD_MONGOS", "lastPing": 99_000},
        {
            "processName": "csrs_0",
            "running": True,
            "typeName": "SHARD_CONFIG_PRIMARY",
            "replicaStateName": "PRIMARY",
        },
    ]
    view = deployment_view(config, {"goalVersion": 3, "processes": []}, hosts, now_ms=100_000)
    titles = [g.title for g in view.groups]
    assert titles == [
        "Config servers of c1 (replica set csrs)",
        "Shard sh0 of c1 (replica set sh0)",
        "Shard sh1 of c1 (replica set sh1)",
        "Routers (mongos) of c1",
    ]
    routers = {r.name: r.state for r in view.groups[-1].rows}
    assert routers == {"mongos_0": "MONGOS", "mongos_1": NO_REPORT}
    assert view.groups[0].rows[0].state == "PRIMARY"
    assert view.total == 2 * 3 + 2

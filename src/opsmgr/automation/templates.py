"""Ready-made automation configs in Ops Manager's shape: what the demo, the benchmarks and the tests deploy.

Pure. May import the standard library only.
"""

from __future__ import annotations

from typing import Any


def replica_set_config(
    hosts: list[str],
    rs: str = "rs0",
    version: str = "7.0.5",
    *,
    port: int = 27017,
    oplog_size_mb: int | None = None,
) -> dict[str, Any]:
    """One ``mongod`` per host, all members of replica set ``rs`` with equal priority and one vote each."""
    processes = []
    for i, host in enumerate(hosts):
        replication: dict[str, Any] = {"replSetName": rs}
        if oplog_size_mb is not None:
            replication["oplogSizeMB"] = oplog_size_mb
        processes.append(
            {
                "name": f"{rs}_{i}",
                "hostname": host,
                "processType": "mongod",
                "version": version,
                "disabled": False,
                "args2_6": {
                    "net": {"port": port},
                    "storage": {"dbPath": f"/data/{rs}_{i}"},
                    "systemLog": {"destination": "file", "path": f"/data/{rs}_{i}/mongod.log"},
                    "replication": replication,
                },
            }
        )
    members = [
        {"_id": i, "host": p["name"], "priority": 1, "votes": 1, "arbiterOnly": False, "hidden": False}
        for i, p in enumerate(processes)
    ]
    return {"processes": processes, "replicaSets": [{"_id": rs, "members": members}]}


def sharded_cluster_config(
    hosts: list[str],
    shards: int = 2,
    *,
    name: str = "c1",
    routers: int = 1,
    version: str = "7.0.5",
    port: int = 27017,
) -> dict[str, Any]:
    """A sharded cluster ``name`` over ``hosts``: the config server set ``csrs`` (port ``port + 1``) and
    shards ``sh0``, ``sh1``, ... (replica sets of the same names, ports ``port + 2``, ...), each with one
    member per host, and ``routers`` mongos ``mongos_{j}`` on the first hosts at ``port``."""
    parts = [("csrs", "configsvr")] + [(f"sh{k}", "shardsvr") for k in range(shards)]
    config: dict[str, Any] = {"processes": [], "replicaSets": []}
    for offset, (rs, role) in enumerate(parts, start=1):
        part = replica_set_config(hosts, rs, version, port=port + offset)
        for proc in part["processes"]:
            proc["args2_6"]["sharding"] = {"clusterRole": role}
        config["processes"] += part["processes"]
        config["replicaSets"] += part["replicaSets"]
    config["processes"] += [
        {
            "name": f"mongos_{j}",
            "hostname": hosts[j % len(hosts)],
            "processType": "mongos",
            "version": version,
            "disabled": False,
            "cluster": name,
            "args2_6": {
                "net": {"port": port},
                "systemLog": {"destination": "file", "path": f"/data/mongos_{j}/mongos.log"},
            },
        }
        for j in range(routers)
    ]
    shard_list = [{"_id": f"sh{k}", "rs": f"sh{k}", "tags": []} for k in range(shards)]
    config["sharding"] = [{"name": name, "configServerReplica": "csrs", "shards": shard_list}]
    return config

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

"""Automation configs that tests PUT, in Ops Manager's shape."""

from __future__ import annotations

from typing import Any


def replica_set_config(hosts: list[str], rs: str = "rs0", version: str = "7.0.5") -> dict[str, Any]:
    processes = [
        {
            "name": f"{rs}_{i}",
            "hostname": host,
            "processType": "mongod",
            "version": version,
            "disabled": False,
            "args2_6": {
                "net": {"port": 27017},
                "storage": {"dbPath": f"/data/{rs}_{i}"},
                "replication": {"replSetName": rs},
            },
        }
        for i, host in enumerate(hosts)
    ]
    members = [
        {"_id": i, "host": p["name"], "priority": 1, "votes": 1, "arbiterOnly": False, "hidden": False}
        for i, p in enumerate(processes)
    ]
    return {"processes": processes, "replicaSets": [{"_id": rs, "members": members}]}

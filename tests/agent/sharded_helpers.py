"""Builders of sharded cluster goal configs in Ops Manager's shapes, for the agent's tests: a config server
replica set ``csrs`` (members ``csrs_{i}`` on ``cfg{i}``), shards ``sh{k}`` whose replica sets ``sh{k}``
have members ``sh{k}_{i}`` on ``sh{k}-{i}``, and mongos ``mongos{j}`` on ``router{j}``. With ``host`` set,
every process lives on that one host (each with its own port)."""

from __future__ import annotations

from typing import Any

from opsmgr.automation.config import validate

CLUSTER = "cluster0"
CSRS = "csrs"
BASE_PORT = 27017


def _mongod(
    name: str, hostname: str, port: int, rs: str, role: str, version: str, dbroot: str
) -> dict[str, Any]:
    return {
        "name": name,
        "processType": "mongod",
        "hostname": hostname,
        "version": version,
        "args2_6": {
            "net": {"port": port},
            "storage": {"dbPath": f"{dbroot}/{name}"},
            "replication": {"replSetName": rs},
            "sharding": {"clusterRole": role},
        },
    }


def mongos(
    j: int, *, hostname: str | None = None, port: int = BASE_PORT, version: str = "7.0.5"
) -> dict[str, Any]:
    return {
        "name": f"mongos{j}",
        "processType": "mongos",
        "hostname": hostname or f"router{j}",
        "version": version,
        "cluster": CLUSTER,
        "args2_6": {
            "net": {"port": port},
            "systemLog": {"destination": "file", "path": f"/log/mongos{j}.log"},
        },
    }


def sharded_config(
    shards: int = 2,
    *,
    routers: int = 1,
    members: int = 3,
    draining: tuple[str, ...] = (),
    collections: list[dict[str, Any]] | None = None,
    host: str | None = None,
    version: str = "7.0.5",
    dbroot: str = "/data",
    first_port: int = BASE_PORT,
    config_version: int = 1,
) -> dict[str, Any]:
    """A validated config of one sharded cluster ``cluster0``."""
    ports = iter(range(first_port, first_port + 1000))
    procs: list[dict[str, Any]] = []
    sets: list[dict[str, Any]] = []

    def replica_set(rs: str, role: str, hostname: Any) -> None:
        names = [f"{rs}_{i}" for i in range(members)]
        for i, name in enumerate(names):
            port = next(ports) if host else BASE_PORT
            procs.append(_mongod(name, host or hostname(i), port, rs, role, version, dbroot))
        sets.append({"_id": rs, "members": [{"_id": i, "host": n} for i, n in enumerate(names)]})

    replica_set(CSRS, "configsvr", lambda i: f"cfg{i}")
    for k in range(shards):
        replica_set(f"sh{k}", "shardsvr", lambda i, k=k: f"sh{k}-{i}")
    for j in range(routers):
        procs.append(mongos(j, hostname=host, port=next(ports) if host else BASE_PORT, version=version))
    cluster: dict[str, Any] = {
        "name": CLUSTER,
        "configServerReplica": CSRS,
        "shards": [{"_id": f"sh{k}", "rs": f"sh{k}", "tags": []} for k in range(shards)],
        "collections": collections if collections is not None else [],
        "draining": list(draining),
    }
    config = validate({"processes": procs, "replicaSets": sets, "sharding": [cluster]})
    config["version"] = config_version
    return config

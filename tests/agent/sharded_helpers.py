"""Builders of sharded cluster goal configs in Ops Manager's shapes, for the agent's tests: a config server
replica set ``csrs`` (members ``csrs_{i}`` on ``cfg{i}``), shards ``sh{k}`` whose replica sets ``sh{k}``
have members ``sh{k}_{i}`` on ``sh{k}-{i}``, and mongos ``mongos{j}`` on ``router{j}``, each on port 27017.
With ``hosts`` given, member ``i`` of every set and mongos ``j`` live on ``hosts[i % len(hosts)]`` and
``hosts[j % len(hosts)]``, each process with a port of its own (member ``i`` of the ``s``-th set on
``27017 + 10 * s + i``, mongos ``j`` on ``28017 + j``)."""

from __future__ import annotations

from typing import Any

from opsmgr.automation.config import validate

CLUSTER = "cluster0"
CSRS = "csrs"
BASE_PORT = 27017


def member_process(
    name: str, hostname: str, port: int, rs: str, role: str, version: str, dbroot: str = "/data"
) -> dict[str, Any]:
    """The mongod ``name`` of replica set ``rs`` in the cluster as ``role`` (``configsvr``, ``shardsvr``)."""
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
    hosts: list[str] | None = None,
    version: str = "7.0.5",
    dbroot: str = "/data",
    config_version: int = 1,
) -> dict[str, Any]:
    """A validated config of one sharded cluster ``cluster0``."""
    procs: list[dict[str, Any]] = []
    sets: list[dict[str, Any]] = []
    for s, (rs, role) in enumerate([(CSRS, "configsvr"), *((f"sh{k}", "shardsvr") for k in range(shards))]):
        names = [f"{rs}_{i}" for i in range(members)]
        for i, name in enumerate(names):
            where = (
                (hosts[i % len(hosts)], BASE_PORT + 10 * s + i)
                if hosts
                else (_default_host(rs, i), BASE_PORT)
            )
            procs.append(member_process(name, *where, rs, role, version, dbroot))
        sets.append({"_id": rs, "members": [{"_id": i, "host": n} for i, n in enumerate(names)]})
    for j in range(routers):
        where = (hosts[j % len(hosts)], BASE_PORT + 1000 + j) if hosts else (f"router{j}", BASE_PORT)
        procs.append(mongos(j, hostname=where[0], port=where[1], version=version))
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


def _default_host(rs: str, i: int) -> str:
    return f"cfg{i}" if rs == CSRS else f"{rs}-{i}"

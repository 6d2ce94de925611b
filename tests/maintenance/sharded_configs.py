"""Automation configs of a sharded cluster for the maintenance tests (no I/O): cluster ``sh0`` with the
config server replica set ``cfg``, shards ``shA``, ``shB``, ``shC`` (three members each, every process on
its own host ``<name>.example.net``) and the mongos ``mongos0``, ``mongos1``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.agent.sharded_helpers import member_process

CLUSTER = "sh0"
CONFIG_RS = "cfg"
SHARDS = ("shA", "shB", "shC")
MONGOS = ("mongos0", "mongos1")


def host(name: str) -> str:
    return f"{name.replace('_', '-').lower()}.example.net"


def sharded_config(
    *, version: str = "7.0.5", shards: tuple[str, ...] = SHARDS, members: int = 3
) -> dict[str, Any]:
    """The cluster as a raw automation config (every member priority 1, one vote)."""
    sets = [(CONFIG_RS, "configsvr"), *((s, "shardsvr") for s in shards)]
    processes: list[dict[str, Any]] = []
    replica_sets = []
    for rs, role in sets:
        names = [f"{rs}_{i}" for i in range(members)]
        processes += [member_process(n, host(n), 27017, rs, role, version) for n in names]
        replica_sets.append({"_id": rs, "members": [{"_id": i, "host": n} for i, n in enumerate(names)]})
    config_db = f"{CONFIG_RS}/" + ",".join(f"{host(f'{CONFIG_RS}_{i}')}:27017" for i in range(members))
    processes += [
        {
            "name": m,
            "hostname": host(m),
            "processType": "mongos",
            "version": version,
            "cluster": CLUSTER,
            "args2_6": {"net": {"port": 27017}, "sharding": {"configDB": config_db}},
        }
        for m in MONGOS
    ]
    sharding = {
        "name": CLUSTER,
        "configServerReplica": CONFIG_RS,
        "shards": [{"_id": s, "rs": s, "tags": []} for s in shards],
        "collections": [],
    }
    return {"processes": processes, "replicaSets": replica_sets, "sharding": [sharding]}


def edited(base: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    edit(out)
    return out


def set_version(
    version: str, *, where: Callable[[dict[str, Any]], bool] = lambda p: True
) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        for p in c["processes"]:
            if where(p):
                p["version"] = version

    return edit

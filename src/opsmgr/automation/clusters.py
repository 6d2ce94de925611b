"""The clusters of a project's deployment as Ops Manager lists them (``GET /groups/{id}/clusters``), and the
part each process plays in them, read from the goal config.

Ops Manager models a sharded cluster as a cluster of clusters: the sharded cluster itself
(``typeName: SHARDED_REPLICA_SET``, ``clusterName`` its ``sharding[].name``), each shard's replica set
(``REPLICA_SET`` with ``shardName`` the shard's ``_id``) and its config server replica set
(``CONFIG_SERVER_REPLICA_SET``); a replica set that is a part carries its sharded cluster's name as its
``clusterName``, and ``replicaSetName`` is given for the replica-set kinds only. A replica set of its own
is a ``REPLICA_SET`` named after itself. Hosts follow: a shard member is ``SHARD_PRIMARY`` /
``SHARD_SECONDARY`` with its ``shardName``, a config server ``SHARD_CONFIG_PRIMARY`` /
``SHARD_CONFIG_SECONDARY``, a mongos ``SHARD_MONGOS``; each host's ``clusterId`` is that of the cluster it
is a member of (its replica set's, or for a mongos its sharded cluster's).

A replica set's cluster id is kept by the backup's clusters (created on first sight, so that a replica set
turned into a shard keeps its id); a sharded cluster's is derived from the project and its name
(:func:`sharded_cluster_id`), 24 hex digits like Ops Manager's cluster ids, so it needs no record and stays
the same for as long as the cluster keeps its name.

Pure functions over plain JSON values, tolerant of a partial config (what a listing reads was validated
when it was put). May import the standard library only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ClusterType(StrEnum):
    REPLICA_SET = "REPLICA_SET"
    SHARDED_REPLICA_SET = "SHARDED_REPLICA_SET"
    CONFIG_SERVER_REPLICA_SET = "CONFIG_SERVER_REPLICA_SET"


def sharded_cluster_id(group_id: str, name: str) -> str:
    """The cluster id of the project's sharded cluster ``name``: stable, 24 hex digits."""
    digest = hashlib.sha256(f"{group_id}:sharded:{name}".encode()).hexdigest()
    return digest[:24]


@dataclass(frozen=True)
class Part:
    """What a replica set is in the deployment: a replica set of its own (``cluster`` None), a shard of
    ``cluster`` (``shard`` its id) or its config server set."""

    cluster: str | None = None
    shard: str | None = None
    config_server: bool = False


@dataclass(frozen=True)
class Layout:
    """The sharded clusters of a config: their names in order, the part of each replica set that serves one,
    and the cluster of each mongos (by process name)."""

    sharded: tuple[str, ...]
    parts: Mapping[str, Part]
    mongos: Mapping[str, str]

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Layout:
        names: list[str] = []
        parts: dict[str, Part] = {}
        for cluster in _dicts(config.get("sharding")):
            name = cluster.get("name")
            if not isinstance(name, str):
                continue
            names.append(name)
            csrs = cluster.get("configServerReplica")
            if isinstance(csrs, str):
                parts[csrs] = Part(name, config_server=True)
            for shard in _dicts(cluster.get("shards")):
                if isinstance(shard.get("rs"), str) and isinstance(shard.get("_id"), str):
                    parts[shard["rs"]] = Part(name, shard=shard["_id"])
        mongos = {
            str(p["name"]): p["cluster"]
            for p in _dicts(config.get("processes"))
            if p.get("processType") == "mongos" and isinstance(p.get("cluster"), str) and "name" in p
        }
        return cls(tuple(names), parts, mongos)

    def part(self, rs_id: str | None) -> Part:
        return self.parts.get(rs_id, Part()) if rs_id else Part()


def _dicts(items: Any) -> Iterable[Mapping[str, Any]]:
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def replica_set_ids(config: Mapping[str, Any]) -> list[str]:
    """The ids of the config's replica sets, in order."""
    return [str(rs["_id"]) for rs in _dicts(config.get("replicaSets")) if isinstance(rs.get("_id"), str)]


def cluster_docs(
    group_id: str, config: Mapping[str, Any], replica_set_cluster_ids: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The project's clusters in Ops Manager's shape (without ``links`` and ``lastHeartbeat``): each sharded
    cluster, then each replica set in the config's order with the part it plays. ``replica_set_cluster_ids``:
    each replica set's cluster id; one without is left out."""
    layout = Layout.of(config)
    docs = [
        {
            "id": sharded_cluster_id(group_id, name),
            "groupId": group_id,
            "clusterName": name,
            "typeName": ClusterType.SHARDED_REPLICA_SET.value,
        }
        for name in layout.sharded
    ]
    for rs_id in replica_set_ids(config):
        if rs_id not in replica_set_cluster_ids:
            continue
        part = layout.part(rs_id)
        kind = ClusterType.CONFIG_SERVER_REPLICA_SET if part.config_server else ClusterType.REPLICA_SET
        doc = {
            "id": replica_set_cluster_ids[rs_id],
            "groupId": group_id,
            "clusterName": part.cluster or rs_id,
            "typeName": kind.value,
            "replicaSetName": rs_id,
        }
        if part.shard is not None:
            doc["shardName"] = part.shard
        docs.append(doc)
    return docs


def process_names(config: Mapping[str, Any], view: Mapping[str, Any]) -> list[str]:
    """The processes of a cluster of :func:`cluster_docs`: a replica set's members; a sharded cluster's
    config servers, shards' members and mongos."""
    layout = Layout.of(config)
    members = {
        str(rs.get("_id")): [str(m["host"]) for m in _dicts(rs.get("members")) if "host" in m]
        for rs in _dicts(config.get("replicaSets"))
    }
    if view["typeName"] != ClusterType.SHARDED_REPLICA_SET:
        return members.get(str(view.get("replicaSetName")), [])
    name = view["clusterName"]
    parts = [rs for rs, part in layout.parts.items() if part.cluster == name]
    routers = [router for router, cluster in layout.mongos.items() if cluster == name]
    return [host for rs in parts for host in members.get(rs, [])] + routers


def members_of_cluster(docs: list[dict[str, Any]], cluster_id: str) -> set[str]:
    """The cluster ids whose hosts are hosts of cluster ``cluster_id``: itself, and for a sharded cluster
    its shards' and config server's replica sets too."""
    found = next((d for d in docs if d["id"] == cluster_id), None)
    if found is None or found["typeName"] != ClusterType.SHARDED_REPLICA_SET:
        return {cluster_id}
    parts = {
        d["id"]
        for d in docs
        if d["clusterName"] == found["clusterName"]
        and ("shardName" in d or d["typeName"] == ClusterType.CONFIG_SERVER_REPLICA_SET)
    }
    return {cluster_id} | parts


def last_heartbeats(docs: list[dict[str, Any]], hosts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Per cluster id, the latest report (epoch milliseconds) of an agent about one of its hosts; a sharded
    cluster's is the latest of its mongos and its parts'."""
    latest: dict[str, int] = {}
    for host in hosts:
        cluster_id, ping = host.get("clusterId"), host.get("lastPing")
        if isinstance(cluster_id, str) and isinstance(ping, int):
            latest[cluster_id] = max(ping, latest.get(cluster_id, ping))
    out = {}
    for doc in docs:
        pings = [latest[i] for i in members_of_cluster(docs, doc["id"]) if i in latest]
        if pings:
            out[doc["id"]] = max(pings)
    return out

"""The rules of the automation config's sharded clusters, in Ops Manager's shapes: ``sharding[]`` (``name``,
``configServerReplica``, ``shards[{_id, rs, tags}]``, ``collections[{_id, key, unique}]``, ``draining``),
the ``args2_6.sharding.clusterRole`` of the processes that serve them, and the ``mongos`` routers (``cluster``
naming a ``sharding[].name``; no storage, no replica set, no role).

What MongoDB requires of a sharded cluster is refused here rather than by a mongod later: the config server
replica set's members run ``clusterRole: configsvr`` and none is an arbiter; a shard's members run
``shardsvr``; every member of a replica set runs the same role; a replica set serves one cluster in one role;
shard ids are unique in their cluster; ``draining`` names shards of that cluster; a shard key is a list of
``[field, 1 | "hashed"]`` pairs with at most one hashed field (and a hashed key is never unique). Lists are
bounded, so that a config cannot make the agents' planners walk a million shards.

Pure functions over plain JSON values, run after the processes and replica sets are checked. May import
``opsmgr.errors`` and ``opsmgr.automation.rules``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsmgr.automation.rules import (
    KINDS,
    check_fields,
    fail,
    get,
    objects,
    one_of,
    require,
    valid_collection_name,
    valid_db_name,
)

CONFIG_SERVER_ROLE = "configsvr"
SHARD_ROLE = "shardsvr"
CLUSTER_ROLES = (CONFIG_SERVER_ROLE, SHARD_ROLE)
# MongoDB has no limit on shards; these are far above any deployment opsmgr manages and keep a hostile config
# from costing the planners (and every listing) a walk over millions of entries.
MAX_SHARDS = 256
MAX_SHARDED_COLLECTIONS = 1000
MAX_TAGS = 100
MAX_SHARD_KEY_FIELDS = 32  # MongoDB's limit on the fields of a compound index
SHARD_KEY_TYPES = (1, "hashed")

_SHARDING_FIELDS = {
    "configServerReplica": "string",
    "shards": "array",
    "managedSharding": "boolean",
    "collections": "array",
    "draining": "array",
    "tags": "array",
}
_SHARD_FIELDS = {"_id": "string", "rs": "string", "tags": "array"}
_COLLECTION_FIELDS = {"_id": "string", "key": "array", "unique": "boolean"}
# MongoDB's own databases: their collections are not sharded by a user.
_UNSHARDABLE_DBS = frozenset({"admin", "config", "local"})
# A mongos routes; these are a mongod's (its data files, its replica set, its part in a cluster).
_MONGOD_ONLY = ("storage.dbPath", "replication.replSetName", "sharding.clusterRole")


def check_cluster_roles(processes: list[dict[str, Any]], replica_sets: list[dict[str, Any]]) -> None:
    """Each process's ``args2_6.sharding.clusterRole`` is one MongoDB knows, a config server is a replica set
    member, a mongos has none of a mongod's options, and every member of a replica set runs the same role."""
    members = {m["host"] for rs in replica_sets for m in rs["members"]}
    for i, proc in enumerate(processes):
        here = f"processes[{i}].args2_6"
        check_fields(proc["args2_6"], {"sharding": "object", "sharding.clusterRole": "string"}, here)
        role = _role(proc)
        if role is not None:
            one_of(role, CLUSTER_ROLES, f"{here}.sharding.clusterRole", "cluster-role")
        if role == CONFIG_SERVER_ROLE and proc["name"] not in members:
            fail(
                f"{here}.sharding.clusterRole",
                "config-server-replset",
                f"process {proc['name']!r} runs clusterRole configsvr: config servers run as a replica set, "
                "so it must be a member of one in replicaSets[]",
            )
        if proc["processType"] == "mongos":
            _check_mongos_options(proc, here)
    at = {p["name"]: i for i, p in enumerate(processes)}
    for rs in replica_sets:
        roles = {m["host"]: _role(processes[at[m["host"]]]) for m in rs["members"]}
        # The member whose role differs from most members' is the one named.
        usual = Counter(roles.values()).most_common(1)[0][0] if roles else None
        odd = next((host for host, role in roles.items() if role != usual), None)
        if odd is not None:
            fail(
                f"processes[{at[odd]}].args2_6.sharding.clusterRole",
                "replset-cluster-role",
                f"every member of replica set {rs['_id']!r} must run the same sharding.clusterRole: "
                f"{odd!r} runs {roles[odd]!r}, the others {usual!r}",
            )


def _check_mongos_options(proc: Mapping[str, Any], here: str) -> None:
    for dotted in _MONGOD_ONLY:
        if get(proc["args2_6"], dotted) is not None:
            fail(
                f"{here}.{dotted}",
                "mongos-options",
                f"process {proc['name']!r} is a mongos: it routes and keeps no data, so it takes no "
                f"{dotted} (a mongod's option)",
            )


def _role(proc: Mapping[str, Any]) -> str | None:
    role = get(proc["args2_6"], "sharding.clusterRole")
    return role if isinstance(role, str) else None


@dataclass
class _Deployment:
    """The checked processes and replica sets a cluster's parts are looked up in, with their positions (for
    the JSON paths), and what each replica set already serves as (``"config server of 'c1'"``)."""

    processes: Mapping[str, dict[str, Any]]
    replica_sets: list[dict[str, Any]]

    def __post_init__(self) -> None:
        self.serving: dict[str, str] = {}
        self.sets = {rs["_id"]: rs for rs in self.replica_sets}
        self.set_at = {rs["_id"]: i for i, rs in enumerate(self.replica_sets)}
        self.process_at = {name: i for i, name in enumerate(self.processes)}

    def take(self, field: str, rs_id: str, what: str, role: str) -> None:
        """``rs_id`` names a replica set that serves nothing yet and whose members run ``role``; it now
        serves as ``what``."""
        if rs_id not in self.sets:
            fail(field, "sharding-replset", f"{field} names {rs_id!r}, which is not in replicaSets[]")
        if rs_id in self.serving:
            fail(
                field,
                "sharding-replset-once",
                f"replica set {rs_id!r} is already the {self.serving[rs_id]}: a replica set is one part of "
                "one sharded cluster",
            )
        self.serving[rs_id] = what
        rs = self.sets[rs_id]
        for j, member in enumerate(rs["members"]):
            proc = self.processes[member["host"]]
            if _role(proc) != role:
                fail(
                    f"processes[{self.process_at[proc['name']]}].args2_6.sharding.clusterRole",
                    "sharding-cluster-role",
                    f"process {proc['name']!r} is a member of {rs_id!r}, the {what}: it must run "
                    f"args2_6.sharding.clusterRole {role!r}",
                )
            if role == CONFIG_SERVER_ROLE and member["arbiterOnly"]:
                fail(
                    f"replicaSets[{self.set_at[rs_id]}].members[{j}].arbiterOnly",
                    "config-server-arbiter",
                    f"config server replica set {rs_id!r} cannot have an arbiter",
                )


def check_sharding(
    sharding: list[Any], replica_sets: list[dict[str, Any]], processes: Mapping[str, dict[str, Any]]
) -> set[str]:
    """Check every sharded cluster; return their names."""
    names: set[str] = set()
    deployment = _Deployment(processes, replica_sets)
    for here, cluster in objects(sharding, "sharding"):
        require(cluster, "name", here)
        name = cluster["name"]
        if not isinstance(name, str) or not name or name in names:
            fail(
                f"{here}.name", "sharding-name-unique", "each sharded cluster needs a distinct non-empty name"
            )
        names.add(name)
        check_fields(cluster, _SHARDING_FIELDS, here)
        if "configServerReplica" not in cluster:
            fail(
                f"{here}.configServerReplica",
                "sharding-config-server",
                f"sharded cluster {name!r} needs configServerReplica: the replica set (in replicaSets[]) of "
                "its config servers, whose members run args2_6.sharding.clusterRole configsvr",
            )
        csrs = cluster["configServerReplica"]
        deployment.take(f"{here}.configServerReplica", csrs, f"config server of {name!r}", CONFIG_SERVER_ROLE)
        shard_ids = _check_shards(cluster, here, deployment)
        _check_draining(cluster, here, shard_ids)
        _check_collections(cluster.get("collections", []), f"{here}.collections")
        _check_strings(cluster.get("tags", []), f"{here}.tags")
    return names


def _check_shards(cluster: Mapping[str, Any], here: str, deployment: _Deployment) -> set[str]:
    shards = cluster.get("shards", [])
    if len(shards) > MAX_SHARDS:
        fail(f"{here}.shards", "max-shards", f"a sharded cluster has at most {MAX_SHARDS} shards")
    ids: set[str] = set()
    for at, shard in objects(shards, f"{here}.shards"):
        require(shard, "_id", at)
        require(shard, "rs", at)
        check_fields(shard, _SHARD_FIELDS, at)
        shard_id = shard["_id"]
        if not shard_id or shard_id in ids:
            fail(f"{at}._id", "shard-id-unique", f"each shard of {cluster['name']!r} needs a distinct _id")
        ids.add(shard_id)
        deployment.take(f"{at}.rs", shard["rs"], f"shard {shard_id!r} of {cluster['name']!r}", SHARD_ROLE)
        _check_strings(shard.get("tags", []), f"{at}.tags")
    return ids


def _check_draining(cluster: Mapping[str, Any], here: str, shard_ids: set[str]) -> None:
    draining = cluster.get("draining", [])
    if len(draining) > len(shard_ids):
        fail(f"{here}.draining", "sharding-draining", f"{here}.draining lists more shards than there are")
    seen: set[str] = set()
    for i, shard_id in enumerate(draining):
        field = f"{here}.draining[{i}]"
        if not isinstance(shard_id, str) or shard_id not in shard_ids or shard_id in seen:
            fail(
                field,
                "sharding-draining",
                f"{field} must name a shard of {cluster['name']!r} (a shards[]._id) not already draining, "
                f"not {json.dumps(shard_id)[:100]}",
            )
        seen.add(shard_id)


def _check_collections(collections: list[Any], path: str) -> None:
    if len(collections) > MAX_SHARDED_COLLECTIONS:
        fail(path, "max-sharded-collections", f"at most {MAX_SHARDED_COLLECTIONS} sharded collections")
    seen: set[str] = set()
    for at, coll in objects(collections, path):
        for key in ("_id", "key"):
            require(coll, key, at)
        check_fields(coll, _COLLECTION_FIELDS, at)
        ns = coll["_id"]
        db, _, name = ns.partition(".")
        if not (valid_db_name(db) and valid_collection_name(name)) or db in _UNSHARDABLE_DBS:
            fail(
                f"{at}._id",
                "sharded-collection-ns",
                f"{at}._id must be a namespace <database>.<collection> outside admin, config and local, "
                f"not {json.dumps(ns)[:100]}",
            )
        if ns in seen:
            fail(f"{at}._id", "sharded-collection-unique", f"collection {ns!r} is listed twice")
        seen.add(ns)
        _check_shard_key(coll["key"], f"{at}.key")
        if coll.get("unique") and any(pair[1] == "hashed" for pair in coll["key"]):
            fail(f"{at}.unique", "shard-key-unique-hashed", "a hashed shard key cannot be unique")


def _check_shard_key(key: list[Any], field: str) -> None:
    if not key or len(key) > MAX_SHARD_KEY_FIELDS:
        fail(field, "shard-key", f'{field} must list 1 to {MAX_SHARD_KEY_FIELDS} [field, 1 | "hashed"] pairs')
    names: set[str] = set()
    for i, pair in enumerate(key):
        ok = isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
        ok = ok and 0 < len(pair[0]) <= 1024 and not pair[0].startswith("$") and pair[0] not in names
        value = pair[1] if ok else None
        if not ok or not (value == "hashed" or (KINDS["integer"](value) and value == 1)):
            fail(
                f"{field}[{i}]",
                "shard-key",
                f'{field}[{i}] must be a [field, 1 | "hashed"] pair with a field not already in the key',
            )
        names.add(pair[0])
    if sum(1 for pair in key if pair[1] == "hashed") > 1:
        fail(field, "shard-key", f"{field} may have one hashed field at most")


def _check_strings(items: list[Any], path: str) -> None:
    if len(items) > MAX_TAGS:
        fail(path, "max-tags", f"{path} has at most {MAX_TAGS} entries")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not 0 < len(item) <= 256:
            fail(f"{path}[{i}]", "sharding-tag", f"{path}[{i}] must be a non-empty string")


def check_mongos_clusters(processes: list[dict[str, Any]], clusters: set[str]) -> None:
    for i, proc in enumerate(processes):
        if proc["processType"] == "mongos" and proc.get("cluster") not in clusters:
            fail(
                f"processes[{i}].cluster",
                "mongos-cluster",
                "a mongos must name its sharded cluster (a sharding[].name) in cluster",
            )

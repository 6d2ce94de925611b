"""The automation config: a project's goal deployment, as the JSON document Ops Manager uses.

Owns the document's empty form (:func:`empty_config`), the rules a ``PUT /groups/{id}/automationConfig``
body must satisfy (:func:`validate`; every rule has a stable id that the 400 names, with the JSON path of the
offending field), content equality that decides whether ``version`` moves (:func:`same_content`), where
secrets live and how they are transformed, redacted and restored (:data:`SECRET_PATHS`,
:func:`map_secrets`, :func:`redact`, :func:`fill_redacted`), and a few read accessors for the agent and
maintenance. Pure functions over plain JSON values that never mutate their arguments. May import
``opsmgr.errors`` only.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from opsmgr.errors import InvalidInput

Config = dict[str, Any]

DEFAULT_PORT = 27017
MAX_MEMBERS = 50
MAX_VOTING_MEMBERS = 7
MAX_PRIORITY = 1000
MAX_MEMBER_ID = 255
# Oplog sizes are bounded by what mongod accepts at most (1 PB); the lower bound is left to mongod so that
# simulated deployments can use small oplogs to exercise the oplog-window preflight.
MAX_OPLOG_SIZE_MB = 1024 * 1024 * 1024

PROCESS_TYPES = ("mongod", "mongos")
TLS_MODES = ("disabled", "allowTLS", "preferTLS", "requireTLS")
SSL_MODES = ("disabled", "allowSSL", "preferSSL", "requireSSL")
CLIENT_CERTIFICATE_MODES = ("OPTIONAL", "REQUIRE")
CLUSTER_AUTH_MODES = ("keyFile", "sendKeyFile", "sendX509", "x509")
AUTH_MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256", "MONGODB-CR", "MONGODB-X509", "PLAIN", "GSSAPI")
PASSWORD_MECHANISMS = frozenset({"SCRAM-SHA-1", "SCRAM-SHA-256", "MONGODB-CR"})
PROFILER_MODES = ("off", "slowOp", "all")
INDEX_KEY_TYPES = ("text", "2d", "2dsphere", "hashed", "geoHaystack")

# Fields the server assigns; they never make two configs different.
SERVER_MANAGED_FIELDS = frozenset({"version"})

# What the agent writes in place of each secret when it uploads its config during Restoration Mode.
REDACTED = "**REDACTED**"

UNIQUE_INDEX_BUILDS_API = "POST /api/public/v1.0/groups/{groupId}/uniqueIndexBuilds"
UNIQUE_INDEX_BUILD_CLI = "opsmgr index build-unique"
UNIQUE_INDEX_PROCEDURE = (
    "a unique index cannot be built in the rolling way while writes continue, because each member builds "
    "it independently and a write accepted meanwhile can break uniqueness; stop writes to the collection and "
    f"use the supervised unique index build instead ({UNIQUE_INDEX_BUILDS_API}, or "
    f"{UNIQUE_INDEX_BUILD_CLI}): it has you confirm writes are stopped, builds the index member by member, "
    "watches the oplog for any write to the collection and undoes the build if one appears, then adds the "
    "entry to indexConfigs"
)

# Sensitive string fields, as dotted paths. ``name[f1,f2]`` steps into each element of the list ``name``;
# the bracketed fields identify an element, so a secret is matched to its counterpart in another copy of the
# config even when the lists are in a different order.
SECRET_PATHS: tuple[str, ...] = (
    "auth.key",
    "auth.autoPwd",
    "auth.usersWanted[db,user].initPwd",
    "auth.usersWanted[db,user].pwd",
    "auth.usersWanted[db,user].scramSha1Creds.storedKey",
    "auth.usersWanted[db,user].scramSha1Creds.serverKey",
    "auth.usersWanted[db,user].scramSha256Creds.storedKey",
    "auth.usersWanted[db,user].scramSha256Creds.serverKey",
    "ldap.bindQueryPassword",
    "tls.autoPEMKeyFilePwd",
    "ssl.autoPEMKeyFilePwd",
    # The restore delivery URL carries the token that authorises downloading the snapshot.
    "processes[name].backupRestoreUrl",
    "processes[name].args2_6.net.tls.certificateKeyFilePassword",
    "processes[name].args2_6.net.tls.clusterPassword",
    "processes[name].args2_6.net.ssl.PEMKeyPassword",
    "processes[name].args2_6.net.ssl.clusterPassword",
    "processes[name].args2_6.security.kmip.clientCertificatePassword",
    "processes[name].args2_6.security.ldap.bind.queryPassword",
)


def empty_config() -> Config:
    """A new project's config: nothing deployed, authentication disabled."""
    return {
        "version": 0,
        "options": {
            "downloadBase": "/var/lib/mongodb-mms-automation",
            "downloadBaseWindows": "%SystemDrive%\\MMSAutomation\\versions",
        },
        "mongoDbVersions": [],
        "backupVersions": [],
        "monitoringVersions": [],
        "processes": [],
        "replicaSets": [],
        "sharding": [],
        "auth": {
            "disabled": True,
            "authoritativeSet": False,
            "autoAuthMechanisms": [],
            "deploymentAuthMechanisms": [],
            "usersWanted": [],
            "usersDeleted": [],
        },
        "tls": {"clientCertificateMode": "OPTIONAL"},
        "roles": [],
        "indexConfigs": [],
        "kerberos": {"serviceName": "mongodb"},
        "ldap": {},
        "balancer": {},
    }


# --- validation --------------------------------------------------------------------------------------------

# Known fields whose type is checked and that have no rule of their own (dotted paths below the object).
_TOP_FIELDS = {
    "processes": "array",
    "replicaSets": "array",
    "sharding": "array",
    "indexConfigs": "array",
    "auth": "object",
    "tls": "object",
    "ssl": "object",
    "ldap": "object",
    "kerberos": "object",
    "options": "object",
    "balancer": "object",
    "agentVersion": "object",
    "clusterWideConfigurations": "object",
    "mongoDbVersions": "array",
    "backupVersions": "array",
    "monitoringVersions": "array",
    "roles": "array",
    "options.downloadBase": "string",
    "auth.disabled": "boolean",
    "auth.authoritativeSet": "boolean",
    "auth.autoUser": "string",
    "auth.autoAuthMechanisms": "array",
    "auth.deploymentAuthMechanisms": "array",
    "auth.usersWanted": "array",
    "auth.usersDeleted": "array",
    "tls.CAFilePath": "string",
    "tls.autoPEMKeyFilePath": "string",
    "ssl.CAFilePath": "string",
    "ssl.autoPEMKeyFilePath": "string",
    "ldap.servers": "string",
    "ldap.bindQueryUser": "string",
}
_PROCESS_FIELDS = {
    "args2_6": "object",
    "disabled": "boolean",
    "manualMode": "boolean",
    "cluster": "string",
    "alias": "string",
    "numCores": "integer",
    "logRotate": "object",
    "args2_6.net.bindIp": "string",
    "args2_6.net.tls.certificateKeyFile": "string",
    "args2_6.net.tls.CAFile": "string",
    "args2_6.net.ssl.PEMKeyFile": "string",
    "args2_6.net.ssl.CAFile": "string",
    "args2_6.replication.replSetName": "string",
    "args2_6.storage.dbPath": "string",
    "args2_6.storage.engine": "string",
    "args2_6.security": "object",
    "args2_6.systemLog.path": "string",
    "args2_6.systemLog.destination": "string",
    "args2_6.operationProfiling.slowOpThresholdMs": "integer",
    "args2_6.setParameter": "object",
}
_PROCESS_TIMESTAMPS = ("lastRestart", "lastKmipMasterKeyRotation", "lastCompact", "lastResync")
_REPLICA_SET_FIELDS = {"members": "array", "settings": "object", "force": "object"}
_MEMBER_FIELDS = {
    "host": "string",
    "arbiterOnly": "boolean",
    "hidden": "boolean",
    "buildIndexes": "boolean",
    "tags": "object",
}
_MEMBER_DELAYS = ("secondaryDelaySecs", "slaveDelay")
_INDEX_FIELDS = {
    "rsName": "string",
    "options": "object",
    "options.unique": "boolean",
    "collation": "object",
    "collation.locale": "string",
}
_SHARDING_FIELDS = {"configServerReplica": "string", "shards": "array", "managedSharding": "boolean"}
_SHARD_FIELDS = {"_id": "string", "rs": "string"}
_USER_FIELDS = {"user": "string", "db": "string", "roles": "array"}

_KINDS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
_ARTICLES = {
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "object": "an object",
    "array": "an array",
}

_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_MONGODB_VERSION = re.compile(r"\d+\.\d+\.\d+(?:-rc\d+)?(?:-ent)?")
_FCV = re.compile(r"\d+\.\d+")
_KEYFILE_CHARS = re.compile(r"[A-Za-z0-9+/=]*")
_WINDOWS_ABSOLUTE = re.compile(r"[A-Za-z]:[\\/]")
_DB_NAME_FORBIDDEN = set('/\\. "$*<>:|?\0')


def validate(
    config: Any,
    *,
    current: Mapping[str, Any] | None = None,
    allow_unique_indexes: bool = False,
) -> Config:
    """Check a PUT body for ``/groups/{id}/automationConfig`` and return it normalised.

    Normalising fills what Ops Manager fills: missing top-level sections from :func:`empty_config`, each
    process's ``disabled`` and ``args2_6.net.port``, and each member's ``votes``, ``arbiterOnly``, ``hidden``
    and ``priority`` (1 when the member can be electable, else 0). Unknown fields are kept as they are.

    ``current`` is the config being replaced: unique indexes it already has pass, so that a GET-modify-PUT
    round trip keeps working after a supervised unique index build. ``allow_unique_indexes`` is for callers
    that are not a user's rolling change (that procedure itself, Restoration Mode adopting an agent's
    config). Raises :class:`InvalidInput` naming the first broken rule and the field's JSON path.
    """
    if not isinstance(config, dict):
        _fail("$", "config-object", f"the automation config must be a JSON object, not {_json_type(config)}")
    out = copy.deepcopy(config)
    if "version" in out and not (_KINDS["integer"](out["version"]) and out["version"] >= 0):
        _fail("version", "config-version", "version must be a non-negative integer; the server assigns it")
    _check_fields(out, _TOP_FIELDS, "")
    for key, value in empty_config().items():
        if key not in SERVER_MANAGED_FIELDS:
            out.setdefault(key, value)
    processes = _check_processes(out["processes"])
    set_of = _check_replica_sets(out["replicaSets"], processes)
    _check_repl_set_names(out["processes"], set_of)
    rs_ids = {rs["_id"] for rs in out["replicaSets"]}
    clusters = _check_sharding(out["sharding"], rs_ids)
    _check_mongos_clusters(out["processes"], clusters)
    existing = current.get("indexConfigs") if current is not None else None
    _check_index_configs(out["indexConfigs"], rs_ids, existing, allow_unique_indexes)
    _check_auth(out["auth"])
    _check_tls(out)
    _check_secrets(out)
    return out


def _fail(field: str, rule: str, detail: str) -> NoReturn:
    raise InvalidInput(detail, field=field, rule=rule)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind in ("boolean", "integer", "number", "string", "array", "object"):
        if _KINDS[kind](value):
            return kind
    return type(value).__name__


def _get(obj: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` below ``obj``, or None when any step is missing or not an object."""
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _check_fields(obj: dict[str, Any], fields: Mapping[str, str], path: str) -> None:
    for dotted, kind in fields.items():
        node: Any = obj
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            if part not in node:
                break
            node = node[part]
            here = _join(path, ".".join(parts[: depth + 1]))
            expected = kind if depth == len(parts) - 1 else "object"
            if not _KINDS[expected](node):
                _fail(here, "type", f"{here} must be {_ARTICLES[expected]}, not {_json_type(node)}")


def _require(obj: dict[str, Any], key: str, path: str) -> None:
    if key not in obj:
        _fail(_join(path, key), "required", f"{_join(path, key)} is required")


def _objects(items: list[Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each element with its JSON path, after checking that it is an object."""
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        if not isinstance(item, dict):
            _fail(here, "type", f"{here} must be an object, not {_json_type(item)}")
        yield here, item


def _one_of(value: Any, allowed: tuple[str, ...], field: str, rule: str) -> None:
    if not isinstance(value, str) or value not in allowed:
        _fail(field, rule, f"{field} must be one of {', '.join(allowed)}, not {json.dumps(value)}")


def valid_hostname(hostname: Any) -> bool:
    """An RFC 1123 host name or an IP address: no scheme, no port, no path."""
    if not isinstance(hostname, str) or not hostname:
        return False
    if ":" in hostname:
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            return False
        return True
    return len(hostname) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in hostname.split("."))


def _check_processes(processes: list[Any]) -> dict[str, dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for here, proc in _objects(processes, "processes"):
        for key in ("name", "processType", "hostname", "version", "args2_6"):
            _require(proc, key, here)
        name = proc["name"]
        if not isinstance(name, str) or not name.strip():
            _fail(f"{here}.name", "process-name", f"{here}.name must be a non-empty string")
        if name in by_name:
            _fail(f"{here}.name", "process-name-unique", f"process name {name!r} is used more than once")
        _one_of(proc["processType"], PROCESS_TYPES, f"{here}.processType", "process-type")
        if not valid_hostname(proc["hostname"]):
            _fail(
                f"{here}.hostname",
                "hostname",
                f"{here}.hostname must be a host name (RFC 1123) or IP address without scheme, port or path, "
                f"not {json.dumps(proc['hostname'])}",
            )
        version = proc["version"]
        if not isinstance(version, str) or not _MONGODB_VERSION.fullmatch(version):
            _fail(
                f"{here}.version",
                "mongodb-version",
                f"{here}.version must be a version like 7.0.5 or 7.0.5-ent, not {json.dumps(version)}",
            )
        _check_fields(proc, _PROCESS_FIELDS, here)
        _check_process_options(proc, here)
        proc.setdefault("disabled", False)
        port = proc["args2_6"].setdefault("net", {}).setdefault("port", DEFAULT_PORT)
        if not (_KINDS["integer"](port) and 1 <= port <= 65535):
            _fail(f"{here}.args2_6.net.port", "port", f"{here}.args2_6.net.port must be an integer 1..65535")
        endpoint = (proc["hostname"].lower(), port)
        if endpoint in endpoints:
            _fail(
                f"{here}.args2_6.net.port",
                "host-port-unique",
                f"processes {endpoints[endpoint]!r} and {name!r} both listen on {proc['hostname']}:{port}",
            )
        endpoints[endpoint] = name
        by_name[name] = proc
    return by_name


def _check_process_options(proc: dict[str, Any], here: str) -> None:
    """The per-process fields that carry a rule of their own (versions, modes, timestamps)."""
    fcv = proc.get("featureCompatibilityVersion", "0.0")
    if not (isinstance(fcv, str) and _FCV.fullmatch(fcv)):
        _fail(f"{here}.featureCompatibilityVersion", "fcv", "featureCompatibilityVersion must look like 7.0")
    schema = proc.get("authSchemaVersion", 5)
    if not (_KINDS["integer"](schema) and schema in (3, 5)):
        _fail(f"{here}.authSchemaVersion", "auth-schema-version", "authSchemaVersion must be 3 or 5")
    for key in _PROCESS_TIMESTAMPS:
        if key in proc and not _is_timestamp(proc[key]):
            _fail(f"{here}.{key}", "timestamp", f"{here}.{key} must be an ISO 8601 timestamp")
    args = proc["args2_6"]
    modes = (
        ("net.tls", TLS_MODES, "certificateKeyFile"),
        ("net.ssl", SSL_MODES, "PEMKeyFile"),
    )
    for section, allowed, certificate in modes:
        tls = _get(args, section)
        if not _check_choice(args, f"{section}.mode", allowed, f"{here}.args2_6", "tls-mode"):
            continue
        if tls["mode"] != "disabled" and certificate not in tls:
            _fail(
                f"{here}.args2_6.{section}.{certificate}",
                "tls-certificate",
                f"{section}.mode {tls['mode']} needs {section}.{certificate}",
            )
    _check_choice(
        args, "security.clusterAuthMode", CLUSTER_AUTH_MODES, f"{here}.args2_6", "cluster-auth-mode"
    )
    if _get(args, "replication") is not None and "oplogSizeMB" in args["replication"]:
        size = args["replication"]["oplogSizeMB"]
        if not (_KINDS["integer"](size) and 0 < size <= MAX_OPLOG_SIZE_MB):
            _fail(
                f"{here}.args2_6.replication.oplogSizeMB",
                "oplog-size",
                "replication.oplogSizeMB must be a positive integer number of megabytes",
            )
    _check_choice(args, "operationProfiling.mode", PROFILER_MODES, f"{here}.args2_6", "profiler-mode")


def _check_choice(obj: dict[str, Any], dotted: str, allowed: tuple[str, ...], path: str, rule: str) -> bool:
    """Check the value at ``dotted`` below ``obj`` against ``allowed`` if it is there; say whether it is."""
    parent_path, _, key = dotted.rpartition(".")
    parent = _get(obj, parent_path) if parent_path else obj
    if not isinstance(parent, dict) or key not in parent:
        return False
    _one_of(parent[key], allowed, f"{path}.{dotted}", rule)
    return True


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_replica_sets(replica_sets: list[Any], processes: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Check every replica set; return the replica set id of each member process."""
    set_of: dict[str, str] = {}
    ids: set[str] = set()
    for here, rs in _objects(replica_sets, "replicaSets"):
        _require(rs, "_id", here)
        _require(rs, "members", here)
        rs_id = rs["_id"]
        if not isinstance(rs_id, str) or not rs_id or "/" in rs_id or rs_id != rs_id.strip():
            _fail(f"{here}._id", "replset-id", f"{here}._id must be a non-empty name without '/'")
        if rs_id in ids:
            _fail(f"{here}._id", "replset-id-unique", f"replica set {rs_id!r} is defined more than once")
        ids.add(rs_id)
        _check_fields(rs, _REPLICA_SET_FIELDS, here)
        member_ids: set[int] = set()
        for at, member in _objects(rs["members"], f"{here}.members"):
            _check_member(member, at, processes)
            if member["_id"] in member_ids:
                _fail(f"{at}._id", "member-id-unique", f"member _id {member['_id']} is used twice in {rs_id}")
            member_ids.add(member["_id"])
            host = member["host"]
            if host in set_of:
                rule = "member-host-unique" if set_of[host] == rs_id else "process-in-one-replset"
                _fail(
                    f"{at}.host",
                    rule,
                    f"process {host!r} is already a member of replica set {set_of[host]!r}",
                )
            set_of[host] = rs_id
        _check_member_counts(rs, here)
    return set_of


def _check_member(member: dict[str, Any], at: str, processes: Mapping[str, dict[str, Any]]) -> None:
    _require(member, "_id", at)
    _require(member, "host", at)
    member_id = member["_id"]
    if not (_KINDS["integer"](member_id) and 0 <= member_id <= MAX_MEMBER_ID):
        _fail(f"{at}._id", "member-id", f"{at}._id must be an integer 0..{MAX_MEMBER_ID}")
    _check_fields(member, _MEMBER_FIELDS, at)
    process = processes.get(member["host"])
    if process is None:
        _fail(f"{at}.host", "member-host", f"{at}.host {member['host']!r} names no process in processes[]")
    if process["processType"] != "mongod":
        _fail(f"{at}.host", "member-process-type", f"{member['host']!r} is a mongos; members must be mongod")
    for key in _MEMBER_DELAYS:
        if key in member and not (_KINDS["integer"](member[key]) and member[key] >= 0):
            _fail(f"{at}.{key}", "member-delay", f"{at}.{key} must be a non-negative integer of seconds")
    member.setdefault("votes", 1)
    member.setdefault("arbiterOnly", False)
    member.setdefault("hidden", False)
    if not (_KINDS["integer"](member["votes"]) and member["votes"] in (0, 1)):
        _fail(f"{at}.votes", "votes", f"{at}.votes must be 0 or 1")
    delayed = any(member.get(key) for key in _MEMBER_DELAYS)
    passive = member["arbiterOnly"] or member["hidden"] or member["votes"] == 0 or delayed
    member.setdefault("priority", 0 if passive or member.get("buildIndexes") is False else 1)
    priority = member["priority"]
    if not (_KINDS["number"](priority) and 0 <= priority <= MAX_PRIORITY):
        _fail(f"{at}.priority", "priority", f"{at}.priority must be a number 0..{MAX_PRIORITY}")
    if member["arbiterOnly"] and member["votes"] != 1:
        _fail(f"{at}.votes", "arbiter-votes", "an arbiter must have votes 1; it exists only to vote")
    zero_priority_rules = (
        (member["arbiterOnly"], "arbiter-priority", "an arbiter"),
        (member["votes"] == 0, "non-voting-priority", "a member with votes 0"),
        (member["hidden"], "hidden-priority", "a hidden member"),
        (delayed, "delayed-priority", "a delayed member"),
        (member.get("buildIndexes") is False, "build-indexes-priority", "a member with buildIndexes false"),
    )
    for applies, rule, what in zero_priority_rules:
        if applies and priority != 0:
            _fail(f"{at}.priority", rule, f"{what} must have priority 0, not {priority}")


def _check_member_counts(rs: dict[str, Any], here: str) -> None:
    members = rs["members"]
    if len(members) > MAX_MEMBERS:
        _fail(f"{here}.members", "max-members", f"a replica set has at most {MAX_MEMBERS} members")
    if sum(m["votes"] for m in members) > MAX_VOTING_MEMBERS:
        _fail(
            f"{here}.members",
            "max-voting-members",
            f"a replica set has at most {MAX_VOTING_MEMBERS} voting members; give the others votes 0",
        )
    if not any(is_electable(m) for m in members):
        _fail(
            f"{here}.members",
            "electable-member",
            f"replica set {rs['_id']!r} needs a member that can become primary "
            "(priority > 0, votes 1, not an arbiter, not hidden)",
        )


def _check_repl_set_names(processes: list[dict[str, Any]], set_of: Mapping[str, str]) -> None:
    for i, proc in enumerate(processes):
        named = _get(proc["args2_6"], "replication.replSetName")
        member_of = set_of.get(proc["name"])
        if named == member_of:
            continue
        field = f"processes[{i}].args2_6.replication.replSetName"
        if member_of is None:
            detail = (
                f"process {proc['name']!r} sets replSetName {named!r} but is not a member of that replica set"
            )
        else:
            detail = (
                f"process {proc['name']!r} is a member of {member_of!r}, so replSetName must be {member_of!r}"
            )
        _fail(field, "replset-name", detail)


def _check_sharding(sharding: list[Any], rs_ids: set[str]) -> set[str]:
    names: set[str] = set()
    for here, cluster in _objects(sharding, "sharding"):
        _require(cluster, "name", here)
        name = cluster["name"]
        if not isinstance(name, str) or not name or name in names:
            _fail(
                f"{here}.name", "sharding-name-unique", "each sharded cluster needs a distinct non-empty name"
            )
        names.add(name)
        _check_fields(cluster, _SHARDING_FIELDS, here)
        references = [(f"{here}.configServerReplica", cluster.get("configServerReplica"))]
        for at, shard in _objects(cluster.get("shards", []), f"{here}.shards"):
            _check_fields(shard, _SHARD_FIELDS, at)
            references.append((f"{at}.rs", shard.get("rs")))
        for field, rs_id in references:
            if rs_id is not None and rs_id not in rs_ids:
                _fail(field, "sharding-replset", f"{field} names {rs_id!r}, which is not in replicaSets[]")
    return names


def _check_mongos_clusters(processes: list[dict[str, Any]], clusters: set[str]) -> None:
    for i, proc in enumerate(processes):
        if proc["processType"] == "mongos" and proc.get("cluster") not in clusters:
            _fail(
                f"processes[{i}].cluster",
                "mongos-cluster",
                "a mongos must name its sharded cluster (a sharding[].name) in cluster",
            )


def _check_index_configs(
    index_configs: list[Any], rs_ids: set[str], existing: Any, allow_unique: bool
) -> None:
    seen: set[str] = set()
    known = {_canonical(entry) for entry in existing} if isinstance(existing, list) else set()
    for here, entry in _objects(index_configs, "indexConfigs"):
        for key in ("dbName", "collectionName", "key", "rsName", "options"):
            _require(entry, key, here)
        _check_fields(entry, _INDEX_FIELDS, here)
        db = entry["dbName"]
        if not isinstance(db, str) or not db or len(db) >= 64 or _DB_NAME_FORBIDDEN & set(db):
            _fail(
                f"{here}.dbName", "index-db-name", f'{here}.dbName must be a database name (no /\\. "$*<>:|?)'
            )
        coll = entry["collectionName"]
        if not isinstance(coll, str) or not coll or "$" in coll or "\0" in coll or coll.startswith("system."):
            _fail(f"{here}.collectionName", "index-collection-name", f"{here}.collectionName is not valid")
        _check_index_key(entry["key"], f"{here}.key")
        if entry["rsName"] not in rs_ids:
            _fail(
                f"{here}.rsName", "index-rs-name", f"{here}.rsName must name a replica set in replicaSets[]"
            )
        if "collation" in entry and "locale" not in entry["collation"]:
            _fail(f"{here}.collation.locale", "index-collation", "a collation needs a locale")
        identity = json.dumps([entry["rsName"], db, coll, entry["key"]])
        if identity in seen:
            _fail(
                here, "index-duplicate", f"the same index on {db}.{coll} in {entry['rsName']} is listed twice"
            )
        seen.add(identity)
        if entry["options"].get("unique") and not allow_unique and _canonical(entry) not in known:
            _fail(f"{here}.options.unique", "index-unique-rolling", UNIQUE_INDEX_PROCEDURE)


def _check_index_key(key: Any, field: str) -> None:
    if not isinstance(key, list) or not key:
        _fail(field, "index-key", f"{field} must be a non-empty array of [field, direction or type] pairs")
    names: set[str] = set()
    for i, pair in enumerate(key):
        ok = isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and pair[0] != ""
        value = pair[1] if ok else None
        ok = ok and (value in INDEX_KEY_TYPES or (_KINDS["integer"](value) and value in (1, -1)))
        if not ok or pair[0] in names:
            _fail(
                f"{field}[{i}]",
                "index-key",
                f"{field}[{i}] must be a [field, 1 | -1 | {' | '.join(INDEX_KEY_TYPES)}] pair with a field "
                "not already in the key",
            )
        names.add(pair[0])


def _check_auth(auth: dict[str, Any]) -> None:
    auth.setdefault("disabled", False)  # Ops Manager's documented default when auth is given
    for key in ("autoAuthMechanisms", "deploymentAuthMechanisms"):
        for i, mechanism in enumerate(auth.get(key, [])):
            _one_of(mechanism, AUTH_MECHANISMS, f"auth.{key}[{i}]", "auth-mechanism")
    if "autoAuthMechanism" in auth:
        _one_of(auth["autoAuthMechanism"], AUTH_MECHANISMS, "auth.autoAuthMechanism", "auth-mechanism")
    keyfile = auth.get("keyfile", "/")
    if not (isinstance(keyfile, str) and (keyfile.startswith("/") or _WINDOWS_ABSOLUTE.match(keyfile))):
        _fail("auth.keyfile", "auth-keyfile", "auth.keyfile must be an absolute path")
    keyfile_content = auth.get("key")
    if isinstance(keyfile_content, str) and keyfile_content != REDACTED:
        content = "".join(keyfile_content.split())
        if not (6 <= len(content) <= 1024 and _KEYFILE_CHARS.fullmatch(content)):
            _fail("auth.key", "auth-key", "auth.key must be 6 to 1024 base64 characters, as mongod requires")
    for here, user in _objects(auth.get("usersWanted", []), "auth.usersWanted"):
        _require(user, "user", here)
        _require(user, "db", here)
        _check_fields(user, _USER_FIELDS, here)
    if auth["disabled"]:
        return
    mechanisms = set(auth.get("autoAuthMechanisms", []))
    if "autoAuthMechanism" in auth:
        mechanisms.add(auth["autoAuthMechanism"])
    if not mechanisms:
        _fail(
            "auth.autoAuthMechanisms",
            "auth-mechanism-required",
            "with authentication enabled the agent needs at least one mechanism",
        )
    for needed in ("key", "keyfile"):
        if not auth.get(needed):
            _fail(
                f"auth.{needed}",
                "auth-keyfile-required",
                "with authentication enabled, key and keyfile are needed",
            )
    if mechanisms & PASSWORD_MECHANISMS:
        for needed in ("autoUser", "autoPwd"):
            if not auth.get(needed):
                _fail(
                    f"auth.{needed}",
                    "auth-auto-user",
                    "password authentication needs the agent's autoUser and autoPwd",
                )


def _check_tls(config: dict[str, Any]) -> None:
    for section in ("tls", "ssl"):
        tls = config.get(section)
        if tls is None or "clientCertificateMode" not in tls:
            continue
        mode = tls["clientCertificateMode"]
        _one_of(
            mode, CLIENT_CERTIFICATE_MODES, f"{section}.clientCertificateMode", "tls-client-certificate-mode"
        )
        if mode == "REQUIRE" and not tls.get("CAFilePath"):
            _fail(f"{section}.CAFilePath", "tls-ca-file", "clientCertificateMode REQUIRE needs CAFilePath")


def _check_secrets(config: dict[str, Any]) -> None:
    for slot in _slots(config):
        value = slot.parent[slot.key]
        if not isinstance(value, str):
            _fail(slot.field, "type", f"{slot.field} must be a string, not {_json_type(value)}")
        if value == REDACTED:
            _fail(
                slot.field,
                "secret-redacted",
                f"{slot.field} holds the redaction marker instead of the secret itself",
            )


# --- content equality --------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    # JSON text tells true, 1 and 1.0 apart where Python's == does not, and sort_keys drops key order.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def config_hash(config: Mapping[str, Any]) -> str:
    """What an agent claims for the config it holds and must match when it uploads it: the SHA-256 of the
    config's canonical JSON, ``version`` included and secrets redacted (the server never sees an agent's
    secrets, and the agent's copy and its upload must hash alike)."""
    return hashlib.sha256(_canonical(redact(config)).encode()).hexdigest()


def hostnames(config: Mapping[str, Any]) -> set[str]:
    """The hosts the config's processes live on, lower-cased (host names compare case-insensitively)."""
    return {str(p["hostname"]).lower() for p in config.get("processes", []) if p.get("hostname")}


def same_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two configs state the same deployment, whatever their ``version`` and key order."""

    def content(config: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k not in SERVER_MANAGED_FIELDS}

    return _canonical(content(a)) == _canonical(content(b))


# --- secrets -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    key: str
    identity: tuple[str, ...] | None  # for a list: the fields that identify an element


@dataclass(frozen=True)
class _Slot:
    field: str  # JSON path with list indexes, as errors name it
    parent: dict[str, Any]
    key: str
    locator: tuple[Any, ...]  # dict keys, and ((field, value), ...) identities of list elements


def _parse_secret_path(path: str) -> tuple[_Step, ...]:
    steps = []
    for part in path.split("."):
        key, bracket, rest = part.partition("[")
        steps.append(_Step(key, tuple(rest.rstrip("]").split(",")) if bracket else None))
    return tuple(steps)


_SECRET_STEPS = tuple(_parse_secret_path(path) for path in SECRET_PATHS)


def _slots(config: Any) -> Iterator[_Slot]:
    """Every secret present in ``config``."""
    for steps in _SECRET_STEPS:
        yield from _walk(config, steps, "", ())


def _walk(node: Any, steps: tuple[_Step, ...], field: str, locator: tuple[Any, ...]) -> Iterator[_Slot]:
    step, rest = steps[0], steps[1:]
    if not isinstance(node, dict) or step.key not in node:
        return
    field, locator = _join(field, step.key), (*locator, step.key)
    child = node[step.key]
    if not rest:
        yield _Slot(field, node, step.key, locator)
    elif step.identity is None:
        yield from _walk(child, rest, field, locator)
    elif isinstance(child, list):
        for i, element in enumerate(child):
            if isinstance(element, dict):
                identity = tuple((name, element.get(name)) for name in step.identity)
                yield from _walk(element, rest, f"{field}[{i}]", (*locator, identity))


_MISSING = object()


def _resolve(doc: Any, locator: tuple[Any, ...]) -> Any:
    node = doc
    for item in locator:
        if isinstance(item, str):
            node = node.get(item, _MISSING) if isinstance(node, dict) else _MISSING
        elif isinstance(node, list):
            node = next(
                (e for e in node if isinstance(e, dict) and all(e.get(f) == v for f, v in item)),
                _MISSING,
            )
        else:
            node = _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def map_secrets(config: Mapping[str, Any], fn: Callable[[str], str]) -> Config:
    """A copy of ``config`` with ``fn`` applied to every secret present (encrypt or decrypt with gen.key)."""
    out = copy.deepcopy(dict(config))
    for slot in _slots(out):
        value = slot.parent[slot.key]
        if isinstance(value, str):
            slot.parent[slot.key] = fn(value)
    return out


def redact(config: Mapping[str, Any]) -> Config:
    """A copy of ``config`` with every secret replaced by :data:`REDACTED`."""
    return map_secrets(config, lambda _secret: REDACTED)


def fill_redacted(config: Mapping[str, Any], source: Mapping[str, Any]) -> Config:
    """A copy of ``config`` where each :data:`REDACTED` secret takes the value ``source`` has for it.

    List elements are matched by identity (process ``name``, user ``db`` and ``user``), not position.
    Markers ``source`` cannot fill stay; :func:`redacted_fields` lists them and :func:`validate` refuses them.
    """
    out = copy.deepcopy(dict(config))
    for slot in _slots(out):
        if slot.parent[slot.key] == REDACTED:
            original = _resolve(source, slot.locator)
            if isinstance(original, str) and original != REDACTED:
                slot.parent[slot.key] = original
    return out


def redacted_fields(config: Mapping[str, Any]) -> list[str]:
    """The JSON paths of secrets in ``config`` that still hold :data:`REDACTED`."""
    return [slot.field for slot in _slots(config) if slot.parent[slot.key] == REDACTED]


# --- accessors ---------------------------------------------------------------------------------------------


def processes_by_name(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in config.get("processes", [])}


def processes_on_host(config: Mapping[str, Any], hostname: str) -> list[dict[str, Any]]:
    """The processes an agent on ``hostname`` manages (host names compare case-insensitively)."""
    return [p for p in config.get("processes", []) if p["hostname"].lower() == hostname.lower()]


def process_port(process: Mapping[str, Any]) -> int:
    port = _get(process, "args2_6.net.port")
    return int(port) if port is not None else DEFAULT_PORT


def replica_set(config: Mapping[str, Any], rs_id: str) -> dict[str, Any] | None:
    return next((rs for rs in config.get("replicaSets", []) if rs["_id"] == rs_id), None)


def replica_set_of(config: Mapping[str, Any], process_name: str) -> dict[str, Any] | None:
    """The replica set that has ``process_name`` as a member, if any."""
    return next(
        (rs for rs in config.get("replicaSets", []) if any(m["host"] == process_name for m in rs["members"])),
        None,
    )


def members_of(config: Mapping[str, Any], rs_id: str) -> list[dict[str, Any]]:
    rs = replica_set(config, rs_id)
    return list(rs["members"]) if rs is not None else []


def is_electable(member: Mapping[str, Any]) -> bool:
    """Whether a member can become primary: priority > 0, votes 1, not an arbiter, not hidden."""
    return (
        member.get("priority", 1) > 0
        and member.get("votes", 1) == 1
        and not member.get("arbiterOnly", False)
        and not member.get("hidden", False)
    )

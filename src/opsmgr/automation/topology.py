"""The rules of the automation config's deployment topology: its processes (names, hosts, versions, ports,
per-process modes), its replica sets and their members (ids, hosts, votes, priorities, how many may vote,
that one can be primary), with the defaults Ops Manager fills in. Sharded clusters are
``opsmgr.automation.sharding``'s.

Pure functions over plain JSON values. May import ``opsmgr.errors``, ``opsmgr.automation.rules`` and
``opsmgr.automation.defaults``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from opsmgr.automation.defaults import DELAY_KEYS, default_priority
from opsmgr.automation.rules import (
    CLUSTER_AUTH_MODES,
    DEFAULT_PORT,
    KINDS,
    MAX_MEMBER_ID,
    MAX_MEMBERS,
    MAX_OPLOG_SIZE_MB,
    MAX_PRIORITY,
    MAX_VOTING_MEMBERS,
    PROCESS_TYPES,
    PROFILER_MODES,
    SSL_MODES,
    TLS_MODES,
    check_choice,
    check_fields,
    fail,
    get,
    is_electable,
    is_timestamp,
    objects,
    one_of,
    require,
    valid_hostname,
)

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
_MONGODB_VERSION = re.compile(r"\d+\.\d+\.\d+(?:-rc\d+)?(?:-ent)?")
_FCV = re.compile(r"\d+\.\d+")


def check_processes(processes: list[Any]) -> dict[str, dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for here, proc in objects(processes, "processes"):
        for key in ("name", "processType", "hostname", "version", "args2_6"):
            require(proc, key, here)
        name = proc["name"]
        if not isinstance(name, str) or not name.strip():
            fail(f"{here}.name", "process-name", f"{here}.name must be a non-empty string")
        if name in by_name:
            fail(f"{here}.name", "process-name-unique", f"process name {name!r} is used more than once")
        one_of(proc["processType"], PROCESS_TYPES, f"{here}.processType", "process-type")
        if not valid_hostname(proc["hostname"]):
            fail(
                f"{here}.hostname",
                "hostname",
                f"{here}.hostname must be a host name (RFC 1123) or IP address without scheme, port or path, "
                f"not {json.dumps(proc['hostname'])}",
            )
        version = proc["version"]
        if not isinstance(version, str) or not _MONGODB_VERSION.fullmatch(version):
            fail(
                f"{here}.version",
                "mongodb-version",
                f"{here}.version must be a version like 7.0.5 or 7.0.5-ent, not {json.dumps(version)}",
            )
        check_fields(proc, _PROCESS_FIELDS, here)
        _check_process_options(proc, here)
        proc.setdefault("disabled", False)
        port = proc["args2_6"].setdefault("net", {}).setdefault("port", DEFAULT_PORT)
        if not (KINDS["integer"](port) and 1 <= port <= 65535):
            fail(f"{here}.args2_6.net.port", "port", f"{here}.args2_6.net.port must be an integer 1..65535")
        endpoint = (proc["hostname"].lower(), port)
        if endpoint in endpoints:
            fail(
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
        fail(f"{here}.featureCompatibilityVersion", "fcv", "featureCompatibilityVersion must look like 7.0")
    schema = proc.get("authSchemaVersion", 5)
    if not (KINDS["integer"](schema) and schema in (3, 5)):
        fail(f"{here}.authSchemaVersion", "auth-schema-version", "authSchemaVersion must be 3 or 5")
    for key in _PROCESS_TIMESTAMPS:
        if key in proc and not is_timestamp(proc[key]):
            fail(f"{here}.{key}", "timestamp", f"{here}.{key} must be an ISO 8601 timestamp")
    args = proc["args2_6"]
    modes = (
        ("net.tls", TLS_MODES, "certificateKeyFile"),
        ("net.ssl", SSL_MODES, "PEMKeyFile"),
    )
    for section, allowed, certificate in modes:
        tls = get(args, section)
        if not check_choice(args, f"{section}.mode", allowed, f"{here}.args2_6", "tls-mode"):
            continue
        if tls["mode"] != "disabled" and certificate not in tls:
            fail(
                f"{here}.args2_6.{section}.{certificate}",
                "tls-certificate",
                f"{section}.mode {tls['mode']} needs {section}.{certificate}",
            )
    check_choice(args, "security.clusterAuthMode", CLUSTER_AUTH_MODES, f"{here}.args2_6", "cluster-auth-mode")
    if get(args, "replication") is not None and "oplogSizeMB" in args["replication"]:
        size = args["replication"]["oplogSizeMB"]
        if not (KINDS["integer"](size) and 0 < size <= MAX_OPLOG_SIZE_MB):
            fail(
                f"{here}.args2_6.replication.oplogSizeMB",
                "oplog-size",
                "replication.oplogSizeMB must be a positive integer number of megabytes",
            )
    check_choice(args, "operationProfiling.mode", PROFILER_MODES, f"{here}.args2_6", "profiler-mode")


def check_replica_sets(replica_sets: list[Any], processes: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Check every replica set; return the replica set id of each member process."""
    set_of: dict[str, str] = {}
    ids: set[str] = set()
    for here, rs in objects(replica_sets, "replicaSets"):
        require(rs, "_id", here)
        require(rs, "members", here)
        rs_id = rs["_id"]
        if not isinstance(rs_id, str) or not rs_id or "/" in rs_id or rs_id != rs_id.strip():
            fail(f"{here}._id", "replset-id", f"{here}._id must be a non-empty name without '/'")
        if rs_id in ids:
            fail(f"{here}._id", "replset-id-unique", f"replica set {rs_id!r} is defined more than once")
        ids.add(rs_id)
        check_fields(rs, _REPLICA_SET_FIELDS, here)
        member_ids: set[int] = set()
        for at, member in objects(rs["members"], f"{here}.members"):
            _check_member(member, at, processes)
            if member["_id"] in member_ids:
                fail(f"{at}._id", "member-id-unique", f"member _id {member['_id']} is used twice in {rs_id}")
            member_ids.add(member["_id"])
            host = member["host"]
            if host in set_of:
                rule = "member-host-unique" if set_of[host] == rs_id else "process-in-one-replset"
                fail(
                    f"{at}.host",
                    rule,
                    f"process {host!r} is already a member of replica set {set_of[host]!r}",
                )
            set_of[host] = rs_id
        _check_member_counts(rs, here)
    return set_of


def _check_member(member: dict[str, Any], at: str, processes: Mapping[str, dict[str, Any]]) -> None:
    require(member, "_id", at)
    require(member, "host", at)
    member_id = member["_id"]
    if not (KINDS["integer"](member_id) and 0 <= member_id <= MAX_MEMBER_ID):
        fail(f"{at}._id", "member-id", f"{at}._id must be an integer 0..{MAX_MEMBER_ID}")
    check_fields(member, _MEMBER_FIELDS, at)
    process = processes.get(member["host"])
    if process is None:
        fail(f"{at}.host", "member-host", f"{at}.host {member['host']!r} names no process in processes[]")
    if process["processType"] != "mongod":
        fail(f"{at}.host", "member-process-type", f"{member['host']!r} is a mongos; members must be mongod")
    for key in DELAY_KEYS:
        if key in member and not (KINDS["integer"](member[key]) and member[key] >= 0):
            fail(f"{at}.{key}", "member-delay", f"{at}.{key} must be a non-negative integer of seconds")
    member.setdefault("votes", 1)
    member.setdefault("arbiterOnly", False)
    member.setdefault("hidden", False)
    if not (KINDS["integer"](member["votes"]) and member["votes"] in (0, 1)):
        fail(f"{at}.votes", "votes", f"{at}.votes must be 0 or 1")
    delayed = any(member.get(key) for key in DELAY_KEYS)
    member.setdefault("priority", default_priority(member))
    priority = member["priority"]
    if not (KINDS["number"](priority) and 0 <= priority <= MAX_PRIORITY):
        fail(f"{at}.priority", "priority", f"{at}.priority must be a number 0..{MAX_PRIORITY}")
    if member["arbiterOnly"] and member["votes"] != 1:
        fail(f"{at}.votes", "arbiter-votes", "an arbiter must have votes 1; it exists only to vote")
    zero_priority_rules = (
        (member["arbiterOnly"], "arbiter-priority", "an arbiter"),
        (member["votes"] == 0, "non-voting-priority", "a member with votes 0"),
        (member["hidden"], "hidden-priority", "a hidden member"),
        (delayed, "delayed-priority", "a delayed member"),
        (member.get("buildIndexes") is False, "build-indexes-priority", "a member with buildIndexes false"),
    )
    for applies, rule, what in zero_priority_rules:
        if applies and priority != 0:
            fail(f"{at}.priority", rule, f"{what} must have priority 0, not {priority}")


def _check_member_counts(rs: dict[str, Any], here: str) -> None:
    members = rs["members"]
    if len(members) > MAX_MEMBERS:
        fail(f"{here}.members", "max-members", f"a replica set has at most {MAX_MEMBERS} members")
    if sum(m["votes"] for m in members) > MAX_VOTING_MEMBERS:
        fail(
            f"{here}.members",
            "max-voting-members",
            f"a replica set has at most {MAX_VOTING_MEMBERS} voting members; give the others votes 0",
        )
    if not any(is_electable(m) for m in members):
        fail(
            f"{here}.members",
            "electable-member",
            f"replica set {rs['_id']!r} needs a member that can become primary "
            "(priority > 0, votes 1, not an arbiter, not hidden)",
        )


def check_repl_set_names(processes: list[dict[str, Any]], set_of: Mapping[str, str]) -> None:
    for i, proc in enumerate(processes):
        named = get(proc["args2_6"], "replication.replSetName")
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
        fail(field, "replset-name", detail)

"""The automation config: a project's goal deployment, as the JSON document Ops Manager uses.

Owns the document's empty form (:func:`empty_config`), the check of a whole ``PUT
/groups/{id}/automationConfig`` body (:func:`validate`, which runs each section's rules: ``topology``,
``sharding``, ``indexes``, ``security``, ``secrets``; every rule has a stable id that the 400 names, with
the JSON path of the offending field), content equality that decides whether ``version`` moves
(:func:`same_content`, with Ops Manager's defaults filled on both sides: ``defaults``), the hash an agent
claims for its copy (:func:`config_hash`), and the read accessors for the agent and maintenance (processes by
name or host, replica sets, members, ports). Pure functions over plain JSON values that never mutate their
arguments. May import ``opsmgr.errors`` and ``opsmgr.automation`` modules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from opsmgr.automation.defaults import comparable, drop_unset, empty_sections
from opsmgr.automation.indexes import check_index_configs
from opsmgr.automation.rules import DEFAULT_PORT, KINDS, canonical, check_fields, fail, get, json_type
from opsmgr.automation.secrets import check_secrets, redact

# Restoration reads this from here, the module it knows the config by; its home is the secrets module.
from opsmgr.automation.secrets import fill_redacted as fill_redacted
from opsmgr.automation.security import check_auth, check_tls
from opsmgr.automation.sharding import check_cluster_roles, check_mongos_clusters, check_sharding
from opsmgr.automation.topology import check_processes, check_repl_set_names, check_replica_sets

Config = dict[str, Any]

# Fields the server assigns; they never make two configs different.
SERVER_MANAGED_FIELDS = frozenset({"version"})


def empty_config() -> Config:
    """A new project's config: nothing deployed, authentication disabled."""
    return {"version": 0, **empty_sections()}


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
    "cpsModules": "array",
    "mongosqlds": "array",
    "mongots": "array",
    "onlineArchiveModules": "array",
    "options.downloadBase": "string",
    "auth.disabled": "boolean",
    "auth.authoritativeSet": "boolean",
    "auth.autoUser": "string",
    "auth.autoAuthMechanisms": "array",
    "auth.autoAuthRestrictions": "array",
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


def validate(
    config: Any,
    *,
    current: Mapping[str, Any] | None = None,
    allow_unique_indexes: bool = False,
) -> Config:
    """Check a PUT body for ``/groups/{id}/automationConfig`` and return it normalised.

    Normalising fills what Ops Manager fills: missing top-level sections from :func:`empty_config`, each
    process's ``disabled`` and ``args2_6.net.port``, and each member's ``votes``, ``arbiterOnly``, ``hidden``
    and ``priority`` (1 when the member can be electable, else 0). What a typed client sends for a field it
    has no value for (``null`` lists and objects, an empty ``auth.autoAuthMechanism``) reads as absent
    (:func:`opsmgr.automation.defaults.drop_unset`). Unknown fields are kept as they are.

    ``current`` is the config being replaced: unique indexes it already has pass, so that a GET-modify-PUT
    round trip keeps working after a supervised unique index build. ``allow_unique_indexes`` is for callers
    that are not a user's rolling change (that procedure itself, Restoration Mode adopting an agent's
    config). Raises :class:`InvalidInput` naming the first broken rule and the field's JSON path.
    """
    if not isinstance(config, dict):
        fail("$", "config-object", f"the automation config must be a JSON object, not {json_type(config)}")
    out = drop_unset(config)
    if "version" in out and not (KINDS["integer"](out["version"]) and out["version"] >= 0):
        fail("version", "config-version", "version must be a non-negative integer; the server assigns it")
    check_fields(out, _TOP_FIELDS, "")
    for key, value in empty_config().items():
        if key not in SERVER_MANAGED_FIELDS:
            out.setdefault(key, value)
    processes = check_processes(out["processes"])
    set_of = check_replica_sets(out["replicaSets"], processes)
    check_repl_set_names(out["processes"], set_of)
    rs_ids = {rs["_id"] for rs in out["replicaSets"]}
    check_cluster_roles(out["processes"], out["replicaSets"])
    clusters = check_sharding(out["sharding"], out["replicaSets"], processes)
    check_mongos_clusters(out["processes"], clusters)
    existing = current.get("indexConfigs") if current is not None else None
    check_index_configs(out["indexConfigs"], rs_ids, existing, allow_unique_indexes)
    check_auth(out["auth"])
    check_tls(out)
    check_secrets(out)
    return out


# --- content equality --------------------------------------------------------------------------------------


def config_hash(config: Mapping[str, Any]) -> str:
    """What an agent claims for the config it holds and must match when it uploads it: the SHA-256 of the
    config's canonical JSON, ``version`` included and secrets redacted (the server never sees an agent's
    secrets, and the agent's copy and its upload must hash alike)."""
    return hashlib.sha256(canonical(redact(config)).encode()).hexdigest()


def hostnames(config: Mapping[str, Any]) -> set[str]:
    """The hosts the config's processes live on, lower-cased (host names compare case-insensitively)."""
    return {str(p["hostname"]).lower() for p in config.get("processes", []) if p.get("hostname")}


def same_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two configs state the same deployment, whatever their ``version`` and key order, whether a
    default is written out or left to Ops Manager's default (so a GET put back unchanged is no change), and
    whichever name a member's delay has."""

    def content(config: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in comparable(config).items() if k not in SERVER_MANAGED_FIELDS}

    return canonical(content(a)) == canonical(content(b))


# --- accessors ---------------------------------------------------------------------------------------------


def processes_by_name(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in config.get("processes", [])}


def processes_on_host(config: Mapping[str, Any], hostname: str) -> list[dict[str, Any]]:
    """The processes an agent on ``hostname`` manages (host names compare case-insensitively)."""
    return [p for p in config.get("processes", []) if p["hostname"].lower() == hostname.lower()]


def process_port(process: Mapping[str, Any]) -> int:
    port = get(process, "args2_6.net.port")
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

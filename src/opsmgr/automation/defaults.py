"""Ops Manager's defaults of the automation config: the sections a new project's config has
(:func:`empty_sections`), the whole document with every default Ops Manager's GET shows filled in
(:func:`with_defaults`), and the unset values a typed client sends for a field it has no value for
(:func:`drop_unset`).

A typed client (the Go client's structs, for one) decodes a GET into structs and encodes them back: a field
the GET left out comes back as its zero value (``buildIndexes: false``, ``votes: 0``, ``"usersWanted":
null``), and a field it drops when empty (``autoAuthMechanisms: []``) goes missing. So the GET shows every
default, the PUT reads ``null`` where a list or object is unset as "absent", and two configs compare with the
defaults filled on both sides. Each default here is the one the rest of opsmgr assumes when the field is
absent (``topology`` fills and checks members with the same values, ``agent.rsconfig`` builds replica set
configs from them).

Pure functions over plain JSON values that never mutate their arguments. May import
``opsmgr.automation.rules``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from opsmgr.automation.rules import DEFAULT_PORT

Config = dict[str, Any]

# What Ops Manager shows for the agent's mechanism while no mechanism is chosen (authentication disabled).
DEFAULT_AUTO_AUTH_MECHANISM = "MONGODB-CR"
DEFAULT_AUTH_SCHEMA_VERSION = 5
REPLICATION_PROTOCOL_VERSION = "1"
# MongoDB 5.0 renamed a member's slaveDelay to secondaryDelaySecs; Ops Manager shows the name of the version.
_DELAY_RENAMED_IN = (5, 0)
# A member's replication delay, under its name since MongoDB 5.0 and before.
DELAY_KEYS = ("secondaryDelaySecs", "slaveDelay")
_MAJOR_MINOR = re.compile(r"(\d+)\.(\d+)")


def empty_sections() -> Config:
    """The sections of a new project's config: nothing deployed, authentication disabled."""
    return {
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


# Sections Ops Manager's GET always shows, empty when the project has none: modules opsmgr deploys none of.
_SHOWN_EMPTY = ("cpsModules", "mongosqlds", "mongots", "onlineArchiveModules")
_AUTH_DEFAULTS: dict[str, Any] = {
    "disabled": False,  # Ops Manager's documented default when auth is given (security.check_auth agrees)
    "authoritativeSet": False,
    "autoAuthMechanisms": [],
    "autoAuthRestrictions": [],
    "deploymentAuthMechanisms": [],
    "usersWanted": [],
    "usersDeleted": [],
}
_MEMBER_DEFAULTS: dict[str, Any] = {
    "arbiterOnly": False,
    "buildIndexes": True,
    "hidden": False,
    "votes": 1,
    "tags": {},
}
_SHARDING_DEFAULTS: dict[str, Any] = {"collections": [], "draining": [], "managedSharding": False, "tags": []}

# The fields a typed client always sends, as null when it has no value for them (list, object or pointer
# fields without omitempty in the Go client's structs); Ops Manager reads null there as absent.
_NULLABLE_TOP = (
    "backupVersions",
    "balancer",
    "indexConfigs",
    "options",
    "processes",
    "replicaSets",
    "roles",
    "sharding",
    *_SHOWN_EMPTY,
)
_NULLABLE_AUTH = ("autoAuthRestrictions", "usersDeleted", "usersWanted")
_NULLABLE_USER = ("authenticationRestrictions", "roles")
_NULLABLE_SHARDING = ("collections", "draining", "shards", "tags")


def with_defaults(config: Mapping[str, Any]) -> Config:
    """``config`` as Ops Manager's GET shows it: every section, and in each process, member, replica set,
    sharded cluster and the ``auth`` section every field with its default. Values given are kept; applying
    it twice changes nothing more."""
    out = copy.deepcopy(dict(config))
    for key, value in empty_sections().items():
        out.setdefault(key, value)
    for key in _SHOWN_EMPTY:
        out.setdefault(key, [])
    if isinstance(out["auth"], dict):
        _fill_auth(out["auth"])
    versions: dict[str, tuple[int, int] | None] = {}
    for proc in _dicts(out["processes"]):
        _fill_process(proc)
        versions[str(proc.get("name"))] = _release(proc)
    for rs in _dicts(out["replicaSets"]):
        rs.setdefault("protocolVersion", REPLICATION_PROTOCOL_VERSION)
        rs.setdefault("settings", {})
        for member in _dicts(rs.get("members")):
            _fill_member(member, versions.get(str(member.get("host"))))
    for cluster in _dicts(out["sharding"]):
        _fill(cluster, _SHARDING_DEFAULTS)
        for shard in _dicts(cluster.get("shards")):
            shard.setdefault("tags", [])
    return out


def comparable(config: Mapping[str, Any]) -> Config:
    """:func:`with_defaults`, with each member's delay under MongoDB's name since 5.0 (``slaveDelay`` is the
    same setting, and the agent's replica set configs read it so): what two configs compare by."""
    out = with_defaults(config)
    for rs in _dicts(out["replicaSets"]):
        for member in _dicts(rs.get("members")):
            if "slaveDelay" in member and "secondaryDelaySecs" not in member:
                member["secondaryDelaySecs"] = member.pop("slaveDelay")
    return out


def _fill_member(member: dict[str, Any], release: tuple[int, int] | None = None) -> None:
    """Fill a member's defaults in place: one vote, data-bearing, visible, not delayed (under the delay's
    name for its process's ``release``, MongoDB's major and minor version), and the priority
    :func:`default_priority` gives."""
    _fill(member, _MEMBER_DEFAULTS)
    if not any(key in member for key in DELAY_KEYS):
        renamed = release is None or release >= _DELAY_RENAMED_IN
        member["secondaryDelaySecs" if renamed else "slaveDelay"] = 0
    member.setdefault("priority", default_priority(member))


def default_priority(member: Mapping[str, Any]) -> int:
    """The priority of a member that gives none: 0 when it cannot be primary (an arbiter, hidden, without a
    vote, delayed, or not building indexes), else 1."""
    passive = (
        member.get("arbiterOnly", False)
        or member.get("hidden", False)
        or member.get("votes", 1) == 0
        or any(member.get(key) for key in DELAY_KEYS)
        or member.get("buildIndexes") is False
    )
    return 0 if passive else 1


def drop_unset(config: Mapping[str, Any]) -> Config:
    """``config`` without the values a typed client sends for a field it has no value for: ``null`` for the
    lists and objects its structs always encode, an empty ``auth.autoAuthMechanism`` (a field Ops Manager
    derives from ``autoAuthMechanisms``) and an empty ``sharding[].configServerReplica``. Values that are
    settings (``votes: 0``, ``priority: 0``, ``buildIndexes: false``, ``disabled: false``) are kept: they
    mean what they say."""
    out = copy.deepcopy(dict(config))
    _drop_nulls(out, _NULLABLE_TOP)
    auth = out.get("auth")
    if isinstance(auth, dict):
        _drop_nulls(auth, _NULLABLE_AUTH)
        if auth.get("autoAuthMechanism") == "":
            del auth["autoAuthMechanism"]
        for user in _dicts(auth.get("usersWanted")):
            _drop_nulls(user, _NULLABLE_USER)
    for cluster in _dicts(out.get("sharding")):
        _drop_nulls(cluster, _NULLABLE_SHARDING)
        # An empty name names no replica set: a cluster without a config server replica set to check.
        if cluster.get("configServerReplica") == "":
            del cluster["configServerReplica"]
        for shard in _dicts(cluster.get("shards")):
            _drop_nulls(shard, ("tags",))
    return out


def _fill_auth(auth: dict[str, Any]) -> None:
    _fill(auth, _AUTH_DEFAULTS)
    mechanisms = auth["autoAuthMechanisms"]
    # Ops Manager derives the agent's mechanism from the mechanisms it may use.
    first = mechanisms[0] if isinstance(mechanisms, list) and mechanisms else DEFAULT_AUTO_AUTH_MECHANISM
    auth.setdefault("autoAuthMechanism", first)
    for user in _dicts(auth["usersWanted"]):
        user.setdefault("authenticationRestrictions", [])


def _fill_process(proc: dict[str, Any]) -> None:
    proc.setdefault("disabled", False)
    proc.setdefault("manualMode", False)
    proc.setdefault("authSchemaVersion", DEFAULT_AUTH_SCHEMA_VERSION)
    args = proc.get("args2_6")
    if isinstance(args, dict):
        net = args.setdefault("net", {})
        if isinstance(net, dict):
            net.setdefault("port", DEFAULT_PORT)
        # No log settings: mongod's own (the agent passes no systemLog option either way).
        args.setdefault("systemLog", {})


def _release(proc: Mapping[str, Any]) -> tuple[int, int] | None:
    """The MongoDB release whose names a process's settings use: its featureCompatibilityVersion if it has
    one, else its version."""
    for key in ("featureCompatibilityVersion", "version"):
        found = _MAJOR_MINOR.match(str(proc.get(key, "")))
        if found:
            return int(found[1]), int(found[2])
    return None


def _fill(obj: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, value in defaults.items():
        obj.setdefault(key, copy.deepcopy(value))


def _drop_nulls(obj: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in obj and obj[key] is None:
            del obj[key]


def _dicts(items: Any) -> list[dict[str, Any]]:
    # with_defaults also shows configs the validator has not seen (a GET of anything stored): skip what is
    # not an object rather than fail on it.
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

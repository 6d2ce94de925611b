"""Replica set configuration documents: defaults and the validation rules MongoDB applies.

Pure functions. ``normalize`` fills MongoDB's defaults into a config given to ``replSetInitiate`` or
``replSetReconfig``; ``validate`` checks one config on its own (unique ``_id``/``host``, at most 7 voting
and 50 members, ``votes`` 0 or 1, ``priority`` 0..1000, arbiters, hidden and non-voting members with priority
0, at least one electable member); ``validate_change`` checks a reconfig against the current config (same
set name, members keep their ``_id`` and ``arbiterOnly``, and without ``force`` at most one voting member
added or removed, as MongoDB 4.4+ requires). Violations raise ``CommandInvalid`` with MongoDB's code names.
May import ``opsmgr.drivers.base``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

from opsmgr.drivers.base import CommandInvalid

MAX_MEMBERS = 50
MAX_VOTING = 7
DEFAULT_SETTINGS: dict[str, Any] = {
    "chainingAllowed": True,
    "heartbeatIntervalMillis": 2000,
    "heartbeatTimeoutSecs": 10,
    "electionTimeoutMillis": 10000,
    "catchUpTimeoutMillis": -1,
    "catchUpTakeoverDelayMillis": 30000,
    "getLastErrorModes": {},
    "getLastErrorDefaults": {"w": 1, "wtimeout": 0},
}


def _invalid(detail: str) -> CommandInvalid:
    return CommandInvalid(detail, code=93, code_name="InvalidReplicaSetConfig")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{what} must be a number, not {value!r}")
    return float(value)


@functools.lru_cache(maxsize=65536)
def split_host(host: str) -> tuple[str, int]:
    name, sep, port = host.rpartition(":")
    if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise _invalid(f"member host {host!r} is not of the form 'hostname:port'")
    return name, int(port)


def _member(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise _invalid(f"each member must be a document, not {raw!r}")
    member_id = raw.get("_id")
    if isinstance(member_id, bool) or not isinstance(member_id, int) or not 0 <= member_id <= 255:
        raise _invalid(f"member _id must be an integer between 0 and 255, not {member_id!r}")
    host = raw.get("host")
    if not isinstance(host, str):
        raise _invalid(f"member {member_id} has no host")
    split_host(host)
    arbiter = raw.get("arbiterOnly", False)
    hidden = raw.get("hidden", False)
    if not isinstance(arbiter, bool) or not isinstance(hidden, bool):
        raise _invalid(f"member {host}: arbiterOnly and hidden must be booleans")
    votes = raw.get("votes", 1)
    if isinstance(votes, bool) or votes not in (0, 1):
        raise _invalid(f"member {host}: votes must be 0 or 1, not {votes!r}")
    priority = _number(raw.get("priority", 0 if arbiter else 1), f"member {host}: priority")
    delay = _number(
        raw.get("secondaryDelaySecs", raw.get("slaveDelay", 0)), f"member {host}: secondaryDelaySecs"
    )
    out = {k: copy.deepcopy(v) for k, v in raw.items() if k != "slaveDelay"}
    out.update(
        _id=member_id,
        host=host,
        arbiterOnly=arbiter,
        buildIndexes=bool(raw.get("buildIndexes", True)),
        hidden=hidden,
        priority=priority,
        tags=dict(raw.get("tags", {})),
        secondaryDelaySecs=int(delay),
        votes=int(votes),
    )
    return out


def normalize(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The config with MongoDB's defaults filled in; ``version`` is left as given (or absent)."""
    set_name = raw.get("_id")
    if not isinstance(set_name, str) or not set_name:
        raise _invalid("the config must have a string _id, the replica set name")
    members = raw.get("members")
    if not isinstance(members, list) or not members:
        raise _invalid("the config must have a non-empty members array")
    out = {k: copy.deepcopy(v) for k, v in raw.items()}
    out["members"] = [_member(m) for m in members]
    out["protocolVersion"] = 1
    settings = raw.get("settings", {})
    if not isinstance(settings, Mapping):
        raise _invalid("settings must be a document")
    out["settings"] = {**copy.deepcopy(DEFAULT_SETTINGS), **copy.deepcopy(dict(settings))}
    return out


def validate(cfg: Mapping[str, Any]) -> None:
    members: list[dict[str, Any]] = cfg["members"]
    if len(members) > MAX_MEMBERS:
        raise _invalid(f"replica sets may have at most {MAX_MEMBERS} members, not {len(members)}")
    ids = [m["_id"] for m in members]
    if len(set(ids)) != len(ids):
        raise _invalid("members must have unique _id values")
    hosts = [m["host"] for m in members]
    if len(set(hosts)) != len(hosts):
        raise _invalid("members must have unique host values")
    voting = [m for m in members if m["votes"] == 1]
    if len(voting) > MAX_VOTING:
        raise _invalid(f"replica sets may have at most {MAX_VOTING} voting members, not {len(voting)}")
    if not voting:
        raise _invalid("replica sets need at least one voting member")
    for m in members:
        if not 0 <= m["priority"] <= 1000:
            raise _invalid(f"member {m['host']}: priority must be between 0 and 1000")
        if m["priority"] > 0 and (m["arbiterOnly"] or m["hidden"] or m["votes"] == 0):
            kind = (
                "arbiters" if m["arbiterOnly"] else "hidden members" if m["hidden"] else "non-voting members"
            )
            raise _invalid(f"member {m['host']}: {kind} must have priority 0")
        if m["arbiterOnly"] and m["votes"] != 1:
            raise _invalid(f"member {m['host']}: arbiters must have 1 vote")
        if m["secondaryDelaySecs"] > 0 and m["priority"] > 0:
            raise _invalid(f"member {m['host']}: delayed members must have priority 0")
    if not any(electable(m) for m in members):
        raise _invalid("the config must have at least one electable member (priority > 0)")
    settings = cfg["settings"]
    for key in ("electionTimeoutMillis", "heartbeatIntervalMillis"):
        if _number(settings.get(key), f"settings.{key}") <= 0:
            raise _invalid(f"settings.{key} must be positive")


def validate_change(old: Mapping[str, Any], new: Mapping[str, Any], *, force: bool) -> None:
    if new["_id"] != old["_id"]:
        raise CommandInvalid(
            f"the replica set name cannot change from {old['_id']!r} to {new['_id']!r} by reconfig",
            code=103,
            code_name="NewReplicaSetConfigurationIncompatible",
        )
    before = {m["host"]: m for m in old["members"]}
    for m in new["members"]:
        prior = before.get(m["host"])
        if prior is None:
            continue
        if prior["_id"] != m["_id"] or prior["arbiterOnly"] != m["arbiterOnly"]:
            raise CommandInvalid(
                f"member {m['host']} cannot change its _id or arbiterOnly by reconfig; remove and re-add it",
                code=103,
                code_name="NewReplicaSetConfigurationIncompatible",
            )
    if not force:
        old_voters = {m["host"] for m in old["members"] if m["votes"] == 1}
        new_voters = {m["host"] for m in new["members"] if m["votes"] == 1}
        if len(old_voters ^ new_voters) > 1:
            raise CommandInvalid(
                "Non force replica set reconfig can only add or remove at most 1 voting member.",
                code=103,
                code_name="NewReplicaSetConfigurationIncompatible",
            )


def electable(member: Mapping[str, Any]) -> bool:
    return bool(member["priority"] > 0 and not member["arbiterOnly"] and member["votes"] == 1)


def voting_count(cfg: Mapping[str, Any]) -> int:
    return sum(1 for m in cfg["members"] if m["votes"] == 1)


def majority(cfg: Mapping[str, Any]) -> int:
    return voting_count(cfg) // 2 + 1


def member_for(cfg: Mapping[str, Any], host: str) -> dict[str, Any] | None:
    return next((m for m in cfg["members"] if m["host"] == host), None)

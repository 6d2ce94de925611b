"""Replica set configs in MongoDB's shape: the members a goal config asks for (defaults filled, so configs
compare by value), the config ``replSetInitiate`` gets, and the sequence of ``replSetReconfig`` configs from
a set's current config to its goal, one voting member at a time (as MongoDB's safe reconfig requires).

Pure: no I/O. May import ``opsmgr.automation.config`` (pure accessors) and ``opsmgr.automation.rules``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmgr.automation.config import process_port, processes_by_name
from opsmgr.automation.rules import is_electable


def member_host(process: Mapping[str, Any]) -> str:
    return f"{process['hostname']}:{process_port(process)}"


_MEMBER_DEFAULTS: dict[str, Any] = {
    "arbiterOnly": False,
    "buildIndexes": True,
    "hidden": False,
    "priority": 1,
    "tags": {},
    "secondaryDelaySecs": 0,
    "votes": 1,
}


def _normal_member(member: Mapping[str, Any], host: str) -> dict[str, Any]:
    """A member in MongoDB's replica set config shape, with defaults filled, so configs compare by value."""
    out: dict[str, Any] = {"_id": member["_id"], "host": host}
    for key, default in _MEMBER_DEFAULTS.items():
        out[key] = member.get(key, default)
    if "slaveDelay" in member and "secondaryDelaySecs" not in member:
        out["secondaryDelaySecs"] = member["slaveDelay"]
    out["priority"] = float(out["priority"])
    return out


def desired_members(
    goal: Mapping[str, Any], rs: Mapping[str, Any], *, enabled_only: bool = False
) -> list[dict[str, Any]]:
    procs = processes_by_name(goal)
    return [
        _normal_member(m, member_host(procs[m["host"]]))
        for m in rs["members"]
        if not (enabled_only and procs[m["host"]].get("disabled", False))
    ]


def initial_rs_config(goal: Mapping[str, Any], rs: Mapping[str, Any]) -> dict[str, Any]:
    """What ``replSetInitiate`` gets: the enabled members only, since it needs every member it names up."""
    config: dict[str, Any] = {
        "_id": rs["_id"],
        "version": 1,
        "protocolVersion": 1,
        "members": desired_members(goal, rs, enabled_only=True),
    }
    if rs.get("settings"):
        config["settings"] = copy.deepcopy(rs["settings"])
    return config


# --- reconfiguration ---------------------------------------------------------------------------------------


def _voting(member: Mapping[str, Any] | None) -> bool:
    return member is not None and member.get("votes", 1) == 1


def _describe_change(host: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    if before is None:
        return f"add {host}"
    if after is None:
        return f"remove {host}"
    changed = sorted(k for k in after if before.get(k) != after.get(k))
    return f"change {', '.join(changed)} of {host}"


@dataclass(frozen=True)
class _Change:
    host: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def changes_voting(self) -> bool:
        return _voting(self.before) != _voting(self.after)

    @property
    def order(self) -> int:
        """Voting changes go one at a time: additions first (more fault tolerance while the set is in
        flux), then votes granted, then votes withdrawn, then removals."""
        if self.before is None:
            return 0
        if self.after is None:
            return 3
        return 1 if _voting(self.after) else 2


@dataclass
class ReconfigPlan:
    configs: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (next config, what it does)
    deferred: list[str] = field(default_factory=list)  # changes that need the primary to step down first


class _Reconfig:
    """The configs from ``current`` to the goal members, built one batch of changes at a time."""

    def __init__(
        self, current: Mapping[str, Any], changes: list[_Change], settings_change: dict[str, Any]
    ) -> None:
        self.current = current
        self.members = {m["host"]: _normal_member(m, m["host"]) for m in current.get("members", [])}
        self.changes = changes
        self.settings = dict(current.get("settings", {}))
        self.settings_change = settings_change
        self.version = int(current.get("version", 1))
        self.configs: list[tuple[dict[str, Any], str]] = []

    def applicable(self, change: _Change) -> bool:
        """A change can go now unless its member's ``_id`` is still held by another member."""
        if change.after is None:
            return True
        ids = {m["_id"] for h, m in self.members.items() if h != change.host}
        return change.after["_id"] not in ids and (
            change.before is not None or change.host not in self.members
        )

    def apply(self, batch: list[_Change]) -> None:
        for change in batch:
            if change.after is None:
                self.members.pop(change.host, None)
            else:
                self.members[change.host] = change.after
            self.changes.remove(change)
        self.version += 1
        config = {k: copy.deepcopy(v) for k, v in self.current.items() if k not in ("members", "version")}
        config["version"] = self.version
        config["members"] = sorted((copy.deepcopy(m) for m in self.members.values()), key=lambda m: m["_id"])
        if self.settings_change:
            config["settings"] = {**self.settings, **self.settings_change}
        notes = [_describe_change(c.host, c.before, c.after) for c in batch]
        self.configs.append((config, "; ".join(notes) or "change settings"))

    def run(self) -> list[tuple[dict[str, Any], str]]:
        free = [c for c in self.changes if not c.changes_voting and self.applicable(c)]
        if free or self.settings_change:
            self.apply(free)
            self.settings_change = {}
        while self.changes:
            ready = [c for c in self.changes if self.applicable(c)]
            voting = sorted((c for c in ready if c.changes_voting), key=lambda c: c.order)
            first = voting[:1] or ready[:1]
            if not first:
                # An addition whose _id is held by a member that is not leaving: the goal is inconsistent.
                break
            self.apply(first + [c for c in ready if not c.changes_voting and c not in first])
        return self.configs


def _member_changes(current: Mapping[str, Any], goal_members: Sequence[Mapping[str, Any]]) -> list[_Change]:
    members = {m["host"]: _normal_member(m, m["host"]) for m in current.get("members", [])}
    wanted = {m["host"]: dict(m) for m in goal_members}
    changes = []
    for host in sorted(set(members) | set(wanted)):
        before, after = members.get(host), wanted.get(host)
        if before is not None and after is not None and before["_id"] != after["_id"]:
            changes += [_Change(host, before, None), _Change(host, None, after)]  # an _id cannot change
        elif before != after:
            changes.append(_Change(host, before, after))
    return changes


def reconfig_plan(
    current: Mapping[str, Any],
    goal_members: Sequence[Mapping[str, Any]],
    goal_settings: Mapping[str, Any] | None,
    primary_host: str | None,
) -> ReconfigPlan:
    """The sequence of ``replSetReconfig`` configs from ``current`` to the goal members.

    The first config batches every change that leaves the set of voting members alone; each later one
    changes exactly one voting member. Changes that would make ``primary_host`` unelectable are left out and
    listed in ``deferred``.
    """
    changes = _member_changes(current, goal_members)
    result = ReconfigPlan()
    if primary_host is not None:
        for change in [c for c in changes if c.host == primary_host]:
            if change.after is None or not is_electable(change.after):
                result.deferred.append(_describe_change(change.host, change.before, change.after))
                changes = [c for c in changes if c.host != primary_host]
    settings = dict(current.get("settings", {}))
    settings_change = {k: v for k, v in (goal_settings or {}).items() if settings.get(k) != v}
    result.configs = _Reconfig(current, changes, settings_change).run()
    return result

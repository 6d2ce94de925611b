"""A replica set's members as the server knows them during a rolling change: who they are (the goal config,
the config the change started from, the temporary arbiter) and what their agents last reported of them.

:class:`MemberReports` answers both for the other parts of
:class:`~opsmgr.maintenance.service.MaintenanceService`: the names agents map hosts with, the members an
agent's view lists, and the health the lease decisions take. An agent silent for :data:`STALE_REPORT_MS`
says nothing about its members' health. :class:`SetsPart` is what the parts that keep the change documents
are built on. May import ``opsmgr.automation.records``, ``opsmgr.store.engine`` and ``opsmgr.maintenance``
modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opsmgr.automation import records
from opsmgr.maintenance.changes import replica_set
from opsmgr.maintenance.leases import MemberHealth, members_health
from opsmgr.maintenance.moves import temporary_arbiter_name
from opsmgr.maintenance.rolling import RollingChange, maintenance_options
from opsmgr.maintenance.snapshot import Policy
from opsmgr.store.engine import Store

STALE_REPORT_MS = 30_000  # an agent silent this long says nothing about its members' health


class SetsPart:
    """What the parts that read and write the change documents act through: the application database, the
    members as their agents report them, the maintenance policy and the clock."""

    def __init__(
        self,
        store: Store,
        members: MemberReports,
        *,
        policy: Policy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.members = members
        self.policy = policy
        self.clock = clock


class MemberReports:
    """The members of a project's replica sets, from its goal config (``goal``, secrets in the clear) and
    the status documents its agents last reported (``statuses``)."""

    def __init__(
        self,
        *,
        goal: Callable[[str], dict[str, Any]],
        statuses: Callable[[str], list[dict[str, Any]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.goal = goal
        self.statuses = statuses
        self.clock = clock

    @staticmethod
    def names(goal: Mapping[str, Any], doc: Mapping[str, Any]) -> dict[str, str]:
        """``hostname:port`` -> process name for the goal config, the config the change in ``doc`` started
        from (members leaving) and the temporary arbiter."""
        names: dict[str, str] = {}
        start = doc.get("startedFrom") or {}
        for config in (start, goal):
            for p in records.processes(config):
                names[f"{p.hostname}:{p.port}"] = p.name
        rs = replica_set(goal, doc["rsId"])
        arbiter = maintenance_options(rs).temporary_arbiter if rs is not None else None
        if arbiter is not None:
            names[f"{arbiter.hostname}:{arbiter.port}"] = temporary_arbiter_name(doc["rsId"])
        return names

    def host_of(self, group_id: str, doc: Mapping[str, Any], member: str | None) -> str | None:
        """The ``hostname:port`` of ``member`` of the change in ``doc``."""
        names = self.names(self.goal(group_id), doc)
        return next((host for host, name in names.items() if name == member), None)

    def members(self, group_id: str, goal: Mapping[str, Any], doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Each member of the set (goal and leaving) as its agent last reported it, with what the agents
        measured for the maintenance (oplog window, connections)."""
        entries = _configured(goal, doc)
        reported, fresh = self._reported(group_id)
        extras = doc.get("extras") or {}
        out = []
        for name, entry in entries.items():
            observed = reported.get(name, {})
            state = observed.get("replicaStateName") if fresh.get(name) else None
            measured = extras.get(name) or {}
            out.append(
                {
                    **entry,
                    "state": state or ("DOWN" if not observed.get("running") else "UNKNOWN"),
                    "health": bool(state),
                    "optimeTs": observed.get("optimeTs") or 0,
                    "connections": measured.get("connections", observed.get("connections")),
                    "oplogWindowSecs": measured.get("oplogWindowSecs"),
                }
            )
        return out

    def health(self, group_id: str, doc: Mapping[str, Any]) -> list[MemberHealth]:
        """The health of the members of the change in ``doc``, as the lease decisions weigh it."""
        members = self.members(group_id, self.goal(group_id), doc)
        return self._health(group_id, {m["name"]: m["votes"] for m in members})

    def set_health(self, group_id: str, rs_id: str, doc: Mapping[str, Any] | None) -> list[MemberHealth]:
        """The health of ``rs_id``'s members: those of its change under way (``doc``), else of its goal."""
        if doc is not None:
            return self.health(group_id, doc)
        rs = records.replica_set(self.goal(group_id), rs_id)
        return self._health(group_id, {m.host: m.votes for m in rs.members} if rs is not None else {})

    def _health(self, group_id: str, votes: dict[str, int]) -> list[MemberHealth]:
        return members_health(self.statuses(group_id), votes, int(self.clock() * 1000), STALE_REPORT_MS)

    def running(
        self, group_id: str, names: tuple[str, ...], since: Mapping[str, float] | None = None
    ) -> tuple[str, ...]:
        """Those of ``names`` (processes outside any replica set: mongos) whose agents' fresh reports say
        they run, in order (for a name in ``since``, a report received after that instant: a restart seen
        through); all of them when no agent reported any yet (the first one's agent is asked, and retries
        if it is not)."""
        now_ms = int(self.clock() * 1000)
        seen: dict[str, tuple[int, bool]] = {}
        for status in self.statuses(group_id):
            received = int(status.get("receivedAt", 0))
            for p in status.get("processes", []):
                if p["name"] in names and now_ms - received <= STALE_REPORT_MS:
                    seen[p["name"]] = (received, bool((p.get("observed") or {}).get("running")))
        if not seen:
            return names
        after = since or {}
        return tuple(n for n in names if n in seen and seen[n][1] and seen[n][0] > after.get(n, -1.0) * 1000)

    def _reported(self, group_id: str) -> tuple[dict[str, dict[str, Any]], dict[str, bool]]:
        """Per process: what its agent last observed, and whether that report is fresh."""
        now_ms = int(self.clock() * 1000)
        reported: dict[str, dict[str, Any]] = {}
        fresh: dict[str, bool] = {}
        for status in self.statuses(group_id):
            is_fresh = now_ms - int(status.get("receivedAt", 0)) <= STALE_REPORT_MS
            for p in status.get("processes", []):
                reported[p["name"]] = p.get("observed") or {}
                fresh[p["name"]] = is_fresh
        return reported, fresh


def _configured(goal: Mapping[str, Any], doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The members of the change's set in the config it started from and in the goal, by process name."""
    start = doc.get("startedFrom") or {}
    change = RollingChange.from_json(doc["change"])
    entries: dict[str, dict[str, Any]] = {}
    for config, set_id in ((start, change.old_rs_id), (goal, doc["rsId"])):
        rs = records.replica_set(config, set_id)
        procs = {p.name: p for p in records.processes(config)}
        for m in rs.members if rs is not None else ():
            proc = procs.get(m.host)
            if proc is None:
                continue
            entries[m.host] = {
                "name": m.host,
                "host": f"{proc.hostname}:{proc.port}",
                "hostname": proc.hostname,
                "votes": m.votes,
                "priority": float(m.priority),
                "arbiterOnly": m.arbiter_only,
                "hidden": m.hidden,
            }
    return entries

"""A set's members as the maintenance service knows them (``maintenance.members``), from plain configs and
status documents: who they are during a change (members leaving and the temporary arbiter included) and
what their agents last said of them, a silent agent saying nothing about their health."""

from __future__ import annotations

import copy
from typing import Any

from opsmgr.maintenance.members import STALE_REPORT_MS, MemberReports
from opsmgr.maintenance.moves import temporary_arbiter_name
from opsmgr.maintenance.rolling import RollingChange
from tests.maintenance.helpers import config

NOW = 1_700_000_000.0


def _status(name: str, observed: dict[str, Any], *, age_ms: int = 0) -> dict[str, Any]:
    return {"receivedAt": int(NOW * 1000) - age_ms, "processes": [{"name": name, "observed": observed}]}


def _reports(goal: dict[str, Any], statuses: list[dict[str, Any]]) -> MemberReports:
    return MemberReports(goal=lambda g: goal, statuses=lambda g: statuses, clock=lambda: NOW)


def _shrunk() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A goal of three members with a temporary arbiter, and the change from four (rs0_3 leaves)."""
    start = config(4)
    goal = copy.deepcopy(config(3))
    goal["replicaSets"][0]["maintenance"] = {
        "temporaryArbiter": {"hostname": "h9.example.net", "port": 27099}
    }
    change = RollingChange("rs0", "rs0", {"rs0_3": frozenset()})
    doc = {"rsId": "rs0", "startedFrom": start, "change": change.to_json()}
    return start, goal, doc


def test_names_cover_the_goal_the_members_leaving_and_the_temporary_arbiter() -> None:
    _, goal, doc = _shrunk()
    names = MemberReports.names(goal, doc)
    assert names["h3.example.net:27017"] == "rs0_3", "a member leaving is still named"
    assert names["h9.example.net:27099"] == temporary_arbiter_name("rs0")
    assert {names[f"h{i}.example.net:27017"] for i in range(3)} == {"rs0_0", "rs0_1", "rs0_2"}
    reports = _reports(goal, [])
    assert reports.host_of("g", doc, "rs0_3") == "h3.example.net:27017"
    assert reports.host_of("g", doc, "nobody") is None


def test_members_are_as_last_reported_and_a_silent_agent_says_nothing_of_health() -> None:
    _, goal, doc = _shrunk()
    doc["extras"] = {"rs0_2": {"connections": 7, "oplogWindowSecs": 3600.0}}
    statuses = [
        _status("rs0_0", {"running": True, "replicaStateName": "SECONDARY", "optimeTs": 5}),
        _status("rs0_1", {"running": True, "replicaStateName": "SECONDARY"}, age_ms=STALE_REPORT_MS + 1),
        _status("rs0_2", {"running": True, "replicaStateName": "PRIMARY", "connections": 3}),
    ]
    members = {m["name"]: m for m in _reports(goal, statuses).members("g", goal, doc)}
    assert set(members) == {"rs0_0", "rs0_1", "rs0_2", "rs0_3"}
    assert (members["rs0_0"]["state"], members["rs0_0"]["health"], members["rs0_0"]["optimeTs"]) == (
        "SECONDARY",
        True,
        5,
    )
    assert (members["rs0_1"]["state"], members["rs0_1"]["health"]) == ("UNKNOWN", False), "stale report"
    assert (members["rs0_3"]["state"], members["rs0_3"]["health"]) == ("DOWN", False), "never reported"
    assert members["rs0_2"]["connections"] == 7 and members["rs0_2"]["oplogWindowSecs"] == 3600.0


def test_health_without_a_change_is_of_the_goals_members_with_their_votes() -> None:
    goal = config(3)
    goal["replicaSets"][0]["members"][1]["votes"] = 0
    goal["replicaSets"][0]["members"][1]["priority"] = 0
    statuses = [_status(f"rs0_{i}", {"running": True, "replicaStateName": "SECONDARY"}) for i in (0, 1)]
    health = {h.name: h for h in _reports(goal, statuses).set_health("g", "rs0", None)}
    assert set(health) == {"rs0_0", "rs0_1", "rs0_2"}
    assert health["rs0_0"].healthy and health["rs0_1"].votes == 0 and not health["rs0_2"].healthy

"""The maintenance routes of a real server: the agents' view, lease, progress and events routes (agent API
key, denial as 409 with the reason), the public list and detail, the ``maintenance`` entry of
``automationStatus``, the member-failed alert, and Restoration Mode's 409 on the routes that change
anything."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr.maintenance.moves import BlockCause, Blocked, Move, MoveName, PlannedStep, Unit
from opsmgr.maintenance.wire import decision_to_json, move_to_json
from opsmgr.timestamps import epoch_ms
from tests.agent_protocol import AgentProject
from tests.configs import replica_set_config
from tests.procs import ServerProcess

HOSTS = ["h0.example.net", "h1.example.net", "h2.example.net"]


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as client:
        yield client


class Project(AgentProject):
    def __init__(self, server: ServerProcess, api: httpx.Client, name: str) -> None:
        super().__init__(server.url, api, name, replica_set_config(HOSTS))
        self.server = server

    def upgrade(self) -> None:
        config = copy.deepcopy(self.config)
        for p in config["processes"]:
            p["version"] = "7.0.6"
        self.put(config)

    def route(self, path: str = "") -> str:
        return f"/agents/api/automation/maintenance/v1/{self.gid}/rs0{path}"

    def report(self, states: list[str]) -> None:
        for i, (host, state) in enumerate(zip(HOSTS, states, strict=True)):
            body = {
                "processes": [{"name": f"rs0_{i}", "observed": {"running": True, "replicaStateName": state}}]
            }
            r = self.agent.post(
                f"/agents/api/automation/status/v1/{self.gid}", params={"hostname": host}, json=body
            )
            assert r.status_code == 200, r.text


@pytest.fixture
def project(server: ServerProcess, api: httpx.Client, request: pytest.FixtureRequest) -> Iterator[Project]:
    p = Project(server, api, request.node.name[:50])
    try:
        yield p
    finally:
        p.agent.close()


def _first_move(member: str) -> dict[str, Any]:
    plan = tuple(
        PlannedStep(m, member)
        for m in (MoveName.ACQUIRE_LEASE, MoveName.RESTART_STANDALONE, MoveName.RELEASE_LEASE)
    )
    return move_to_json(Move(MoveName.ACQUIRE_LEASE, member, member, "", unit=Unit.MEMBER, plan=plan))


def test_agent_routes_need_the_agent_key_and_show_no_change_before_a_roll(
    server: ServerProcess, project: Project
) -> None:
    assert httpx.get(server.url + project.route(), params={"hostname": HOSTS[0]}).status_code == 401
    r = project.agent.get(project.route(), params={"hostname": HOSTS[0]})
    assert r.status_code == 200 and r.json()["active"] is False
    assert project.api.get(f"/groups/{project.gid}/maintenance").json()["totalCount"] == 0


def test_a_rolling_change_through_the_agent_routes(project: Project) -> None:
    project.upgrade()
    view = project.agent.get(project.route(), params={"hostname": HOSTS[0]}).json()
    assert view["active"] and set(view["change"]["tasks"]) == {"rs0_0", "rs0_1", "rs0_2"}
    change_id = view["changeId"]

    denied = project.agent.post(project.route("/lease"), json={"member": "rs0_0"})
    assert denied.status_code == 409, "no agent has reported its member healthy yet"
    assert denied.json()["errorCode"] == "MAINTENANCE_LEASE_DENIED" and denied.json()["parameters"]["reason"]

    project.report(["SECONDARY", "SECONDARY", "PRIMARY"])
    body = {"member": "rs0_0", "changeId": change_id, "move": _first_move("rs0_0"), "seq": 0}
    granted = project.agent.post(project.route("/lease"), json=body)
    assert granted.status_code == 200 and granted.json()["holder"] == "rs0_0", granted.text
    other = project.agent.post(project.route("/lease"), json={"member": "rs0_1"})
    assert other.status_code == 409 and "rs0_0 holds" in other.json()["detail"]
    assert project.agent.put(project.route("/lease"), json={"member": "rs0_0"}).status_code == 200

    step = move_to_json(Move(MoveName.RESTART_STANDALONE, "rs0_0", "rs0_0", ""))
    r = project.agent.post(project.route("/progress"), json={"changeId": change_id, "move": step, "at": 1.0})
    assert r.status_code == 200 and r.json()["progress"]["position"] == 2
    bad = project.agent.post(
        project.route("/progress"), json={"changeId": change_id, "move": {"name": "Dance"}}
    )
    assert bad.status_code == 400

    failed = decision_to_json(Blocked("rs0_0 did not come back", BlockCause.FAILURE, "rs0_0"))
    r = project.agent.post(
        project.route("/events"), json={"changeId": change_id, "decision": failed, "primary": True}
    )
    assert r.status_code == 200 and r.json()["status"]["state"] == "FAILED"
    alerts = project.api.get(f"/groups/{project.gid}/alerts", params={"status": "OPEN"}).json()["results"]
    assert [a["eventTypeName"] for a in alerts] == ["MAINTENANCE_MEMBER_FAILED"]
    entry = project.api.get(f"/groups/{project.gid}/automationStatus").json()["maintenance"][0]
    assert (
        entry["replicaSet"] == "rs0"
        and entry["state"] == "FAILED"
        and entry["currentStep"] == "ReleaseMaintenanceLease"
    )

    listed = project.api.get(f"/groups/{project.gid}/maintenance").json()["results"]
    assert [c["id"] for c in listed] == [change_id]
    assert listed[0]["progress"]["stepsDone"] == 2 and listed[0]["progress"]["stepsTotal"] > 2
    # Instants as Ops Manager writes them: ISO-8601 UTC strings.
    assert isinstance(listed[0]["created"], str) and epoch_ms(listed[0]["created"]) > 0
    assert project.api.get(f"/groups/{project.gid}/maintenance/{change_id}").json()["state"] == "FAILED"
    assert project.api.get(f"/groups/{project.gid}/maintenance/nope").status_code == 404

    released = project.api.delete(f"/groups/{project.gid}/maintenance/replicaSets/rs0/lease")
    assert released.status_code == 200
    again = project.api.delete(f"/groups/{project.gid}/maintenance/replicaSets/rs0/lease")
    assert again.status_code == 409
    assert project.agent.delete(project.route("/lease"), params={"member": "rs0_0"}).status_code == 409


def test_restoration_mode_refuses_what_changes_anything(project: Project) -> None:
    project.upgrade()
    project.report(["SECONDARY", "SECONDARY", "PRIMARY"])
    # An agent holding a newer config than the server's puts the project in Restoration Mode.
    poll = project.agent.get(
        f"/agents/api/automation/conf/v1/{project.gid}", params={"hostname": HOSTS[0], "cv": 99}
    )
    assert poll.status_code == 304
    mode = project.api.get(f"/groups/{project.gid}/restorationMode").json()
    assert mode["inRestorationMode"], mode
    r = project.api.delete(f"/groups/{project.gid}/maintenance/replicaSets/rs0/lease")
    assert r.status_code == 409 and "Restoration Mode" in r.json()["detail"]
    lease = project.agent.post(project.route("/lease"), json={"member": "rs0_0"})
    assert lease.status_code == 409 and "Restoration Mode" in lease.json()["detail"]
    assert project.api.get(f"/groups/{project.gid}/maintenance").status_code == 200

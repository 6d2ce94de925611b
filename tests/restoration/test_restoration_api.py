"""Restoration Mode through a real server and the agent API: the application database is rolled back (its
file replaced by an earlier copy), agents that hold a later config poll, and the project reconciles.
Agents here are plain HTTP clients speaking the agent protocol, so each step can be checked in turn.
"""

from __future__ import annotations

from datetime import datetime

import httpx

from tests.configs import replica_set_config
from tests.procs import wait_for
from tests.restoration.conftest import HOSTS, RolledBack


def test_rollback_enters_mode_isolates_and_reconciles(
    rolled_back: RolledBack,
) -> None:
    _server, api, group_id, agents = rolled_back
    assert api.get(f"/groups/{group_id}/automationConfig").json()["version"] == 1
    assert api.get(f"/groups/{group_id}/restorationMode").json()["state"] == "INACTIVE"

    assert agents[0].poll() == 304, "an agent holding a newer config must not be served the restored one"
    view = api.get(f"/groups/{group_id}/restorationMode").json()
    assert view["inRestorationMode"] and view["state"] == "COLLECTING"
    assert view["triggerReason"]["hostname"] == HOSTS[0]
    assert (
        view["triggerReason"]["agentConfigVersion"] == 3
        and view["triggerReason"]["restoredConfigVersion"] == 1
    )
    assert view["triggeredAt"]

    refused = api.put(f"/groups/{group_id}/automationConfig", json=replica_set_config(HOSTS[:1]))
    assert refused.status_code == 409 and "Restoration Mode" in refused.json()["detail"]

    for a in agents:
        assert a.poll() == 304
    requests = {a.hostname: a.report() for a in agents}
    asked = [h for h, reqs in requests.items() if any(r["type"] == "UPLOAD_CONFIG" for r in reqs)]
    if not asked:  # the choice is made once every agent has been heard; the next report carries the request
        requests = {a.hostname: a.report() for a in agents}
        asked = [h for h, reqs in requests.items() if any(r["type"] == "UPLOAD_CONFIG" for r in reqs)]
    latest = max(agents, key=lambda a: (a.cv, a.held_at, a.hostname))
    assert asked == [latest.hostname]

    uploaded = latest.upload()
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["version"] >= 3
    view = api.get(f"/groups/{group_id}/restorationMode").json()
    assert view["state"] == "INACTIVE" and view["exitedAt"] and view["authoritativeConfigVersion"] >= 3
    config = api.get(f"/groups/{group_id}/automationConfig").json()
    assert config["processes"][0]["version"] == "7.0.6"
    assert config["indexConfigs"][0]["key"] == [["customer", 1]]
    for a in agents:
        wait_for(lambda a=a: a.poll() in (200, 304) and a.cv == config["version"], 10, what="convergence")
    assert api.put(f"/groups/{group_id}/automationConfig", json=config).status_code == 200


def test_roles_on_the_endpoints(
    rolled_back: RolledBack,
) -> None:
    server, api, group_id, agents = rolled_back
    agents[0].poll()
    keys = {
        role: api.post(f"/groups/{group_id}/apiKeys", json={"desc": role, "roles": [role]}).json()
        for role in ("GROUP_READ_ONLY", "GROUP_AUTOMATION_ADMIN", "GROUP_BACKUP_ADMIN", "GROUP_OWNER")
    }
    for role, key in keys.items():
        with server.client(key) as c:
            assert c.get(f"/groups/{group_id}/restorationMode").status_code == 200, role
            owner = role == "GROUP_OWNER"
            assert c.post(f"/groups/{group_id}/restorationMode/retry").status_code == (
                200 if owner else 403
            ), role
    with server.client(keys["GROUP_READ_ONLY"]) as c:
        assert c.delete(f"/groups/{group_id}/restorationMode").status_code == 403
    assert httpx.get(f"{server.url}/api/public/v1.0/groups/{group_id}/restorationMode").status_code == 401


def test_unreachable_agents_fail_then_retry_succeeds(
    rolled_back: RolledBack,
) -> None:
    _server, api, group_id, agents = rolled_back
    for a in agents[:2]:  # a real agent reports its status after each poll
        a.poll()
        assert a.report() == []
    view = wait_for(
        lambda: (v := api.get(f"/groups/{group_id}/restorationMode").json())["failureCount"] >= 1 and v,
        60,
        what="a failed reconciliation (agent c unreachable)",
    )
    assert view["inRestorationMode"]
    assert [m["hostname"] for m in view["missingHosts"]] == [HOSTS[2]]
    assert view["lastFailure"]["reason"]
    # Instants as Ops Manager writes them: ISO-8601 UTC strings (stored as epoch milliseconds).
    assert view["lastFailure"]["at"].endswith("Z") and datetime.fromisoformat(view["lastFailure"]["at"])
    assert view["agentsHeard"] and all(a["heardAt"].endswith("Z") for a in view["agentsHeard"])
    assert all(a["timestamp"] is None or a["timestamp"].endswith("Z") for a in view["agentsHeard"])
    retried = api.post(f"/groups/{group_id}/restorationMode/retry").json()
    assert retried["failureCount"] == 0 and retried["inRestorationMode"]
    for a in agents:
        a.poll()
    for _ in range(2):
        for a in agents:
            if any(r["type"] == "UPLOAD_CONFIG" for r in a.report()):
                assert a.upload().status_code == 200
    assert api.get(f"/groups/{group_id}/restorationMode").json()["state"] == "INACTIVE"


def test_force_exit_serves_restored_config_above_every_version(
    rolled_back: RolledBack,
) -> None:
    _server, api, group_id, agents = rolled_back
    agents[0].poll()
    view = api.delete(f"/groups/{group_id}/restorationMode").json()
    assert not view["inRestorationMode"] and view["state"] == "FORCED_EXIT_CONVERGING"
    version = api.get(f"/groups/{group_id}/automationConfig").json()["version"]
    assert version > 3
    for a in agents:
        assert a.poll() == 200 and a.cv == version
        assert a.held["processes"][0]["version"] == "7.0.5", "the restored config is what they now run"
        a.report()
    assert api.get(f"/groups/{group_id}/restorationMode").json()["state"] == "INACTIVE"
    assert api.delete(f"/groups/{group_id}/restorationMode").status_code == 409


def test_server_restart_mid_reconciliation_resumes(
    rolled_back: RolledBack,
) -> None:
    server, api, group_id, agents = rolled_back
    agents[0].poll()
    server.stop()
    server.start()
    assert api.get(f"/groups/{group_id}/restorationMode").json()["inRestorationMode"]
    for a in agents:
        assert a.poll() == 304
    for _ in range(2):
        for a in agents:
            if any(r["type"] == "UPLOAD_CONFIG" for r in a.report()):
                assert a.upload().status_code == 200
    assert api.get(f"/groups/{group_id}/restorationMode").json()["state"] == "INACTIVE"

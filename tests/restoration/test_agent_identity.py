"""Restoration Mode's guard against agents that are not the project's, or whose word does not hold: a made-up
hostname with the project's agent key cannot trigger the mode, be heard in it or upload; an upload must be
the config the agent claimed (version and hash) and must still describe what the agents run. Through a real
server and the agent API."""

from __future__ import annotations

import httpx
import pytest

from opsmgr.automation.config import empty_config
from tests.agent_protocol import FakeAgent
from tests.restoration.conftest import HOSTS, RolledBack


def _view(api: httpx.Client, group_id: str) -> dict[str, object]:
    return dict(api.get(f"/groups/{group_id}/restorationMode").json())


def _refusal_alert(api: httpx.Client, group_id: str) -> dict[str, object] | None:
    alerts = api.get(f"/groups/{group_id}/alerts").json()["results"]
    return next((a for a in alerts if a["eventTypeName"] == "RESTORATION_MODE_AGENT_REFUSED"), None)


def _asked(agents: list[FakeAgent]) -> FakeAgent:
    """The agent asked to upload: every agent reports (as after each poll) until one is asked."""
    for _ in range(2):
        for a in agents:
            if any(r["type"] == "UPLOAD_CONFIG" for r in a.report()):
                return a
    raise AssertionError("no agent was asked to upload its config")


def _stranger(agent: FakeAgent, hostname: str = "forged.example.com") -> FakeAgent:
    return FakeAgent(str(agent.http.base_url), agent.group_id, agent.key, hostname)


def test_a_made_up_hostname_cannot_trigger_the_mode(rolled_back: RolledBack) -> None:
    _server, api, group_id, agents = rolled_back
    forged = _stranger(agents[0])
    poll = forged.http.get(
        f"/agents/api/automation/conf/v1/{group_id}", params={"hostname": forged.hostname, "cv": 999}
    )
    assert poll.status_code == 403, poll.text
    assert "forged.example.com" in poll.json()["detail"] and "not a host of project" in poll.json()["detail"]
    assert _view(api, group_id)["state"] == "INACTIVE"
    forged.http.get(
        f"/agents/api/automation/conf/v1/{group_id}", params={"hostname": forged.hostname, "cv": 999}
    )
    alert = _refusal_alert(api, group_id)
    assert alert is not None and alert["count"] == 2 and alert["lastHostname"] == forged.hostname
    # A new agent of an unknown host polling at or below the goal is simply served: it is not a claim.
    assert forged.poll() == 200 and forged.cv == 1
    # The real agents still trigger it.
    assert agents[0].poll() == 304
    assert _view(api, group_id)["state"] == "COLLECTING"


def test_a_made_up_hostname_is_not_heard_and_cannot_upload(rolled_back: RolledBack) -> None:
    _server, api, group_id, agents = rolled_back
    assert agents[0].poll() == 304  # the mode begins
    forged = _stranger(agents[0])
    forged.held = dict(agents[0].held, version=999)
    status = forged.post_status(forged.status())
    assert status.status_code == 403 and "not a host of project" in status.json()["detail"]
    assert forged.upload().status_code in (403, 409)
    heard = [a["hostname"] for a in _view(api, group_id)["agentsHeard"]]  # type: ignore[union-attr]
    assert forged.hostname not in heard
    for a in agents:
        a.poll()
    assert _asked(agents).hostname in HOSTS


def test_an_upload_that_is_not_the_claimed_config_is_refused(rolled_back: RolledBack) -> None:
    _server, api, group_id, agents = rolled_back
    for a in agents:
        a.poll()
    chosen = _asked(agents)
    other = dict(chosen.held, version=chosen.cv + 5)
    refused = chosen.upload(other)
    assert refused.status_code == 409 and refused.json()["errorCode"] == "UPLOAD_DOES_NOT_MATCH_CLAIM"
    altered = dict(chosen.held)
    altered["processes"] = [dict(p, version="7.0.99") for p in altered["processes"]]
    assert chosen.upload(altered).status_code == 409
    view = _view(api, group_id)
    assert view["inRestorationMode"] and view["failureCount"] == 1
    assert api.get(f"/groups/{group_id}/automationConfig").json()["version"] == 1


def test_an_upload_without_processes_while_agents_run_them_is_refused(rolled_back: RolledBack) -> None:
    """An agent of a known host that holds (and claims) a config with no processes, at the highest version,
    cannot make it the goal while the other agents run the deployment."""
    _server, api, group_id, agents = rolled_back
    liar = agents[0]
    liar.held = {**empty_config(), "version": 999}
    assert liar.poll() == 304
    for a in agents:
        a.poll()
    assert _asked(agents) is liar
    refused = liar.upload()
    assert refused.status_code == 400, refused.text
    assert "rule no-processes" in refused.json()["detail"]
    assert api.get(f"/groups/{group_id}/automationConfig").json()["version"] == 1
    assert _view(api, group_id)["failureCount"] == 1


@pytest.mark.parametrize("cv", ["1_0", "\u0663", " 5", "+5", "05", "1e3", "-2", "", str(2**62 + 1)])
def test_cv_is_ascii_digits_only(rolled_back: RolledBack, cv: str) -> None:
    _server, _api, group_id, agents = rolled_back
    r = agents[0].http.get(
        f"/agents/api/automation/conf/v1/{group_id}", params={"hostname": agents[0].hostname, "cv": cv}
    )
    assert r.status_code == 400 and r.json()["parameters"]["field"] == "cv", r.text

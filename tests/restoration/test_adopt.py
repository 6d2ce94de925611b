"""Adopting a project from its agents (``restoration.adopt``) through a real server and the agent API: the
project is recreated with the agents' id and key, ARMED, and takes the highest config of the hosts the
operator named, every one of them heard first; an agent of any other host, with the right key, is refused;
the route's refusals (400, 403, 409, and 409 while Restoration Mode is disabled) and a forced exit that would
serve the empty config."""

from __future__ import annotations

import copy
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.store.engine import new_id
from tests.agent_protocol import FakeAgent
from tests.configs import replica_set_config
from tests.procs import ServerProcess, free_port
from tests.restoration.test_agent_identity import _asked, _refusal_alert, _view

HOSTS = ["a.adopt.sim", "b.adopt.sim", "c.adopt.sim"]


def _org(owner: dict[str, Any]) -> str:
    return str(next(r["orgId"] for r in owner["roles"] if "orgId" in r))


def _adopt(api: httpx.Client, org_id: str, **body: Any) -> httpx.Response:
    return api.post(f"/orgs/{org_id}/adoptedGroups", json=body)


def _agents(server: ServerProcess, group_id: str, key: str, versions: list[int]) -> list[FakeAgent]:
    """The agents of a lost installation: each holds the deployment's config at its version (the last one
    with a MongoDB version change, as after a change not every agent had taken yet)."""
    agents = []
    for host, version in zip(HOSTS, versions, strict=True):
        agent = FakeAgent(server.url, group_id, key, host)
        held = replica_set_config(HOSTS) | {"version": version}
        if version == max(versions):
            held = copy.deepcopy(held)
            for p in held["processes"]:
                p["version"] = "7.0.6"
        agent.held, agent.held_at = held, 1_700_000_000_000 + version
        agents.append(agent)
    return agents


@pytest.fixture
def adopted(server: ServerProcess, owner: dict[str, Any]) -> tuple[httpx.Client, str, str]:
    api = server.client(owner)
    group_id, key = new_id(), secrets.token_hex(32)
    r = _adopt(api, _org(owner), groupId=group_id, agentApiKey=key, hosts=HOSTS, name=f"adopted {group_id}")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == group_id and body["adoptedHosts"] == HOSTS
    assert body["restorationMode"] == {"state": "ARMED", "awaitingHosts": HOSTS}
    return api, group_id, key


def test_the_highest_config_of_the_named_hosts_is_adopted(
    server: ServerProcess, adopted: tuple[httpx.Client, str, str]
) -> None:
    api, group_id, key = adopted
    (stored,) = api.get(f"/groups/{group_id}/agentapikeys").json()
    assert stored["key"].endswith(key[-8:]) and stored["createdBy"] == "ADOPTION", "the agents' own key"
    r = api.put(f"/groups/{group_id}/automationConfig", json=replica_set_config(HOSTS))
    assert r.status_code == 409 and r.json()["errorCode"] == "RESTORATION_MODE_ARMED", r.text
    agents = _agents(server, group_id, key, [5, 5, 7])
    assert agents[0].poll() == 304, "nothing is served: the empty config would stop every process"
    assert _view(api, group_id)["state"] == "COLLECTING"
    # Two of the three named hosts claimed: no choice is made before the third is heard.
    assert all(not a.report() for a in agents[:2])
    assert _view(api, group_id)["state"] == "COLLECTING"
    for a in agents:
        assert a.poll() == 304
    chosen = _asked(agents)
    assert chosen is agents[2], "the highest version wins"
    assert chosen.upload().status_code == 200
    view = _view(api, group_id)
    assert view["state"] == "INACTIVE" and view["authoritativeConfigVersion"] == 7
    config = api.get(f"/groups/{group_id}/automationConfig").json()
    assert config["version"] == 7 and [p["hostname"] for p in config["processes"]] == HOSTS
    assert {p["version"] for p in config["processes"]} == {"7.0.6"}
    assert all(a.poll() == 304 for a in agents[2:]) and agents[0].poll() == 200
    assert agents[0].cv == 7


def test_an_agent_of_a_host_not_named_is_refused_with_the_right_key(
    server: ServerProcess, adopted: tuple[httpx.Client, str, str]
) -> None:
    api, group_id, key = adopted
    forged = FakeAgent(server.url, group_id, key, "forged.adopt.sim")
    forged.held = replica_set_config(["forged.adopt.sim"]) | {"version": 999}
    assert forged.poll() == 403, "it cannot make its own config the project's"
    assert _view(api, group_id)["state"] == "ARMED"
    agents = _agents(server, group_id, key, [3, 3, 3])
    assert agents[0].poll() == 304
    refused = forged.post_status(forged.status())
    assert refused.status_code == 403 and refused.json()["errorCode"] == "AGENT_HOST_NOT_IN_PROJECT"
    assert forged.upload().status_code in (403, 409)
    alert = _refusal_alert(api, group_id)
    assert alert is not None and alert["lastHostname"] == "forged.adopt.sim"
    assert "forged.adopt.sim" not in [a["hostname"] for a in _view(api, group_id)["agentsHeard"]]  # type: ignore[union-attr]


def test_a_forced_exit_without_a_config_is_refused(
    server: ServerProcess, adopted: tuple[httpx.Client, str, str]
) -> None:
    api, group_id, key = adopted
    agents = _agents(server, group_id, key, [4, 4, 4])
    assert agents[0].poll() == 304
    r = api.delete(f"/groups/{group_id}/restorationMode")
    assert r.status_code == 409 and r.json()["errorCode"] == "ADOPTED_PROJECT_HAS_NO_CONFIG", r.text
    assert _view(api, group_id)["state"] == "COLLECTING"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"groupId": "zz" * 12}, "groupId"),
        ({"groupId": "ab" * 13}, None),
        ({"agentApiKey": "not-hex" * 5}, "agentApiKey"),
        ({"agentApiKey": "ab" * 65}, None),
        ({"hosts": []}, "hosts"),
        ({"hosts": ["ok.sim", "bad host"]}, "hosts[1]"),
        ({"hosts": [f"h{i}.sim" for i in range(1001)]}, None),
        ({"hosts": "a.sim"}, None),
        ({"name": "no/slashes"}, "name"),
        ({"extra": 1}, None),
    ],
)
def test_malformed_adoptions_are_400(
    server: ServerProcess, owner: dict[str, Any], body: dict[str, Any], field: str | None
) -> None:
    api = server.client(owner)
    good = {"groupId": new_id(), "agentApiKey": secrets.token_hex(32), "hosts": ["a.sim"]}
    r = _adopt(api, _org(owner), **(good | body))
    assert r.status_code == 400, r.text
    if field is not None:
        assert r.json()["parameters"] == [field] or field in r.json()["detail"], r.json()
    assert api.get(f"/groups/{good['groupId']}").status_code == 404


def test_an_existing_id_is_409_and_only_an_org_owner_adopts(
    server: ServerProcess, owner: dict[str, Any], adopted: tuple[httpx.Client, str, str]
) -> None:
    api, group_id, _key = adopted
    org = _org(owner)
    again = _adopt(api, org, groupId=group_id, agentApiKey=secrets.token_hex(32), hosts=["x.sim"])
    assert again.status_code == 409 and again.json()["errorCode"] == "GROUP_ALREADY_EXISTS"
    existing = api.post("/groups", json={"name": f"plain {new_id()}"}).json()["id"]
    r = _adopt(api, org, groupId=existing, agentApiKey=secrets.token_hex(32), hosts=["x.sim"])
    assert r.status_code == 409, r.text
    body = {"groupId": new_id(), "agentApiKey": secrets.token_hex(32), "hosts": ["x.sim"]}
    for role, opts in [("ORG_READ_ONLY", {}), ("GROUP_OWNER", {"group_id": existing})]:
        with server.client(server.create_key(role, **opts)) as other:
            refused = _adopt(other, org, **body)
            assert refused.status_code == 403, (role, refused.text)
    assert api.get(f"/groups/{body['groupId']}").status_code == 404
    # Deleted before it had a config of its own, the project can be adopted again.
    assert api.delete(f"/groups/{group_id}").status_code == 202
    key = secrets.token_hex(32)
    r = _adopt(api, org, groupId=group_id, agentApiKey=key, hosts=["x.sim"], name=f"again {group_id}")
    assert r.status_code == 201 and r.json()["adoptedHosts"] == ["x.sim"], r.text


def test_adoption_is_refused_while_restoration_mode_is_disabled(tmp_path: Path) -> None:
    """Its agents would be served the adopted project's empty config and stop every process."""
    server = ServerProcess(
        tmp_path / "data", free_port(), conf_keys={"mms.restorationMode.enabled": "false"}
    ).start()
    try:
        owner = server.create_key()
        with server.client(owner) as api:
            body = {"groupId": new_id(), "agentApiKey": secrets.token_hex(32), "hosts": ["a.sim"]}
            r = _adopt(api, _org(owner), **body)
            assert r.status_code == 409 and r.json()["errorCode"] == "RESTORATION_MODE_DISABLED", r.text
            assert api.get(f"/groups/{body['groupId']}").status_code == 404
    finally:
        server.stop()

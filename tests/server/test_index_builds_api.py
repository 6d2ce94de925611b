"""The unique index build routes through a real server: shapes, roles, 400/404/409, the agents' routes
carrying a build to DONE (and its entry into indexConfigs), and the automation config PUT's refusal of a
unique index, whose body says why and names the supervised procedure."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.procs import ServerProcess, wait_for

HOSTS = ["a.ix.test", "b.ix.test", "c.ix.test"]
OPTIME = 1_700_000_000 << 32
BODY = {"rsName": "rs0", "dbName": "shop", "collectionName": "orders", "key": [["orderNo", 1]]}


class Project:
    """A project whose config has one 3-member set, and whose agents report ``c.ix.test`` PRIMARY."""

    def __init__(self, server: ServerProcess, api: httpx.Client, name: str) -> None:
        self.api = api
        self.id = api.post("/groups", json={"name": name}).json()["id"]
        key = api.post(f"/groups/{self.id}/agentapikeys", json={}).json()["key"]
        self.agent = httpx.Client(base_url=server.url, auth=httpx.BasicAuth(self.id, key), timeout=10)
        r = api.put(f"/groups/{self.id}/automationConfig", json=replica_set_config(HOSTS))
        assert r.status_code == 200, r.text
        for i, host in enumerate(HOSTS):
            state = "PRIMARY" if i == 2 else "SECONDARY"
            status = {
                "cv": 1,
                "processes": [
                    {"name": f"rs0_{i}", "observed": {"replicaStateName": state, "optimeTs": OPTIME}}
                ],
            }
            assert self.agent_post("/status/v1/{g}", status, host).status_code == 200

    def agent_post(self, path: str, body: dict[str, Any], host: str = HOSTS[0]) -> httpx.Response:
        return self.agent.post(
            "/agents/api/automation" + path.format(g=self.id), json=body, params={"hostname": host}
        )

    def event(self, build_id: str, body: dict[str, Any]) -> httpx.Response:
        return self.agent_post(f"/indexBuilds/v1/{{g}}/{build_id}/events", body)

    @property
    def builds(self) -> str:
        return f"/groups/{self.id}/uniqueIndexBuilds"


@pytest.fixture
def project(
    server: ServerProcess, owner: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[Project]:
    api = server.client(owner)
    p = Project(server, api, re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:60])
    try:
        yield p
    finally:
        p.agent.close()
        api.close()


def test_build_shape_and_the_agents_carry_it_to_done(project: Project) -> None:
    r = project.api.post(project.builds, json={**BODY, "lockPrimaryWrites": False})
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["state"] == "AWAITING_CONFIRMATION" and b["members"] == ["rs0_0", "rs0_1", "rs0_2"]
    assert b["options"] == {"unique": True, "name": "orderNo_1"} and b["progress"] == {"done": 0, "total": 3}
    assert b["nextAction"]["kind"] == "WaitConfirmation" and b["reason"] is None
    assert [m["state"] for m in b["memberProgress"]] == ["PENDING"] * 3
    listed = project.api.get(project.builds).json()
    assert [x["id"] for x in listed["results"]] == [b["id"]] and listed["totalCount"] == 1

    r = project.api.post(f"{project.builds}/{b['id']}/confirm", json={"writesStopped": False})
    assert r.status_code == 400 and r.json()["parameters"]["field"] == "writesStopped"
    assert "confirming means you have stopped every write to shop.orders" in r.json()["detail"]
    r = project.api.post(
        f"{project.builds}/{b['id']}/confirm", json={"writesStopped": True, "operator": "ann"}
    )
    assert r.status_code == 200 and r.json()["state"] == "BUILDING" and r.json()["watchFromTs"] == OPTIME

    active = project.agent.get(
        f"/agents/api/automation/indexBuilds/v1/{project.id}", params={"hostname": HOSTS[0]}
    ).json()["builds"]
    assert [x["id"] for x in active] == [b["id"]] and active[0]["nextAction"]["member"] == "rs0_0"
    assert project.event(b["id"], {"type": "member_built", "member": "rs0_1"}).status_code == 409
    for m in ("rs0_0", "rs0_1", "rs0_2"):
        assert project.event(b["id"], {"type": "member_built", "member": m, "note": f"built {m}"}).is_success
    view = project.api.get(f"{project.builds}/{b['id']}").json()
    assert view["state"] == "VERIFYING" and view["activity"]["note"] == "built rs0_2"
    listing = [
        {"name": "_id_", "key": {"_id": 1}},
        {"name": "orderNo_1", "key": {"orderNo": 1}, "unique": True},
    ]
    r = project.event(b["id"], {"type": "listed", "listings": {m: listing for m in b["members"]}})
    assert r.json()["state"] == "VERIFYING", "DONE waits for an oplog sweep made while VERIFYING"
    r = project.event(
        b["id"], {"type": "oplog", "records": [], "throughTs": OPTIME + 9, "sawState": "VERIFYING"}
    )
    assert r.json()["state"] == "DONE" and not r.json()["configPending"]

    config = project.api.get(f"/groups/{project.id}/automationConfig").json()
    assert config["indexConfigs"] == [{**BODY, "options": {"unique": True, "name": "orderNo_1"}}]
    assert config["version"] == 2
    # A GET-modify-PUT round trip keeps the index the build added.
    assert project.api.put(f"/groups/{project.id}/automationConfig", json=config).status_code == 200
    assert project.api.delete(f"{project.builds}/{b['id']}").status_code == 409, (
        "a DONE build cannot be cancelled"
    )
    assert project.api.post(project.builds, json=BODY).status_code == 409, "the index is configured already"


def test_a_reported_write_aborts_and_cancel_undoes(project: Project) -> None:
    b = project.api.post(project.builds, json={**BODY, "lockPrimaryWrites": True}).json()
    assert project.api.post(project.builds, json={**BODY, "collectionName": "carts"}).status_code == 409
    project.api.post(f"{project.builds}/{b['id']}/confirm", json={"writesStopped": True})
    assert project.event(b["id"], {"type": "writes_locked"}).json()["locked"] == "rs0_2"
    project.event(b["id"], {"type": "member_built", "member": "rs0_0"})
    write = {"ts": OPTIME + 5, "op": "i", "ns": "shop.orders", "o": {"_id": 1}}
    r = project.event(b["id"], {"type": "oplog", "records": [write], "throughTs": OPTIME + 5})
    dropping = r.json()
    assert dropping["state"] == "DROPPING" and "a write to shop.orders" in dropping["reason"]
    assert dropping["toDrop"] == ["rs0_0", "rs0_1"] and dropping["nextAction"]["kind"] == "UnlockWrites"
    project.event(b["id"], {"type": "writes_unlocked"})
    for m in ("rs0_0", "rs0_1"):
        last = project.event(b["id"], {"type": "index_dropped", "member": m}).json()
    assert last["state"] == "ABORTED" and last["reason"] == dropping["reason"]

    c = project.api.post(project.builds, json={**BODY, "options": {"name": "ord"}}).json()
    cancelled = project.api.delete(f"{project.builds}/{c['id']}").json()
    assert cancelled["state"] == "ABORTED" and cancelled["reason"].startswith("cancelled by ")
    states = sorted(x["state"] for x in project.api.get(project.builds).json()["results"])
    assert states == ["ABORTED", "ABORTED"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rsName": None}, "rsName"),
        ({"rsName": "nope"}, "rsName"),
        ({"dbName": "bad.db"}, "dbName"),
        ({"key": []}, "key"),
        ({"key": [["orderNo", 2]]}, "key"),
        ({"options": {"unique": False}}, "options.unique"),
        ({"options": {"name": ""}}, "options.name"),
        ({"lockPrimaryWrites": "yes"}, "lockPrimaryWrites"),
    ],
)
def test_bad_input_names_the_field(project: Project, change: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    r = project.api.post(project.builds, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["parameters"]["field"].startswith(field), r.json()


def test_unknown_builds_roles_and_restoration_mode(server: ServerProcess, project: Project) -> None:
    assert project.api.get(f"{project.builds}/{'0' * 24}").status_code == 404
    assert (
        project.api.post(f"{project.builds}/{'0' * 24}/confirm", json={"writesStopped": True}).status_code
        == 404
    )
    assert project.api.delete(f"{project.builds}/{'0' * 24}").status_code == 404
    r = project.event("0" * 24, {"type": "member_built", "member": "rs0_0"})
    assert r.status_code == 404
    assert project.event("0" * 24, {"type": "nonsense"}).json()["parameters"]["field"] == "type"

    reader = server.client(server.create_key("GROUP_READ_ONLY", group_id=project.id))
    admin = server.client(server.create_key("GROUP_AUTOMATION_ADMIN", group_id=project.id))
    try:
        assert reader.post(project.builds, json=BODY).status_code == 403
        b = admin.post(project.builds, json=BODY)
        assert b.status_code == 201, b.text
        assert reader.get(project.builds).status_code == 200
        assert reader.get(f"{project.builds}/{b.json()['id']}").status_code == 200
        assert reader.delete(f"{project.builds}/{b.json()['id']}").status_code == 403
        assert admin.delete(f"{project.builds}/{b.json()['id']}").json()["state"] == "ABORTED"
    finally:
        reader.close()
        admin.close()
    assert httpx.get(f"{server.url}/api/public/v1.0{project.builds}").status_code == 401

    # An agent holding a newer config than the server puts the project in Restoration Mode: no new builds.
    poll = project.agent.get(
        f"/agents/api/automation/conf/v1/{project.id}", params={"hostname": HOSTS[0], "cv": 50}
    )
    assert poll.status_code in (200, 304)
    wait_for(
        lambda: project.api.get(f"/groups/{project.id}/restorationMode").json()["inRestorationMode"],
        10,
        what="Restoration Mode",
    )
    r = project.api.post(project.builds, json=BODY)
    assert r.status_code == 409 and r.json()["errorCode"] == "RESTORATION_MODE_ACTIVE"


def test_config_put_refuses_a_unique_index_and_names_the_procedure(project: Project) -> None:
    config = project.api.get(f"/groups/{project.id}/automationConfig").json()
    changed = copy.deepcopy(config)
    changed["indexConfigs"] = [{**BODY, "options": {"unique": True}}]
    r = project.api.put(f"/groups/{project.id}/automationConfig", json=changed)
    assert r.status_code == 400
    body = r.json()
    assert body["parameters"] == {"field": "indexConfigs[0].options.unique", "rule": "index-unique-rolling"}
    assert "a write accepted meanwhile can break uniqueness" in body["detail"]
    assert "POST /api/public/v1.0/groups/{groupId}/uniqueIndexBuilds" in body["detail"]
    assert "opsmgr index build-unique" in body["detail"]
    plain = copy.deepcopy(config)
    plain["indexConfigs"] = [{**BODY, "options": {"name": "orderNo_1"}}]
    assert project.api.put(f"/groups/{project.id}/automationConfig", json=plain).status_code == 200

"""The public API end to end: a real ``opsmgr server`` process, keys from the real CLI, Digest clients."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.procs import ServerProcess, wait_for


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as c:
        yield c


def new_group(api: httpx.Client, name: str) -> str:
    r = api.post("/groups", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_requests_without_credentials_get_digest_challenges(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/api/public/v1.0/groups")
    assert r.status_code == 401
    assert r.json()["error"] == 401
    challenges = r.headers.get_list("www-authenticate")
    joined = " ".join(challenges)
    assert "Digest" in joined and "MD5" in joined and "SHA-256" in joined


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_with_md5_and_sha256(server: ServerProcess, owner: dict[str, Any], algorithm: str) -> None:
    # httpx answers the first challenge it understands; offer it only the algorithm under test.
    r = httpx.get(f"{server.url}/api/public/v1.0/groups")
    only = [
        c
        for c in r.headers.get_list("www-authenticate")
        if f"algorithm={algorithm}," in c.replace('"', "") + ","
    ]
    assert only, r.headers.get_list("www-authenticate")
    auth = httpx.DigestAuth(owner["publicKey"], owner["privateKey"])
    flow = auth.sync_auth_flow(httpx.Request("GET", f"{server.url}/api/public/v1.0/groups"))
    request = next(flow)
    challenge = httpx.Response(401, headers=[("www-authenticate", only[0])], request=request)
    request = flow.send(challenge)
    assert f"algorithm={algorithm}" in request.headers["authorization"].replace('"', "")
    assert httpx.Client().send(request).status_code == 200


def test_wrong_private_key_is_401(server: ServerProcess, owner: dict[str, Any]) -> None:
    with httpx.Client(auth=httpx.DigestAuth(owner["publicKey"], "not-the-key")) as c:
        assert c.get(f"{server.url}/api/public/v1.0/groups").status_code == 401
    with httpx.Client(auth=httpx.DigestAuth("nosuchkey", owner["privateKey"])) as c:
        assert c.get(f"{server.url}/api/public/v1.0/groups").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Digest",
        "Digest username=",
        'Digest username="x", realm="y", nonce="z", uri="/", response="00"',
        "Basic !!!",
    ],
)
def test_broken_authorization_headers_are_401(server: ServerProcess, header: str) -> None:
    r = httpx.get(f"{server.url}/api/public/v1.0/groups", headers={"Authorization": header})
    assert r.status_code == 401
    assert "detail" in r.json()


def test_create_and_list_groups(api: httpx.Client) -> None:
    gid = new_group(api, "listing")
    assert len(gid) == 24
    listed = api.get("/groups").json()
    assert gid in [g["id"] for g in listed["results"]]
    assert listed["totalCount"] >= 1
    assert api.get(f"/groups/{gid}").json()["name"] == "listing"


def test_group_errors_are_json_4xx(api: httpx.Client) -> None:
    assert api.get("/groups/not-an-id").status_code == 400
    missing = api.get("/groups/0123456789abcdef01234567")
    assert missing.status_code == 404 and missing.json()["errorCode"] == "GROUP_NOT_FOUND"
    bad = api.post("/groups", json={"name": 12})
    assert bad.status_code == 400 and "name" in bad.json()["detail"]
    assert (
        api.post("/groups", content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 400
    )
    gid = new_group(api, "dupe")
    assert api.post("/groups", json={"name": "dupe"}).status_code == 409
    assert api.get(f"/groups/{gid}").status_code == 200


def test_automation_config_versions_only_on_change(api: httpx.Client) -> None:
    gid = new_group(api, "versions")
    v0 = api.get(f"/groups/{gid}/automationConfig").json()["version"]
    config = replica_set_config(["h1.example.net", "h2.example.net", "h3.example.net"])
    r = api.put(f"/groups/{gid}/automationConfig", json=config)
    assert r.status_code == 200, r.text
    v1 = r.json()["version"]
    assert v1 == v0 + 1
    same = api.put(f"/groups/{gid}/automationConfig", json={**config, "version": 999})
    assert same.json()["version"] == v1
    changed = copy.deepcopy(config)
    changed["replicaSets"][0]["members"][2]["priority"] = 2
    assert api.put(f"/groups/{gid}/automationConfig", json=changed).json()["version"] == v1 + 1
    got = api.get(f"/groups/{gid}/automationConfig").json()
    assert got["replicaSets"][0]["members"][2]["priority"] == 2


def test_invalid_automation_config_is_400_and_changes_nothing(api: httpx.Client) -> None:
    gid = new_group(api, "invalid")
    config = replica_set_config(["h1.example.net", "h2.example.net"])
    version = api.put(f"/groups/{gid}/automationConfig", json=config).json()["version"]
    broken = copy.deepcopy(config)
    broken["replicaSets"][0]["members"][1]["host"] = "nosuchprocess"
    r = api.put(f"/groups/{gid}/automationConfig", json=broken)
    assert r.status_code == 400
    body = r.json()
    assert "replicaSets[0].members[1].host" in str(body)
    assert api.get(f"/groups/{gid}/automationConfig").json()["version"] == version
    assert api.put(f"/groups/{gid}/automationConfig", json=[1, 2]).status_code == 400


def test_roles(server: ServerProcess, api: httpx.Client) -> None:
    gid = new_group(api, "roles")
    config = replica_set_config(["h1.example.net"])
    keys = {}
    for role in ("GROUP_READ_ONLY", "GROUP_AUTOMATION_ADMIN", "GROUP_BACKUP_ADMIN", "GROUP_OWNER"):
        r = api.post(f"/groups/{gid}/apiKeys", json={"desc": role, "roles": [role]})
        assert r.status_code == 201, r.text
        keys[role] = r.json()
        assert keys[role]["privateKey"] and "*" not in keys[role]["privateKey"]
    expected_put = {
        "GROUP_READ_ONLY": 403,
        "GROUP_AUTOMATION_ADMIN": 200,
        "GROUP_BACKUP_ADMIN": 403,
        "GROUP_OWNER": 200,
    }
    for role, key in keys.items():
        with server.client(key) as c:
            assert c.get(f"/groups/{gid}/automationConfig").status_code == 200, role
            assert c.put(f"/groups/{gid}/automationConfig", json=config).status_code == expected_put[role], (
                role
            )
            assert c.post(f"/groups/{gid}/agentapikeys", json={"desc": "x"}).status_code == (
                201 if role == "GROUP_OWNER" else 403
            ), role
            assert c.post("/groups", json={"name": f"by-{role}"}).status_code in (400, 403)
    other = new_group(api, "roles-other")
    with server.client(keys["GROUP_OWNER"]) as c:
        assert c.get(f"/groups/{other}").status_code == 403
        assert other not in [g["id"] for g in c.get("/groups").json()["results"]]
    listed = api.get(f"/groups/{gid}/apiKeys").json()["results"]
    assert all("*" in k["privateKey"] for k in listed), "private keys are shown once only"


def test_agent_poll_and_status(server: ServerProcess, api: httpx.Client) -> None:
    gid = new_group(api, "agents")
    key = api.post(f"/groups/{gid}/agentapikeys", json={"desc": "agents"}).json()["key"]
    version = api.put(f"/groups/{gid}/automationConfig", json=replica_set_config(["h1.example.net"])).json()[
        "version"
    ]
    conf = f"{server.url}/agents/api/automation/conf/v1/{gid}"
    first = httpx.get(conf, params={"hostname": "h1.example.net", "cv": -1}, headers=basic(gid, key))
    assert first.status_code == 200 and first.json()["version"] == version
    assert (
        httpx.get(
            conf, params={"hostname": "h1.example.net", "cv": version}, headers=basic(gid, key)
        ).status_code
        == 304
    )
    assert (
        httpx.get(
            conf, params={"hostname": "h1.example.net", "cv": 0}, headers=basic(gid, "wrong")
        ).status_code
        == 401
    )
    assert httpx.get(conf, params={"hostname": "h1.example.net", "cv": 0}).status_code == 401
    assert httpx.get(conf, params={"cv": 0}, headers=basic(gid, key)).status_code == 400
    status = {
        "hostname": "h1.example.net",
        "cv": version,
        "lastGoalVersionAchieved": version,
        "statusSentence": "goal state",
        "processes": [
            {
                "name": "rs0_0",
                "lastGoalVersionAchieved": version,
                "plan": [],
                "observed": {
                    "running": True,
                    "port": 27017,
                    "replicaSetName": "rs0",
                    "replicaStateName": "PRIMARY",
                },
            }
        ],
    }
    r = httpx.post(
        f"{server.url}/agents/api/automation/status/v1/{gid}",
        params={"hostname": "h1.example.net"},
        json=status,
        headers=basic(gid, key),
    )
    assert r.status_code == 200, r.text
    auto = api.get(f"/groups/{gid}/automationStatus").json()
    assert auto["goalVersion"] == version
    assert auto["processes"][0]["lastGoalVersionAchieved"] == version
    hosts = api.get(f"/groups/{gid}/hosts").json()["results"]
    assert hosts[0]["replicaStateName"] == "PRIMARY" and hosts[0]["port"] == 27017


def test_operability_endpoints(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/health/live").status_code == 200
    assert httpx.get(f"{server.url}/health/ready").json()["status"] == "OK"
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/api/public/v1.0/groups/{group_id}/automationConfig" in spec["paths"]
    r = httpx.get(f"{server.url}/health/live", headers={"X-Request-Id": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'opsmgr_http_requests_total{method="GET",route="/health/live",status="200"}' in metrics


def test_huge_body_is_413(api: httpx.Client) -> None:
    r = api.post("/groups", content=b"x" * (9 * 1024 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_server_log_has_request_ids(server: ServerProcess) -> None:
    httpx.get(f"{server.url}/health/live", headers={"X-Request-Id": "trace-me-42"})
    # The access log line is written once the answer has gone out: poll the log for it.
    wait_for(
        lambda: '"requestId": "trace-me-42"' in server.log(), 10, what="the request id in the server log"
    )


def test_a_new_project_answers_its_first_agent_api_key(server: Any, owner: dict[str, Any]) -> None:
    """Ops Manager's POST /groups carries the project's first agent API key (``agentApiKey``); provisioning
    scripts hand it to the agents. It is a key of the project the agent API takes, listed masked after."""
    api = server.client(owner)
    made = api.post("/groups", json={"name": "with-agent-key"})
    assert made.status_code == 201
    body = made.json()
    key = body["agentApiKey"]
    assert isinstance(key, str) and len(key) == 64
    listed = api.get(f"/groups/{body['id']}/agentapikeys").json()
    assert [k["key"] for k in listed] == [f"********{key[-8:]}"]
    poll = httpx.get(
        f"{server.url}/agents/api/automation/conf/v1/{body['id']}",
        params={"hostname": "h.sim", "cv": "-1"},
        auth=(body["id"], key),
    )
    assert poll.status_code in (200, 304), poll.text
    assert "agentApiKey" not in api.get(f"/groups/{body['id']}").json(), "shown once, at creation"


def test_a_project_is_found_by_name_only_by_keys_that_may_read_it(
    server: ServerProcess, api: httpx.Client
) -> None:
    # A project named like a sub-resource of /groups/{id}/ is still found by name.
    gid = new_group(api, "hosts")
    found = api.get("/groups/byName/hosts")
    assert found.status_code == 200 and found.json()["id"] == gid and found.json()["name"] == "hosts"
    missing = api.get("/groups/byName/no-such-project")
    assert missing.status_code == 404 and missing.json()["errorCode"] == "GROUP_NAME_NOT_FOUND"
    assert api.get("/groups/byName/" + "x" * 5000).status_code in (404, 414, 400)
    # A key of one project does not learn that another project of that name exists.
    other = new_group(api, "by-name-other")
    reader = api.post(f"/groups/{gid}/apiKeys", json={"desc": "r", "roles": ["GROUP_READ_ONLY"]}).json()
    with server.client(reader) as c:
        assert c.get("/groups/byName/hosts").json()["id"] == gid
        hidden = c.get("/groups/byName/by-name-other")
        assert hidden.status_code == 404 and other not in hidden.text


def test_organizations_are_filtered_by_name(api: httpx.Client) -> None:
    orgs = api.get("/orgs").json()["results"]
    name = orgs[0]["name"]
    assert [o["id"] for o in api.get("/orgs", params={"name": name}).json()["results"]] == [orgs[0]["id"]]
    none = api.get("/orgs", params={"name": "no such organization"}).json()
    assert none["results"] == [] and none["totalCount"] == 0
    assert api.get("/orgs", params={"name": "x" * 100}).status_code == 400


def test_backup_configs_and_all_clusters_list_only_what_the_key_may_read(
    server: ServerProcess, api: httpx.Client
) -> None:
    gid = new_group(api, "all-clusters")
    config = replica_set_config(["ac1.example.net", "ac2.example.net", "ac3.example.net"], rs="acrs")
    assert api.put(f"/groups/{gid}/automationConfig", json=config).status_code == 200
    configs = api.get(f"/groups/{gid}/backupConfigs").json()
    # Never started is INACTIVE in Ops Manager's words, as is a terminated backup; STOPPED keeps snapshots.
    assert configs["totalCount"] == 1 and configs["results"][0]["statusName"] == "INACTIVE"
    cluster_id = configs["results"][0]["clusterId"]
    for asked, then in (("STARTED", "STARTED"), ("STOPPED", "STOPPED"), ("TERMINATING", "INACTIVE")):
        r = api.patch(f"/groups/{gid}/backupConfigs/{cluster_id}", json={"statusName": asked})
        assert r.status_code == 200 and r.json()["statusName"] == then, r.text
    refused = api.patch(f"/groups/{gid}/backupConfigs/{cluster_id}", json={"statusName": "INACTIVE"})
    assert refused.status_code == 400 and "statusName" in refused.json()["detail"]
    assert cluster_id == api.get(f"/groups/{gid}/clusters").json()["results"][0]["id"]

    everything = api.get("/clusters").json()
    mine = next(p for p in everything["results"] if p["groupId"] == gid)
    assert mine["groupName"] == "all-clusters" and mine["orgId"] and mine["orgName"]
    (cluster,) = mine["clusters"]
    assert cluster == {
        "clusterId": cluster_id,
        "name": "acrs",
        "type": "REPLICA_SET",
        "versions": ["7.0.5"],
        "nodeCount": 3,
        "availability": "dead",  # no agent runs its members
        "alertCount": 0,
        "dataSizeBytes": 0,
        "backupEnabled": False,
        "authEnabled": False,
        "sslEnabled": False,
    }
    # A key of another project sees neither the project's clusters nor its backup configurations.
    other = new_group(api, "all-clusters-other")
    outsider = api.post(f"/groups/{other}/apiKeys", json={"desc": "o", "roles": ["GROUP_OWNER"]}).json()
    with server.client(outsider) as c:
        assert [p["groupId"] for p in c.get("/clusters").json()["results"]] == [other]
        assert c.get(f"/groups/{gid}/backupConfigs").status_code == 403
    assert api.get("/clusters", params={"itemsPerPage": 0}).status_code == 400


def test_missing_resources_answer_with_ops_managers_error_codes(api: httpx.Client) -> None:
    gid = new_group(api, "error-codes")
    config = replica_set_config(["ec1.example.net", "ec2.example.net", "ec3.example.net"], rs="ecrs")
    assert api.put(f"/groups/{gid}/automationConfig", json=config).status_code == 200
    cid = api.get(f"/groups/{gid}/clusters").json()["results"][0]["id"]
    assert api.patch(f"/groups/{gid}/backupConfigs/{cid}", json={"statusName": "STARTED"}).status_code == 200
    missing = "0123456789abcdef01234567"
    for path, code in (
        (f"/groups/{missing}", "GROUP_NOT_FOUND"),
        ("/groups/byName/no-such-project", "GROUP_NAME_NOT_FOUND"),
        (f"/groups/{gid}/clusters/{missing}", "CLUSTER_NOT_FOUND"),
        (f"/groups/{gid}/clusters/{cid}/snapshots/{missing}", "SNAPSHOT_NOT_FOUND"),
        (f"/groups/{gid}/clusters/{cid}/restoreJobs/{missing}", "RESTORE_JOB_NOT_FOUND"),
        (f"/groups/{gid}/alerts/{missing}", "ALERT_NOT_FOUND"),
    ):
        r = api.get(path)
        assert (r.status_code, r.json()["errorCode"]) == (404, code), (path, r.text)

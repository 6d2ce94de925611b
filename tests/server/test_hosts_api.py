"""The hosts and agents resources end to end: a real server, real agents on a sim replica set, Digest
clients with keys of each role."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.deployments import Deployment, replica_set_at_goal
from tests.procs import ServerProcess

HOSTS = ["a.hosts.sim", "b.hosts.sim", "c.hosts.sim"]
TYPES = ("AUTOMATION", "MONITORING", "BACKUP")
BOOLEANS = (
    "hostEnabled",
    "alertsEnabled",
    "journalingEnabled",
    "deactivated",
    "hidden",
    "hiddenSecondary",
    "lowUlimit",
    "sslEnabled",
    "logsEnabled",
    "profilerEnabled",
)
STRINGS = ("id", "groupId", "hostname", "clusterId", "typeName", "replicaSetName", "replicaStateName")


@pytest.fixture(scope="module")
def deployment(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with replica_set_at_goal(server, owner, tmp_path_factory.mktemp("hosts"), "hosts", HOSTS) as d:
        yield d


@pytest.fixture(scope="module")
def reader(server: ServerProcess, deployment: Deployment) -> Iterator[httpx.Client]:
    r = deployment.api.post(
        f"/groups/{deployment.group_id}/apiKeys", json={"desc": "reader", "roles": ["GROUP_READ_ONLY"]}
    )
    assert r.status_code == 201, r.text
    with server.client(r.json()) as c:
        yield c


def _iso(value: Any) -> datetime:
    assert isinstance(value, str) and value.endswith("Z"), value
    return datetime.fromisoformat(value)


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = dict(r.json())
    assert body["error"] == status and body["errorCode"] == code and body["detail"], body
    return body


def test_hosts_have_ops_managers_fields_and_types(reader: httpx.Client, deployment: Deployment) -> None:
    gid = deployment.group_id
    page = reader.get(f"/groups/{gid}/hosts").json()
    assert page["totalCount"] == 3 and page["links"][0]["rel"] == "self"
    hosts = page["results"]
    cluster_id = reader.get(f"/groups/{gid}/clusters").json()["results"][0]["id"]
    assert [(h["hostname"], h["port"]) for h in hosts] == sorted((h, 27017) for h in HOSTS)
    for h in hosts:
        assert re.fullmatch(r"[0-9a-f]{32}", h["id"]), h["id"]
        assert all(isinstance(h[k], str) for k in STRINGS), h
        assert all(isinstance(h[k], bool) for k in BOOLEANS), h
        assert all(type(h[k]) is int for k in ("port", "slaveDelaySec")), h
        assert h["groupId"] == gid and h["clusterId"] == cluster_id and h["replicaSetName"] == "rs0"
        assert _iso(h["created"]) <= _iso(h["lastPing"])
        assert h["authMechanismName"] == "NONE" and h["version"] == "7.0.5"
        assert h["links"] == [
            {"href": f"{deployment.server.url}/api/public/v1.0/groups/{gid}/hosts/{h['id']}", "rel": "self"}
        ]
        assert h["processName"] and h["running"] is True  # opsmgr's own fields stay
    assert sorted(h["typeName"] for h in hosts) == [
        "REPLICA_PRIMARY",
        "REPLICA_SECONDARY",
        "REPLICA_SECONDARY",
    ]
    again = {h["id"]: h["created"] for h in reader.get(f"/groups/{gid}/hosts").json()["results"]}
    assert again == {h["id"]: h["created"] for h in hosts}, "a host's id and created stay"


def test_cluster_id_filters_the_list(reader: httpx.Client, deployment: Deployment) -> None:
    gid = deployment.group_id
    cluster_id = reader.get(f"/groups/{gid}/clusters").json()["results"][0]["id"]
    found = reader.get(f"/groups/{gid}/hosts", params={"clusterId": cluster_id}).json()
    assert found["totalCount"] == 3 and {h["clusterId"] for h in found["results"]} == {cluster_id}
    none = reader.get(f"/groups/{gid}/hosts", params={"clusterId": "f" * 24}).json()
    assert none["totalCount"] == 0 and none["results"] == []
    _error(reader.get(f"/groups/{gid}/hosts", params={"clusterId": "x" * 65}), 400, "INVALID_ATTRIBUTE")
    paged = reader.get(f"/groups/{gid}/hosts", params={"itemsPerPage": 2, "pageNum": 2}).json()
    assert paged["totalCount"] == 3 and len(paged["results"]) == 1


def test_one_host_by_id_and_by_name(reader: httpx.Client, deployment: Deployment) -> None:
    gid = deployment.group_id
    listed = reader.get(f"/groups/{gid}/hosts").json()["results"][1]
    by_id = reader.get(f"/groups/{gid}/hosts/{listed['id']}").json()
    by_name = reader.get(f"/groups/{gid}/hosts/byName/{listed['hostname'].upper()}:{listed['port']}").json()
    for host in (by_id, by_name):
        assert (host["id"], host["hostname"], host["port"]) == (listed["id"], listed["hostname"], 27017)
        assert host["clusterId"] == listed["clusterId"] and _iso(host["lastPing"])
    _error(reader.get(f"/groups/{gid}/hosts/{'0' * 32}"), 404, "HOST_NOT_FOUND")
    _error(
        reader.get(f"/groups/{gid}/hosts/byName/{listed['hostname']}:27018"),
        404,
        "HOSTNAME_AND_PORT_NOT_FOUND",
    )
    _error(reader.get(f"/groups/{gid}/hosts/byName/nowhere.sim:27017"), 404, "HOSTNAME_AND_PORT_NOT_FOUND")
    for bad in ("no-port", "a.hosts.sim:", "a.hosts.sim:99999", ":27017", "a.hosts.sim:2x"):
        _error(reader.get(f"/groups/{gid}/hosts/byName/{bad}"), 400, "INVALID_ATTRIBUTE")
    _error(reader.get(f"/groups/{gid}/hosts/byName/{'h' * 400}:27017"), 400, "INVALID_ATTRIBUTE")
    _error(reader.get(f"/groups/{gid}/hosts/{'x' * 5000}"), 404, "HOST_NOT_FOUND")


def test_agents_by_type(reader: httpx.Client, deployment: Deployment) -> None:
    gid = deployment.group_id
    links = reader.get(f"/groups/{gid}/agents").json()
    assert links["results"] == [] and links["totalCount"] == 0
    assert {link["href"].rsplit("/", 1)[-1] for link in links["links"][2:]} == set(TYPES)
    assert links["links"][0] == {
        "href": f"{deployment.server.url}/api/public/v1.0/groups/{gid}/agents",
        "rel": "self",
    }
    for type_name in TYPES:
        page = reader.get(f"/groups/{gid}/agents/{type_name}").json()
        assert page["totalCount"] == 3 and [a["hostname"] for a in page["results"]] == HOSTS
        for agent in page["results"]:
            assert agent["typeName"] == type_name and agent["stateName"] == "ACTIVE"
            assert _iso(agent["lastConf"]) == _iso(agent["lastPing"])
            assert type(agent["confCount"]) is int and type(agent["pingCount"]) is int
            assert agent["isManaged"] is (type_name != "AUTOMATION") and agent["tag"] is None


@pytest.mark.parametrize("bad", ["automation", "VERSIONS_X", "DAEMON", "A" * 65])
def test_an_unknown_agent_type_is_400_naming_the_types(
    reader: httpx.Client, deployment: Deployment, bad: str
) -> None:
    r = reader.get(f"/groups/{deployment.group_id}/agents/{bad}")
    if len(bad) > 64:
        _error(r, 400, "INVALID_ATTRIBUTE")
        return
    body = _error(r, 400, "INVALID_AGENT_TYPE_NAME")
    assert all(t in body["detail"] and t in str(body["parameters"]) for t in TYPES), body


def test_an_agent_whose_host_left_the_config_has_no_processes(
    server: ServerProcess, owner: dict[str, Any]
) -> None:
    with server.client(owner) as api:
        gid = api.post("/groups", json={"name": "agents-left"}).json()["id"]
        key = api.post(f"/groups/{gid}/agentapikeys", json={"desc": "a"}).json()["key"]
        assert (
            api.put(f"/groups/{gid}/automationConfig", json=replica_set_config(["old.left.sim"])).status_code
            == 200
        )
        auth = {"Authorization": "Basic " + base64.b64encode(f"{gid}:{key}".encode()).decode()}
        r = httpx.post(
            f"{server.url}/agents/api/automation/status/v1/{gid}",
            params={"hostname": "old.left.sim"},
            json={"hostname": "old.left.sim", "processes": []},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        assert api.get(f"/groups/{gid}/agents/AUTOMATION").json()["results"][0]["stateName"] == "ACTIVE"
        assert (
            api.put(f"/groups/{gid}/automationConfig", json=replica_set_config(["new.left.sim"])).status_code
            == 200
        )
        agents = api.get(f"/groups/{gid}/agents/MONITORING").json()["results"]
        assert [(a["hostname"], a["stateName"]) for a in agents] == [("old.left.sim", "NO_PROCESSES")]
        assert api.get(f"/groups/{gid}/hosts").json()["totalCount"] == 0  # it reports no process


def test_other_projects_keys_are_refused(server: ServerProcess, deployment: Deployment) -> None:
    gid = deployment.group_id
    other = deployment.api.post("/groups", json={"name": "hosts-other"}).json()["id"]
    r = deployment.api.post(f"/groups/{other}/apiKeys", json={"desc": "o", "roles": ["GROUP_OWNER"]})
    host_id = deployment.hosts()[0]["id"]
    with server.client(r.json()) as c:
        for path in (
            "hosts",
            f"hosts/{host_id}",
            f"hosts/byName/{HOSTS[0]}:27017",
            "agents",
            "agents/BACKUP",
        ):
            # Ops Manager's code for a key with no role in the project (it answers 401; opsmgr 403).
            _error(c.get(f"/groups/{gid}/{path}"), 403, "NOT_IN_GROUP")


def test_read_only_reads_and_nothing_here_writes(reader: httpx.Client, deployment: Deployment) -> None:
    gid = deployment.group_id
    for path in ("hosts", "agents", "agents/AUTOMATION"):
        assert reader.get(f"/groups/{gid}/{path}").status_code == 200
    host_id = deployment.hosts()[0]["id"]
    for path in ("hosts", f"hosts/{host_id}", "agents/AUTOMATION"):
        _error(reader.post(f"/groups/{gid}/{path}", json={}), 405, "METHOD_NOT_ALLOWED")

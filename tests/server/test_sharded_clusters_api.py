"""A sharded cluster through a real server: the PUT of its automation config (refused, with nothing changed,
when a rule breaks or the input is hostile), then its agents' status reports posted over HTTP, and what the
public API lists of it as Ops Manager does: ``/clusters`` (the sharded cluster, its shards' and config
server's replica sets), ``/hosts`` (type names, shard names, cluster ids), ``automationStatus`` (every
process, mongos included) and the project's host counts. Refused roles and other projects' keys too."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr.automation.sharding import MAX_SHARDS
from opsmgr.automation.templates import sharded_cluster_config
from tests.agent_protocol import AgentProject, FakeAgent
from tests.contract.test_contract import Case
from tests.procs import ServerProcess

HOSTS = ["a.shard.sim", "b.shard.sim", "c.shard.sim"]
# Each member's state as its agent reports it (the first host's members are the primaries).
STATES = {0: "PRIMARY", 1: "SECONDARY", 2: "SECONDARY"}


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as c:
        yield c


@pytest.fixture(scope="module")
def project(server: ServerProcess, api: httpx.Client) -> Iterator[AgentProject]:
    made = AgentProject(server.url, api, "sharded", sharded_cluster_config(HOSTS, routers=2))
    agents = [FakeAgent(server.url, made.gid, made.agent_key, host) for host in HOSTS]
    try:
        for i, agent in enumerate(agents):
            assert agent.poll() == 200
            body = agent.status()
            for entry in body["processes"]:
                entry["observed"] = _observed(entry["name"], i)
            r = agent.post_status(body)
            assert r.status_code == 200, r.text
        yield made
    finally:
        for agent in agents:
            agent.http.close()
        made.agent.close()


def _observed(name: str, i: int) -> dict[str, Any]:
    """What a driver reports of process ``name`` on the i-th host: a mongos runs with no replica set."""
    observed: dict[str, Any] = {"running": True, "version": "7.0.5", "hostname": HOSTS[i]}
    if name.startswith("mongos"):
        return observed | {"mode": "mongos", "port": 27017}
    rs = name.rpartition("_")[0]
    port = 27018 if rs == "csrs" else 27019 + int(rs.removeprefix("sh"))
    return observed | {"mode": "replset", "port": port, "replicaSetName": rs, "replicaStateName": STATES[i]}


def _ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()


def _follows(schema: str, body: Any, *, listed: bool = False) -> None:
    """``body`` follows the contract's schema of Ops Manager's answer (tests/contract/schemas)."""
    errors = [
        f"{e.json_path}: {e.message}" for e in Case("get", "/", schema, listed).validator().iter_errors(body)
    ]
    assert not errors, errors


def test_clusters_list_the_sharded_cluster_its_shards_and_config_servers(
    api: httpx.Client, project: AgentProject
) -> None:
    gid = project.gid
    page = _ok(api.get(f"/groups/{gid}/clusters"))
    _follows("cluster", page, listed=True)
    clusters = page["results"]
    shape = [(c["typeName"], c["clusterName"], c.get("replicaSetName"), c.get("shardName")) for c in clusters]
    assert shape == [
        ("SHARDED_REPLICA_SET", "c1", None, None),
        ("CONFIG_SERVER_REPLICA_SET", "c1", "csrs", None),
        ("REPLICA_SET", "c1", "sh0", "sh0"),
        ("REPLICA_SET", "c1", "sh1", "sh1"),
    ]
    assert len({c["id"] for c in clusters}) == 4 and all("lastHeartbeat" in c for c in clusters)
    for cluster in clusters:
        one = _ok(api.get(f"/groups/{gid}/clusters/{cluster['id']}"))
        assert one == cluster and one["links"][0]["href"].endswith(f"/clusters/{cluster['id']}")
    again = _ok(api.get(f"/groups/{gid}/clusters"))["results"]
    assert [c["id"] for c in again] == [c["id"] for c in clusters], "cluster ids are stable"
    everything = _ok(api.get("/clusters"))
    _follows("cluster#/$defs/allProjects", everything, listed=True)
    (mine,) = [p["clusters"] for p in everything["results"] if p["groupId"] == gid]
    (sharded,) = mine
    assert sharded["type"] == "SHARDED_REPLICA_SET" and sharded["clusterId"] == clusters[0]["id"]
    assert sharded["nodeCount"] == 11 and sharded["availability"] == "available"


def test_hosts_carry_ops_managers_sharded_types(api: httpx.Client, project: AgentProject) -> None:
    gid = project.gid
    clusters = {c.get("replicaSetName", "c1"): c["id"] for c in _clusters(api, gid)}
    page = _ok(api.get(f"/groups/{gid}/hosts"))
    _follows("host", page, listed=True)
    hosts = page["results"]
    assert len(hosts) == 11
    by_name = {h["processName"]: h for h in hosts}
    for j in range(2):
        mongos = by_name[f"mongos_{j}"]
        assert mongos["typeName"] == "SHARD_MONGOS" and mongos["clusterId"] == clusters["c1"]
        assert "replicaSetName" not in mongos and "replicaStateName" not in mongos
        assert "shardName" not in mongos
    for i, state in STATES.items():
        config = by_name[f"csrs_{i}"]
        assert config["typeName"] == f"SHARD_CONFIG_{state}" and config["clusterId"] == clusters["csrs"]
        assert config["replicaSetName"] == "csrs" and "shardName" not in config
        for rs in ("sh0", "sh1"):
            member = by_name[f"{rs}_{i}"]
            assert member["typeName"] == f"SHARD_{state}" and member["shardName"] == rs
            assert member["clusterId"] == clusters[rs] and member["replicaSetName"] == rs
    of_cluster = _ok(api.get(f"/groups/{gid}/hosts", params={"clusterId": clusters["c1"]}))
    assert of_cluster["totalCount"] == 11
    of_shard = _ok(api.get(f"/groups/{gid}/hosts", params={"clusterId": clusters["sh1"]}))
    assert {h["processName"] for h in of_shard["results"]} == {f"sh1_{i}" for i in range(3)}


def _clusters(api: httpx.Client, gid: str) -> list[dict[str, Any]]:
    return list(_ok(api.get(f"/groups/{gid}/clusters"))["results"])


def test_automation_status_and_counts_include_every_process(api: httpx.Client, project: AgentProject) -> None:
    gid = project.gid
    status = _ok(api.get(f"/groups/{gid}/automationStatus"))
    _follows("automation_status", status)
    names = {p["name"] for p in status["processes"]}
    assert {"mongos_0", "mongos_1", "csrs_0", "sh1_2"} <= names and len(names) == 11
    assert all(p["lastGoalVersionAchieved"] == project.version for p in status["processes"])
    counts = _ok(api.get(f"/groups/{gid}"))
    _follows("project", counts)
    assert counts["hostCounts"]["mongos"] == 2 and counts["hostCounts"]["config"] == 3
    assert counts["shardCount"] == 2 and counts["replicaSetCount"] == 3


def _refused(api: httpx.Client, gid: str, body: Any, field: str, rule: str) -> None:
    before = _ok(api.get(f"/groups/{gid}/automationConfig"))
    r = api.put(f"/groups/{gid}/automationConfig", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["parameters"] == {"field": field, "rule": rule}, r.text
    assert _ok(api.get(f"/groups/{gid}/automationConfig")) == before, "a refused PUT changes nothing"


def test_a_broken_sharded_config_is_refused_naming_the_field(
    api: httpx.Client, project: AgentProject
) -> None:
    gid = project.gid
    good = _ok(api.get(f"/groups/{gid}/automationConfig"))
    at = {p["name"]: i for i, p in enumerate(good["processes"])}
    no_role = copy.deepcopy(good)
    del no_role["processes"][at["sh1_0"]]["args2_6"]["sharding"]
    _refused(
        api,
        gid,
        no_role,
        f"processes[{at['sh1_0']}].args2_6.sharding.clusterRole",
        "replset-cluster-role",
    )
    twice = copy.deepcopy(good)
    twice["sharding"][0]["shards"][1]["rs"] = "sh0"
    _refused(api, gid, twice, "sharding[0].shards[1].rs", "sharding-replset-once")
    draining = copy.deepcopy(good)
    draining["sharding"][0]["draining"] = ["sh7"]
    _refused(api, gid, draining, "sharding[0].draining[0]", "sharding-draining")
    key = copy.deepcopy(good)
    key["sharding"][0]["collections"] = [{"_id": "shop.orders", "key": [["customer", -1]]}]
    _refused(api, gid, key, "sharding[0].collections[0].key[0]", "shard-key")
    storage = copy.deepcopy(good)
    storage["processes"][at["mongos_0"]]["args2_6"]["storage"] = {"dbPath": "/data/m"}
    _refused(api, gid, storage, f"processes[{at['mongos_0']}].args2_6.storage.dbPath", "mongos-options")


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"sharding": "c1"}, "sharding", "type"),
        ({"sharding": [["c1"]]}, "sharding[0]", "type"),
        ({"sharding": [{"name": {"$ne": 1}}]}, "sharding[0].name", "sharding-name-unique"),
        (
            {"sharding": [{"name": "c1", "configServerReplica": "csrs", "shards": {"_id": "sh0"}}]},
            "sharding[0].shards",
            "type",
        ),
        (
            {
                "sharding": [
                    {
                        "name": "c1",
                        "configServerReplica": "csrs",
                        "shards": [{"_id": f"s{i}", "rs": "sh0"} for i in range(MAX_SHARDS + 1)],
                    }
                ]
            },
            "sharding[0].shards",
            "max-shards",
        ),
        (
            {"sharding": [{"name": "c1", "configServerReplica": "nowhere"}]},
            "sharding[0].configServerReplica",
            "sharding-replset",
        ),
    ],
    ids=["not-array", "not-object", "operator-name", "shards-object", "too-many-shards", "unknown-rs"],
)
def test_hostile_sharding_input_is_a_400_never_a_5xx(
    api: httpx.Client, project: AgentProject, change: dict[str, Any], field: str, rule: str
) -> None:
    good = _ok(api.get(f"/groups/{project.gid}/automationConfig"))
    _refused(api, project.gid, good | change, field, rule)


def test_refused_roles_and_other_projects(
    server: ServerProcess, api: httpx.Client, project: AgentProject
) -> None:
    gid = project.gid
    made = api.post(f"/groups/{gid}/apiKeys", json={"desc": "ro", "roles": ["GROUP_READ_ONLY"]})
    assert made.status_code == 201, made.text
    other = api.post("/groups", json={"name": "sharded-other"}).json()["id"]
    outsider = api.post(f"/groups/{other}/apiKeys", json={"desc": "o", "roles": ["GROUP_OWNER"]}).json()
    config = _ok(api.get(f"/groups/{gid}/automationConfig"))
    sharded_id = _clusters(api, gid)[0]["id"]
    with server.client(made.json()) as reader, server.client(outsider) as stranger:
        assert reader.get(f"/groups/{gid}/clusters/{sharded_id}").status_code == 200
        assert reader.put(f"/groups/{gid}/automationConfig", json=config).status_code == 403
        for path in ("clusters", f"clusters/{sharded_id}", "hosts", f"hosts?clusterId={sharded_id}"):
            r = stranger.get(f"/groups/{gid}/{path}")
            assert r.status_code == 403 and r.json()["detail"], (path, r.text)
        assert stranger.put(f"/groups/{gid}/automationConfig", json=config).status_code == 403
        # Its own project knows no such cluster: an id is not a key to another project's.
        r = stranger.get(f"/groups/{other}/clusters/{sharded_id}")
        assert r.status_code == 404 and r.json()["errorCode"] == "CLUSTER_NOT_FOUND"
    for forged in ("x" * 300, "../../clusters", "%00"):
        r = api.get(f"/groups/{gid}/clusters/{forged}")
        assert 400 <= r.status_code < 500 and r.json()["detail"], (forged, r.text)
    r = api.get(f"/groups/{gid}/hosts", params={"clusterId": "x" * 100})
    assert r.status_code == 400 and r.json()["detail"]


def test_the_published_python_client_reads_the_sharded_cluster(
    server: ServerProcess, owner: dict[str, Any], project: AgentProject
) -> None:
    with server.ops_manager_client(owner) as om:
        clusters = om.clusters.list(project.gid)
        (sharded,) = [c for c in clusters if c.is_sharded]
        assert sharded.cluster_name == "c1" and sharded.replica_set_name is None
        config_server = next(c for c in clusters if c.type_name.value == "CONFIG_SERVER_REPLICA_SET")
        assert config_server.replica_set_name == "csrs" and config_server.cluster_name == "c1"
        assert {c.shard_name for c in clusters} == {None, "sh0", "sh1"}
        routers = om.deployments.get_mongos_hosts(project.gid, cluster_id=sharded.id)
        assert sorted((h.hostname, h.port) for h in routers) == [(HOSTS[0], 27017), (HOSTS[1], 27017)]
        assert all(h.cluster_id == sharded.id and h.replica_set_name is None for h in routers)

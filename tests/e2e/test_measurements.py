"""Host measurements end to end: a real server, three real agents (0.2 s polls) on a sim replica set, and
``GET /groups/{id}/hosts/{hostId}/measurements``: every process has measurements within a few poll
intervals; the primary's opcounter rate is ~0 while the set is idle and follows the write load once the
application writes (the secondaries take no client writes); connections count the load's clients; and the
route refuses what Ops Manager refuses, and other projects' keys, with JSON errors. The host's disk partition
and databases (``.../disks``, ``.../databases``) appear with their measurements, a database's object count
follows the writes, and their routes refuse unknown or forged names and other projects' keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from opsmgr.sim.measure import DISK_BYTES, PARTITION
from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment, replica_set_at_goal
from tests.e2e.simbackup import set_load
from tests.procs import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

HOSTS = ["m0.meas.sim", "m1.meas.sim", "m2.meas.sim"]
WRITES = ("OPCOUNTER_INSERT", "OPCOUNTER_UPDATE", "OPCOUNTER_DELETE")
CLIENTS = 6


@pytest.fixture(scope="module")
def deployment(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("meas")
    with replica_set_at_goal(server, owner, root, "meas", HOSTS, replica_set_config(HOSTS)) as d:
        yield d


def _measurements(d: Deployment, host_id: str, *names: str, **query: str | None) -> dict[str, Any]:
    asked = {"granularity": "PT1M", "period": "PT5M", **query}
    params: dict[str, Any] = {k: v for k, v in asked.items() if v is not None} | {"m": list(names)}
    r = d.api.get(f"/groups/{d.group_id}/hosts/{host_id}/measurements", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _latest(d: Deployment, host_id: str, *names: str) -> dict[str, float] | None:
    """Each measurement's newest non-null point, or None while one has none yet."""
    latest = {}
    for m in _measurements(d, host_id, *names)["measurements"]:
        values = [p["value"] for p in m["dataPoints"] if p["value"] is not None]
        if not values:
            return None
        latest[m["name"]] = values[-1]
    return latest


def _write_rate(d: Deployment, host_id: str) -> float | None:
    latest = _latest(d, host_id, *WRITES)
    return sum(latest.values()) if latest is not None else None


def test_measurements_appear_and_follow_the_write_load(deployment: Deployment) -> None:
    d = deployment
    hosts = {h["hostname"]: h for h in d.hosts()}
    names = (
        "CONNECTIONS",
        "OPLOG_MASTER_TIME",
        "MEMORY_RESIDENT",
        "TICKETS_AVAILABLE_WRITE",
        "DISK_PARTITION_SPACE_FREE",
        *WRITES,
    )
    for h in hosts.values():  # within a few 0.2 s poll intervals of reaching goal (load: a few seconds)
        wait_for(lambda h=h: _latest(d, h["id"], *names) is not None, 10, interval=0.2, what=h["hostname"])
    answer = _measurements(d, hosts[HOSTS[0]]["id"], *names)
    assert (answer["groupId"], answer["granularity"]) == (d.group_id, "PT1M")
    assert answer["processId"] == f"{HOSTS[0]}:27017" and answer["links"][0]["rel"] == "self"
    units = {m["name"]: m["units"] for m in answer["measurements"]}
    assert units["OPCOUNTER_INSERT"] == "SCALAR_PER_SECOND" and units["OPLOG_MASTER_TIME"] == "HOURS"
    assert len(answer["measurements"][0]["dataPoints"]) in (5, 6)  # one per minute of the period

    primary = next(h for h in hosts.values() if h["replicaStateName"] == "PRIMARY")
    secondaries = [h for h in hosts.values() if h is not primary]
    assert (_write_rate(d, primary["id"]) or 0.0) < 0.5, "an idle set takes no client writes"

    world = SimWorld.open(d.root / "world.sqlite")
    try:
        set_load(world, HOSTS, "rs0", WriteLoad(rate=50, keys=5000, payload_bytes=32, clients=CLIENTS))
        rate = wait_for(
            lambda: (r := _write_rate(d, primary["id"])) is not None and r > 5 and r, 20, interval=0.3
        )
        assert rate < 80, rate  # the load writes 50 per second
        # the load's clients hold connections on the primary only (the sim's idle set may hold others)
        assert (_latest(d, primary["id"], "CONNECTIONS") or {}).get("CONNECTIONS", 0) > 0
        for h in secondaries:
            assert (_write_rate(d, h["id"]) or 0.0) < 0.5, h["hostname"]
            assert _latest(d, h["id"], "CONNECTIONS") == {"CONNECTIONS": 0.0}, h["hostname"]
    finally:
        set_load(world, HOSTS, "rs0", WriteLoad(rate=0))
        world.close()


def test_hour_granularity_and_a_start_and_end(deployment: Deployment) -> None:
    d = deployment
    host = d.hosts()[0]
    now = datetime.now().astimezone()
    span = {"start": (now - timedelta(hours=2)).isoformat(), "end": now.isoformat()}
    answer = _measurements(d, host["id"], "CONNECTIONS", granularity="PT1H", period=None, **span)
    points = answer["measurements"][0]["dataPoints"]
    assert len(points) in (2, 3) and all(p["timestamp"].endswith(":00:00Z") for p in points)
    wait_for(
        lambda: (
            _measurements(d, host["id"], "CONNECTIONS", granularity="PT1H", period="P1D")["measurements"][0][
                "dataPoints"
            ][-1]["value"]
            is not None
        ),
        10,
        interval=0.2,
    )


def _error(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == status and body["detail"], body
    assert code is None or body["errorCode"] == code, body


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"granularity": "PT7M", "period": "PT1H"}, "INVALID_GRANULARITY"),
        ({"granularity": "PT1M", "period": "1H"}, "INVALID_PERIOD"),
        ({"granularity": "PT1M", "period": "P0D"}, "INVALID_PERIOD"),
        ({"granularity": "PT1M", "period": "P30D"}, "INVALID_PERIOD"),  # 43,200 points
        ({"granularity": "PT1M"}, "INVALID_PERIOD"),
        ({"granularity": "PT1M", "period": "PT1H", "start": "2024-05-01T00:00:00Z"}, "INVALID_PERIOD"),
        ({"granularity": "PT1M", "start": "yesterday", "end": "2024-05-01T00:00:00Z"}, "INVALID_PERIOD"),
        ({"granularity": "PT1M", "period": "PT1H", "m": "NOT_A_METRIC"}, "INVALID_METRIC_NAME"),
        ({"granularity": "PT1M", "period": "PT1H", "m": ["CONNECTIONS"] * 100}, None),
        ({"granularity": "PT1M" * 50, "period": "PT1H"}, None),
    ],
)
def test_what_ops_manager_refuses_is_a_400(deployment: Deployment, query: dict[str, Any], code: str) -> None:
    host_id = deployment.hosts()[0]["id"]
    r = deployment.api.get(f"/groups/{deployment.group_id}/hosts/{host_id}/measurements", params=query)
    _error(r, 400, code)


def test_unknown_hosts_and_other_projects_keys_are_refused(
    server: ServerProcess, owner: dict[str, Any], deployment: Deployment
) -> None:
    d, query = deployment, {"granularity": "PT1M", "period": "PT1H"}
    _error(
        d.api.get(f"/groups/{d.group_id}/hosts/{'f' * 32}/measurements", params=query), 404, "HOST_NOT_FOUND"
    )
    _error(d.api.get(f"/groups/{d.group_id}/hosts/{'f' * 300}/measurements", params=query), 400)
    other = d.api.post("/groups", json={"name": "meas-other"}).json()["id"]
    made = d.api.post(f"/groups/{other}/apiKeys", json={"desc": "other", "roles": ["GROUP_READ_ONLY"]})
    host_id = d.hosts()[0]["id"]
    with server.client(made.json()) as stranger:
        r = stranger.get(f"/groups/{d.group_id}/hosts/{host_id}/measurements", params=query)
        assert r.status_code in (401, 403, 404) and r.json()["errorCode"], r.text
        # the route reads only: a write is no method of it
        r = stranger.post(f"/groups/{d.group_id}/hosts/{host_id}/measurements", json={})
        assert 400 <= r.status_code < 500, r.text


def _sub(d: Deployment, host_id: str, path: str, **query: Any) -> httpx.Response:
    return d.api.get(f"/groups/{d.group_id}/hosts/{host_id}/{path}", params=query)


def _listed(d: Deployment, host_id: str, kind: str, field: str) -> list[str]:
    r = _sub(d, host_id, kind)
    assert r.status_code == 200 and r.json()["totalCount"] == len(r.json()["results"]), r.text
    return [item[field] for item in r.json()["results"]]


def _latest_of(d: Deployment, host_id: str, path: str, name: str) -> float | None:
    r = _sub(d, host_id, f"{path}/measurements", granularity="PT1M", period="PT5M", m=[name])
    assert r.status_code == 200, r.text
    values = [p["value"] for p in r.json()["measurements"][0]["dataPoints"] if p["value"] is not None]
    return values[-1] if values else None


def test_disks_and_databases_appear_and_follow_the_writes(deployment: Deployment) -> None:
    d = deployment
    primary = next(h for h in d.hosts() if h["replicaStateName"] == "PRIMARY")
    pid = primary["id"]
    partitions = wait_for(lambda: _listed(d, pid, "disks", "partitionName"), 10, interval=0.2)
    assert partitions == [PARTITION]
    one = _sub(d, pid, f"disks/{PARTITION}").json()
    assert one["partitionName"] == PARTITION and one["links"][0]["href"].endswith(f"/disks/{PARTITION}")
    used = wait_for(lambda: _latest_of(d, pid, f"disks/{PARTITION}", "DISK_PARTITION_SPACE_USED"), 10)
    assert 0 < used < DISK_BYTES
    answer = _sub(d, pid, f"disks/{PARTITION}/measurements", granularity="PT1H", period="P1D").json()
    assert answer["partitionName"] == PARTITION and answer["hostId"] == pid
    assert {m["name"] for m in answer["measurements"]} >= {"DISK_PARTITION_SPACE_PERCENT_FREE"}

    world = SimWorld.open(d.root / "world.sqlite")
    try:
        load = WriteLoad(
            rate=50, keys=100_000, payload_bytes=32, delete_ratio=0.0, namespaces=("shop.orders",)
        )
        set_load(world, HOSTS, "rs0", load)
        wait_for(lambda: "shop" in _listed(d, pid, "databases", "databaseName"), 20, interval=0.3)
        first = wait_for(lambda: _latest_of(d, pid, "databases/shop", "DATABASE_OBJECT_COUNT"), 10)
        # the minute's average climbs as the load inserts (about 50 a second)
        later = wait_for(
            lambda: (
                (v := _latest_of(d, pid, "databases/shop", "DATABASE_OBJECT_COUNT")) and v > first + 20 and v
            ),
            20,
            interval=0.3,
        )
        assert later > first
    finally:
        set_load(world, HOSTS, "rs0", WriteLoad(rate=0))
        world.close()
    shop = _sub(d, pid, "databases/shop/measurements", granularity="PT1M", period="PT5M").json()
    units = {m["name"]: m["units"] for m in shop["measurements"]}
    assert shop["databaseName"] == "shop" and units["DATABASE_DATA_SIZE"] == "BYTES"
    assert units["DATABASE_OBJECT_COUNT"] == "SCALAR"


@pytest.mark.parametrize(
    ("path", "query", "status", "code"),
    [
        ("disks/nvme9/measurements", {"granularity": "PT1M", "period": "PT1H"}, 404, "PARTITION_NOT_FOUND"),
        ("disks/nvme9", {}, 404, "PARTITION_NOT_FOUND"),
        ("databases/nope", {}, 404, "DATABASE_NOT_FOUND"),
        ("databases/nope/measurements", {"granularity": "PT1M", "period": "PT1H"}, 404, "DATABASE_NOT_FOUND"),
        (
            f"disks/{PARTITION}/measurements",
            {"granularity": "PT7M", "period": "PT1H"},
            400,
            "INVALID_GRANULARITY",
        ),
        (f"disks/{PARTITION}/measurements", {"granularity": "PT1M", "period": "P30D"}, 400, "INVALID_PERIOD"),
        (f"disks/{PARTITION}/measurements", {"granularity": "PT1M"}, 400, "INVALID_PERIOD"),
        (
            f"disks/{PARTITION}/measurements",
            {"granularity": "PT1M", "period": "PT1H", "m": "CONNECTIONS"},  # a host's, not a partition's
            400,
            "INVALID_METRIC_NAME",
        ),
        (
            f"disks/{PARTITION}/measurements",
            {"granularity": "PT1M", "period": "PT1H", "m": ["DISK_PARTITION_SPACE_USED"] * 100},
            400,
            None,
        ),
        ("disks/..%2F..%2Fmeasurements", {}, 404, None),  # an escaped '/' is a segment: no route has it
        ("disks/%2E%2E", {}, 400, None),
        ("disks/" + "x" * 100, {}, 400, None),
        ("databases/a.b", {}, 400, None),
        ("databases/a%2Fb/measurements", {"granularity": "PT1M", "period": "PT1H"}, 404, None),
        ("databases/%24cmd", {}, 400, None),
    ],
)
def test_what_the_disks_and_databases_refuse(
    deployment: Deployment, path: str, query: dict[str, Any], status: int, code: str | None
) -> None:
    host_id = deployment.hosts()[0]["id"]
    wait_for(lambda: _listed(deployment, host_id, "disks", "partitionName"), 10, interval=0.2)
    _error(_sub(deployment, host_id, path, **query), status, code)


def test_other_projects_keys_read_no_disks_or_databases(
    server: ServerProcess, owner: dict[str, Any], deployment: Deployment
) -> None:
    d = deployment
    host_id = d.hosts()[0]["id"]
    wait_for(lambda: _listed(d, host_id, "disks", "partitionName"), 10, interval=0.2)
    paths = ["disks", f"disks/{PARTITION}", "databases", f"disks/{PARTITION}/measurements"]
    query = {"granularity": "PT1M", "period": "PT1H"}
    reader = d.api.post(
        f"/groups/{d.group_id}/apiKeys", json={"desc": "reader", "roles": ["GROUP_READ_ONLY"]}
    )
    other = d.api.post("/groups", json={"name": "meas-disks-other"}).json()["id"]
    stranger = d.api.post(f"/groups/{other}/apiKeys", json={"desc": "other", "roles": ["GROUP_OWNER"]})
    with server.client(reader.json()) as ro, server.client(stranger.json()) as them:
        for path in paths:
            url = f"/groups/{d.group_id}/hosts/{host_id}/{path}"
            assert ro.get(url, params=query).status_code == 200, path
            r = them.get(url, params=query)
            assert r.status_code in (401, 403, 404) and r.json()["errorCode"], r.text
            # the routes read only
            assert 400 <= ro.post(url, json={}).status_code < 500
        r = them.get(f"/groups/{other}/hosts/{host_id}/disks")  # its own project: no such host
        _error(r, 404, "HOST_NOT_FOUND")

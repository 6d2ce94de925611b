"""The Backup Daemon's jobs and the Prometheus figures on a real server backing up a sim replica set (one
member, a real agent): ``GET /admin/backup/daemon`` lists the source ingesting with its lag, last snapshot and
queue, for ORG_OWNER and ORG_READ_ONLY keys only; ``/metrics`` has the process gauges (mongodb_exporter's
names) and the backup figures labelled with the project, replica set, host, cluster and source, and every
metric the Grafana dashboard queries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import cluster_id, listing, set_load, start_backup
from tests.procs import ServerProcess, wait_for
from tests.server.test_grafana_dashboard import dashboard, queried

pytestmark = pytest.mark.e2e

SOURCE = ["src0.daemonjobs.sim"]


@dataclass
class Backed:
    server: ServerProcess
    source: Deployment
    cid: str


@pytest.fixture(scope="module")
def backed(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backed]:
    root = tmp_path_factory.mktemp("daemonjobs")
    source = Deployment(server, owner, root, "daemonjobs-source")
    world: SimWorld | None = None
    try:
        source.agent(SOURCE[0])
        source.wait_goal(source.put(replica_set_config(SOURCE, rs="djs")), 1)
        world = SimWorld.open(root / "world.sqlite")
        set_load(world, SOURCE, "djs", WriteLoad(rate=20, keys=100, payload_bytes=32))
        base = start_backup(source)
        wait_for(lambda: listing(source, base)["totalCount"] >= 1, 60, what="a first snapshot")
        yield Backed(server, source, cluster_id(source))
    finally:
        if world is not None:
            world.close()
        source.close()


def _mine(backed: Backed, api: httpx.Client) -> dict[str, Any]:
    r = api.get("/admin/backup/daemon", params={"itemsPerPage": 500})
    assert r.status_code == 200, r.text
    (job,) = [j for j in r.json()["results"] if j["clusterId"] == backed.cid]
    return dict(job)


def test_the_daemon_lists_the_source_ingesting(backed: Backed) -> None:
    job = _mine(backed, backed.source.api)
    assert job["groupId"] == backed.source.group_id and job["replicaSetName"] == "djs"
    assert job["ingesting"] is True and job["syncRequired"] is None and job["headConsistent"] is True
    assert job["lastSnapshotAt"] is not None and job["lastSnapshotAgeSeconds"] >= 0
    assert job["ingestLagSeconds"] is not None and 0 <= job["ingestLagSeconds"] < 60
    assert set(job["queue"]) == {"slicesPending", "snapshotsRequested"}
    assert job["errorsTotal"] == 0 and job["lastError"] is None
    whole = backed.source.api.get("/admin/backup/daemon").json()
    assert whole["sourceCount"] >= whole["ingestingCount"] >= 1 and whole["startedAt"] > 0


def test_readiness_shows_the_daemon_healthy(backed: Backed) -> None:
    def daemon() -> dict[str, Any] | None:
        ready = httpx.get(f"{backed.server.url}/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        shown = dict(ready.json()["daemon"])
        return shown if shown["ingestingCount"] >= 1 else None  # the figures are kept a few seconds

    shown = wait_for(daemon, 30, what="readiness to show the source ingesting")
    assert shown["healthy"] is True and shown["problems"] == [] and shown["sourceCount"] >= 1


def test_an_on_demand_request_is_queued_then_taken(backed: Backed) -> None:
    base = f"/groups/{backed.source.group_id}/clusters/{backed.cid}"
    before = _mine(backed, backed.source.api)["lastSnapshotAt"]
    assert backed.source.api.post(f"{base}/snapshots").status_code == 200
    wait_for(
        lambda: _mine(backed, backed.source.api)["lastSnapshotAt"] > before,
        60,
        what="the requested snapshot taken",
    )
    assert _mine(backed, backed.source.api)["queue"]["snapshotsRequested"] == 0


def test_only_organization_readers_see_the_daemon(backed: Backed) -> None:
    server, group = backed.server, backed.source.group_id
    org_reader = server.create_key("ORG_READ_ONLY")
    with server.client(org_reader) as api:
        assert _mine(backed, api)["clusterId"] == backed.cid
    for key in (
        server.create_key("GROUP_READ_ONLY", group_id=group),
        server.create_key("GROUP_OWNER", group_id=group),
    ):
        with server.client(key) as api:
            refused = api.get("/admin/backup/daemon")
            assert refused.status_code == 403 and "ORG_OWNER" in refused.json()["detail"], refused.text
    for params in ({"pageNum": "-1"}, {"itemsPerPage": "x" * 5000}, {"itemsPerPage": "100000"}):
        r = backed.source.api.get("/admin/backup/daemon", params=params)
        assert 400 <= r.status_code < 500 and "detail" in r.json(), r.text


def _scrape(server: ServerProcess) -> str:
    r = httpx.get(f"{server.url}/metrics", timeout=10)
    assert r.status_code == 200
    return r.text


def test_metrics_has_the_process_and_backup_figures(backed: Backed) -> None:
    group, cid = backed.source.group_id, backed.cid
    host = re.escape(f'host="{SOURCE[0]}:')
    process = re.compile(
        rf'mongodb_mongod_replset_member_state\{{group_id="{group}",rs="djs",{host}\d+"\}} 1\n'
    )
    up = re.compile(rf'mongodb_up\{{group_id="{group}",rs="djs",{host}\d+"\}} 1\n')
    backup = rf'\{{group_id="{group}",cluster="{cid}",rs="djs",source="\w+"'

    def shown() -> str | None:
        text = _scrape(backed.server)
        return text if process.search(text) and f'cluster="{cid}"' in text else None

    text = wait_for(shown, 30, what="the scrape to show the replica set's primary and its backup")
    assert up.search(text), text
    assert re.search(rf"opsmgr_backup_ingest_lag_seconds{backup}\}} [\d.e+-]+\n", text), text
    assert re.search(rf"opsmgr_backup_last_snapshot_timestamp_seconds{backup}\}} [\d.e+]+\n", text), text
    for queue in ("slices", "snapshots"):
        assert re.search(rf'opsmgr_backup_queue_depth{backup},queue="{queue}"\}} \d+\n', text), text
    assert re.search(rf"opsmgr_backup_errors_total{backup}\}} 0\n", text), text
    primary = rf'\{{group_id="{group}",rs="djs",{host}\d+"'
    assert re.search(rf'mongodb_op_counters_total{primary},type="insert"\}} \d+\n', text), text
    assert re.search(rf'mongodb_connections{primary},state="current"\}} \d+\n', text), text
    exposed = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    assert queried(dashboard()) <= exposed, queried(dashboard()) - exposed

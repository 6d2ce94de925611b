"""The TYPE of every instant the public API answers, through a real server, against Ops Manager's: an
ISO-8601 UTC string (``2024-05-01T12:00:00Z``) everywhere but the few fields Ops Manager sends as epoch
milliseconds (an agent API key's ``createdTime``, the ``...UTCMillis`` bounds). Typed clients decode by
type: the Go client's ``opsmngr`` structs (``string`` for ISO, ``int64`` for milliseconds) are the
authority, e.g. ``ContinuousJob.Created string``, ``Delivery.Expires string``, ``SnapshotTimestamp.Date
string``, ``Alert.Created string``, ``AgentAPIKey.CreatedTime int64``.

The project is ``tests.server.test_bodies``'s (a backed-up replica set with a snapshot, backing databases
with a QUEUED restore job, a unique index build), plus an HTTP restore job, an agent API key and an alert.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from opsmgr.alerts import AlertService
from opsmgr.store.engine import Store
from tests.procs import ServerProcess
from tests.server.test_bodies import Project, project

__all__ = ["project"]  # the fixture, shared with the bodies' tests


def iso(value: object) -> None:
    """An ISO-8601 UTC instant as Ops Manager writes it."""
    assert isinstance(value, str) and value.endswith("Z"), value
    datetime.fromisoformat(value)


def iso_or_none(value: object) -> None:
    if value is not None:
        iso(value)


def epoch_ms(value: object) -> None:
    assert isinstance(value, int) and not isinstance(value, bool) and value > 1_000_000_000_000, value


def bson_timestamp(value: Any) -> None:
    """``{date, increment}`` (Ops Manager's ``SnapshotTimestamp``): the date an ISO string."""
    iso(value["date"])
    assert isinstance(value["increment"], int), value


@pytest.fixture(scope="module")
def alerts(server: ServerProcess) -> Iterator[AlertService]:
    store = Store(f"sqlite:///{server.data_dir / 'appdb.sqlite'}")
    try:
        yield AlertService(store)
    finally:
        store.close()


def test_project_created_is_iso(project: Project) -> None:
    iso(project.api.get(f"/groups/{project.gid}").json()["created"])
    made = project.api.post("/groups", json={"name": "timestamp-types"})
    assert made.status_code == 201, made.text
    iso(made.json()["created"])
    for group in project.api.get("/groups").json()["results"]:
        iso(group["created"])


def test_agent_api_key_created_time_is_epoch_millis(project: Project) -> None:
    made = project.api.post(f"/groups/{project.gid}/agentapikeys", json={"desc": "types"})
    assert made.status_code == 201, made.text
    epoch_ms(made.json()["createdTime"])
    listed = project.api.get(f"/groups/{project.gid}/agentapikeys").json()
    assert listed
    for key in listed:
        epoch_ms(key["createdTime"])


def test_snapshots_dates_are_iso(project: Project) -> None:
    base = f"/groups/{project.gid}/clusters/{project.cluster}/snapshots"
    listed = project.api.get(base).json()
    assert listed["results"]
    for snap in [*listed["results"], project.api.get(f"{base}/{project.snapshot}").json()]:
        bson_timestamp(snap["created"])
        bson_timestamp(snap["lastOplogAppliedTimestamp"])
        iso_or_none(snap["expires"])
    for r in listed["pitrWindow"]:
        bson_timestamp(r["start"])
        bson_timestamp(r["end"])


def test_restore_job_instants_are_iso(project: Project) -> None:
    base = f"/groups/{project.gid}/clusters/{project.cluster}/restoreJobs"
    body = {"snapshotId": project.snapshot, "delivery": {"methodName": "HTTP", "expirationHours": 2}}
    made = project.api.post(base, json=body)
    assert made.status_code == 200, made.text
    (job,) = made.json()["results"]
    listed = project.api.get(base).json()["results"]
    one = project.api.get(f"{base}/{job['id']}").json()
    for j in [job, one, *listed]:
        iso(j["created"])
        iso_or_none(j.get("finished"))
        bson_timestamp(j["timestamp"])
        if j["delivery"]["methodName"] == "HTTP":
            iso(j["delivery"]["expires"])
            assert isinstance(j["delivery"]["expirationHours"], int)
    api_root = str(project.api.base_url).rstrip("/")
    assert one["links"] == [{"href": f"{api_root}{base}/{job['id']}", "rel": "self"}]
    expires = datetime.fromisoformat(job["delivery"]["expires"])
    created = datetime.fromisoformat(job["created"])
    assert round((expires - created).total_seconds() / 3600) == 2, (job["created"], job["delivery"])


def test_alert_instants_are_iso(project: Project, alerts: AlertService) -> None:
    opened = alerts.raise_alert(project.gid, "BACKUP_SNAPSHOT_MISSED", "types:missed", "late")
    path = f"/groups/{project.gid}/alerts/{opened['id']}"
    alert = project.api.get(path).json()
    iso(alert["created"])
    iso(alert["updated"])
    acked = project.api.patch(path, json={"acknowledgedUntil": "2999-01-01T00:00:00Z"})
    assert acked.status_code == 200, acked.text
    iso(acked.json()["acknowledgedUntil"])
    assert alerts.resolve(project.gid, "types:missed")
    closed = project.api.get(path).json()
    iso(closed["resolved"])
    iso(closed["updated"])


def test_backing_databases_instants_are_iso_and_bounds_millis(project: Project) -> None:
    backing = project.api.get(f"/groups/{project.gid}/backingDatabases/{project.backing}").json()
    for store in backing["stores"]:
        iso_or_none(store["lastSliceReceivedAt"])
        for snap in store["snapshots"]:
            bson_timestamp(snap["created"])
    assert any(store["snapshots"] for store in backing["stores"]), backing["stores"]
    for r in backing["restorableTogether"]:
        epoch_ms(r["startUTCMillis"])
        epoch_ms(r["endUTCMillis"])
    jobs = f"/groups/{project.gid}/backingDatabases/{project.backing}/restoreJobs"
    listed = project.api.get(jobs).json()["results"]
    for job in [project.api.get(f"{jobs}/{project.backing_job}").json(), *listed]:
        iso(job["created"])
        iso_or_none(job.get("started"))
        iso_or_none(job.get("finished"))


def test_index_build_instants_are_iso(project: Project) -> None:
    build = project.api.get(f"/groups/{project.gid}/uniqueIndexBuilds/{project.build}").json()
    iso(build["created"])
    iso_or_none(build["updated"])
    for listed in project.api.get(f"/groups/{project.gid}/uniqueIndexBuilds").json()["results"]:
        iso(listed["created"])


def test_restoration_mode_instants_are_iso_or_absent(project: Project) -> None:
    view = project.api.get(f"/groups/{project.gid}/restorationMode").json()
    for field in ("triggeredAt", "updatedAt", "exitedAt", "nextAttemptAt", "armedAt", "disarmedAt"):
        iso_or_none(view[field])
    for agent in view["agentsHeard"]:
        iso_or_none(agent["timestamp"])
        iso(agent["heardAt"])


def test_cluster_last_heartbeat_is_iso(project: Project) -> None:
    """``lastHeartbeat`` (the Go client's ``Cluster.LastHeartbeat string``): the agents report its members."""
    listed = project.api.get(f"/groups/{project.gid}/clusters").json()["results"]
    one = project.api.get(f"/groups/{project.gid}/clusters/{project.cluster}").json()
    for cluster in [one, *listed]:
        iso(cluster["lastHeartbeat"])
    (link,) = one["links"]
    assert link["rel"] == "self" and link["href"].endswith(f"/clusters/{project.cluster}")

"""The on-demand snapshot through a real server, on Ops Manager's path (its reference, "Create an On-Demand
Snapshot": ``POST /groups/{id}/clusters/{cid}/snapshots/onDemandSnapshot?retentionDays=N``, 200) and on
opsmgr's own shorter one, which is the same handler: the answer names the cluster and the snapshots queued,
the daemon takes them, and keys that may not change backups, forged parameters and unknown clusters are
refused with Ops Manager's error body.

The project is ``tests.server.test_bodies``'s: a replica set whose backup is STARTED, with a snapshot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.procs import ServerProcess, wait_for
from tests.server.test_bodies import Project, project

__all__ = ["project"]  # the fixture, shared with the bodies' tests

OPS_MANAGER_PATH = "/groups/{g}/clusters/{c}/snapshots/onDemandSnapshot"
OPSMGR_PATH = "/groups/{g}/clusters/{c}/snapshots"


def refused(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == status and body["errorCode"] and body["detail"], body
    return dict(body)


def snapshot_ids(p: Project) -> set[str]:
    return {s["id"] for s in p.api.get(p.path("/groups/{g}/clusters/{c}/snapshots")).json()["results"]}


@pytest.mark.parametrize("route", [OPS_MANAGER_PATH, OPSMGR_PATH])
def test_a_snapshot_is_queued_then_taken(project: Project, route: str) -> None:
    before = snapshot_ids(project)
    r = project.api.post(project.path(route), params={"retentionDays": 3})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["groupId"] == project.gid and answer["clusterId"] == project.cluster
    assert answer["clusterName"] == "rs0" and answer["statusName"] == "QUEUED" and answer["description"]
    assert answer["snapshotIds"] and all(isinstance(i, str) for i in answer["snapshotIds"])
    stamp = answer["timestamp"]  # Ops Manager's answer carries when, as {date, time, increment}
    assert stamp["date"].endswith("Z") and isinstance(stamp["time"], int)
    assert isinstance(stamp["increment"], int)
    assert abs(datetime.fromisoformat(stamp["date"]).timestamp() - stamp["time"]) < 1
    wait_for(lambda: set(answer["snapshotIds"]) <= snapshot_ids(project) - before, 30, what="the snapshot")


def test_retention_days_must_be_a_number_above_zero(project: Project) -> None:
    for route in (OPS_MANAGER_PATH, OPSMGR_PATH):
        for forged in ("0", "-1", "ten", "99999999999999999999"):
            refused(project.api.post(project.path(route), params={"retentionDays": forged}), 400)


def test_unknown_cluster_is_404(project: Project) -> None:
    for route in (OPS_MANAGER_PATH, OPSMGR_PATH):
        path = route.format(g=project.gid, c="6b14b0af4bb3ab7f3a88fe40")
        refused(project.api.post(path, params={"retentionDays": 1}), 404)


def test_keys_that_may_not_change_backups_are_refused(
    project: Project, server: ServerProcess, owner: dict[str, Any]
) -> None:
    reader = project.api.post(
        f"/groups/{project.gid}/apiKeys", json={"desc": "reader", "roles": ["GROUP_READ_ONLY"]}
    ).json()
    org = project.api.post("/orgs", json={"name": "on-demand-stranger"}).json()["id"]
    stranger = project.api.post(
        f"/orgs/{org}/apiKeys", json={"desc": "stranger", "roles": ["ORG_OWNER"]}
    ).json()
    for key, statuses in ((reader, {403}), (stranger, {403, 404})):
        with server.client(key) as api:
            for route in (OPS_MANAGER_PATH, OPSMGR_PATH):
                r = api.post(project.path(route), params={"retentionDays": 1})
                assert r.status_code in statuses, r.text
                refused(r, r.status_code)
    with httpx.Client(base_url=f"{server.url}/api/public/v1.0", verify=server.verify) as anonymous:
        assert anonymous.post(project.path(OPS_MANAGER_PATH)).status_code == 401

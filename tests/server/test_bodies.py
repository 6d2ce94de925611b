"""The public routes' request bodies (``server.bodies``) through a real server: for every public route that
takes a body, a forged body (a field the route does not take, a value no client may send, a name another
resource owns) or one over the size limit is refused with a 4xx in Ops Manager's error shape, and changes
nothing of the project: its goal config, backup configuration and schedule, restore jobs of both kinds,
backing databases and unique index builds read back the same. The models let the domain name what is wrong,
with the body as it was sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opsmgr.server.app import MAX_BODY_BYTES
from opsmgr.server.bodies import AutomationConfigBody, SnapshotScheduleBody
from tests.agent_protocol import AgentProject
from tests.configs import replica_set_config
from tests.procs import ServerProcess, wait_for

HOSTS = ["h0.bodies.net", "h1.bodies.net", "h2.bodies.net"]
OPTIME = 1_700_000_000 << 32  # a replica set's position: seconds << 32 | increment
NOW_US = 1_700_000_000_000_000  # a backing store's position: microseconds
BUILD = {"rsName": "rs0", "dbName": "shop", "collectionName": "orders", "key": [["orderNo", 1]]}


@dataclass
class Project:
    """A project with everything a body can change: a replica set whose backup is STARTED and has a
    snapshot, a deployment of backing databases whose app store has a snapshot and a QUEUED restore job, and
    a unique index build awaiting confirmation."""

    api: httpx.Client
    gid: str
    cluster: str
    snapshot: str
    backing: str
    backing_job: str
    build: str

    def path(self, route: str) -> str:
        return route.format(g=self.gid, c=self.cluster, b=self.backing, j=self.backing_job, build=self.build)

    def state(self) -> dict[str, Any]:
        """What any of the routes could change, read back."""
        reads = [
            "/groups/{g}/automationConfig",
            "/groups/{g}/clusters",
            "/groups/{g}/backupConfigs/{c}",
            "/groups/{g}/backupConfigs/{c}/snapshotSchedule",
            "/groups/{g}/clusters/{c}/restoreJobs",
            "/groups/{g}/backingDatabases",
            "/groups/{g}/backingDatabases/{b}/restoreJobs/{j}",
            "/groups/{g}/uniqueIndexBuilds",
        ]
        out = {}
        for route in reads:
            r = self.api.get(self.path(route))
            assert r.status_code == 200, (route, r.text)
            out[route] = r.json()
        return out


def _synced(project: AgentProject, source: str, position: int) -> None:
    """An empty initial sync of ``source`` at ``position``: a chain the daemon snapshots."""
    base = f"/agents/api/backup/v1/{project.gid}/sources/{source}"
    sync = project.agent.post(f"{base}/sync", json={"position": position})
    assert sync.status_code == 200, sync.text
    done = project.agent.post(f"{base}/sync/{sync.json()['syncId']}/finish", json={"minValid": position})
    assert done.status_code == 200, done.text


def _report_primary(project: AgentProject) -> None:
    """The agents report the set's members, the last one PRIMARY: what a unique index build's order needs."""
    for i, host in enumerate(HOSTS):
        state = "PRIMARY" if i == 2 else "SECONDARY"
        status = {
            "cv": 1,
            "processes": [{"name": f"rs0_{i}", "observed": {"replicaStateName": state, "optimeTs": OPTIME}}],
        }
        r = project.agent.post(
            f"/agents/api/automation/status/v1/{project.gid}", json=status, params={"hostname": host}
        )
        assert r.status_code == 200, r.text


def _backed_up(p: AgentProject) -> tuple[str, str]:
    """The replica set's cluster with backup STARTED, and its first snapshot."""
    cluster = p.api.get(f"/groups/{p.gid}/clusters").json()["results"][0]["id"]
    r = p.api.patch(f"/groups/{p.gid}/backupConfigs/{cluster}", json={"statusName": "STARTED"})
    assert r.status_code == 200, r.text
    jobs = p.agent.get(f"/agents/api/backup/v1/{p.gid}/jobs", params={"hostname": HOSTS[0]}).json()
    _synced(p, jobs["sources"][0]["sourceId"], OPTIME)
    snapshots = f"/groups/{p.gid}/clusters/{cluster}/snapshots"
    snapshot = wait_for(lambda: p.api.get(snapshots).json()["results"], 30, what="a snapshot")[0]["id"]
    return cluster, str(snapshot)


def _backing_job(p: AgentProject) -> tuple[str, str]:
    """A deployment of backing databases whose app store has a snapshot, and a QUEUED restore job of it."""
    r = p.api.post(f"/groups/{p.gid}/backingDatabases", json={"clusterName": "stores"})
    assert r.status_code == 201, r.text
    backing = r.json()["id"]
    app = next(s for s in r.json()["stores"] if s["name"] == "app")
    _synced(p, app["sourceId"], NOW_US)

    def app_snapshots() -> list[dict[str, Any]]:
        listed = p.api.get(f"/groups/{p.gid}/backingDatabases/{backing}").json()
        return list(next(s for s in listed["stores"] if s["name"] == "app")["snapshots"])

    snapshot = wait_for(app_snapshots, 30, what="a snapshot of the app store")[0]["id"]
    jobs = f"/groups/{p.gid}/backingDatabases/{backing}/restoreJobs"
    r = p.api.post(jobs, json={"stores": {"app": {"snapshotId": snapshot}}})
    assert r.status_code == 200 and r.json()["statusName"] == "QUEUED", r.text
    return backing, str(r.json()["id"])


@pytest.fixture(scope="module")
def project(server: ServerProcess, owner: dict[str, Any]) -> Iterator[Project]:
    with server.client(owner) as api:
        p = AgentProject(server.url, api, "bodies", replica_set_config(HOSTS))
        try:
            _report_primary(p)
            cluster, snapshot = _backed_up(p)
            backing, backing_job = _backing_job(p)
            build = api.post(f"/groups/{p.gid}/uniqueIndexBuilds", json=BUILD)
            assert build.status_code == 201, build.text
            yield Project(api, p.gid, cluster, snapshot, backing, backing_job, build.json()["id"])
        finally:
            p.agent.close()


CONFIG = "/groups/{g}/automationConfig"
BACKUP_CONFIG = "/groups/{g}/backupConfigs/{c}"
SCHEDULE = "/groups/{g}/backupConfigs/{c}/snapshotSchedule"
RESTORE_JOBS = "/groups/{g}/clusters/{c}/restoreJobs"
BACKING = "/groups/{g}/backingDatabases"
BACKING_JOBS = "/groups/{g}/backingDatabases/{b}/restoreJobs"
BACKING_JOB = "/groups/{g}/backingDatabases/{b}/restoreJobs/{j}"
BUILDS = "/groups/{g}/uniqueIndexBuilds"
CONFIRM = "/groups/{g}/uniqueIndexBuilds/{build}/confirm"
ROUTES = [
    ("PUT", CONFIG),
    ("PATCH", BACKUP_CONFIG),
    ("PATCH", SCHEDULE),
    ("POST", RESTORE_JOBS),
    ("POST", BACKING),
    ("POST", BACKING_JOBS),
    ("PATCH", BACKING_JOB),
    ("POST", BUILDS),
    ("POST", CONFIRM),
]
HTTP = {"methodName": "HTTP"}
SNAPSHOT = "__SNAPSHOT__"  # the project's snapshot id, filled in
NO_PROJECT = "0123456789abcdef01234567"

# (method, route, body, status, the field the refusal names)
FORGED: list[tuple[str, str, Any, int, str | None]] = [
    ("PUT", CONFIG, [replica_set_config(HOSTS)], 400, "body"),
    ("PUT", CONFIG, {**replica_set_config(HOSTS), "processes": "every host"}, 400, "processes"),
    (
        "PATCH",
        BACKUP_CONFIG,
        {"statusName": "TERMINATING", "excludedNamespaces": ["shop"]},
        400,
        "excludedNamespaces",
    ),
    ("PATCH", BACKUP_CONFIG, {"statusName": "PAUSED"}, 400, "statusName"),
    ("PATCH", BACKUP_CONFIG, {"statusName": ["STOPPED"]}, 400, "statusName"),
    ("PATCH", SCHEDULE, {"snapshotRetentionDays": 3, "retainForever": True}, 400, "retainForever"),
    ("PATCH", SCHEDULE, {"snapshotIntervalHours": "1"}, 400, "snapshotIntervalHours"),
    ("PATCH", SCHEDULE, {"pointInTimeWindowHours": 10**6}, 400, "pointInTimeWindowHours"),
    (
        "POST",
        RESTORE_JOBS,
        {"snapshotId": SNAPSHOT, "delivery": HTTP, "statusName": "FINISHED"},
        400,
        "statusName",
    ),
    (
        "POST",
        RESTORE_JOBS,
        {"snapshotId": SNAPSHOT, "delivery": {**HTTP, "url": "https://x.example"}},
        400,
        "delivery.url",
    ),
    (
        "POST",
        RESTORE_JOBS,
        {"snapshotId": SNAPSHOT, "delivery": {**HTTP, "maxDownloads": 10**6}},
        400,
        "delivery.maxDownloads",
    ),
    (
        "POST",
        RESTORE_JOBS,
        {
            "snapshotId": SNAPSHOT,
            "delivery": {
                "methodName": "AUTOMATED_RESTORE",
                "targetGroupId": NO_PROJECT,
                "targetClusterId": "c",
            },
        },
        404,
        None,
    ),
    ("POST", BACKING, {"clusterName": "x" * 10_000}, 400, "clusterName"),
    ("POST", BACKING, {"clusterName": "rs0"}, 409, "clusterName"),  # the replica set's name
    ("POST", BACKING, {"clusterName": "more", "kind": "REPLICA_SET"}, 400, "kind"),
    (
        "POST",
        BACKING_JOBS,
        {"stores": {"app": {"snapshotId": "s"}}, "statusName": "FINISHED"},
        400,
        "statusName",
    ),
    ("POST", BACKING_JOBS, {"stores": {"app": {"snapshotId": "s", "plan": {}}}}, 400, "stores.app.plan"),
    ("POST", BACKING_JOBS, {"stores": {"appdb": {"snapshotId": "s"}}}, 400, "stores.appdb"),
    ("PATCH", BACKING_JOB, {"statusName": "RUNNING"}, 400, "statusName"),
    ("PATCH", BACKING_JOB, {"statusName": "FINISHED", "stores": {}}, 400, "stores"),
    ("POST", BUILDS, {**BUILD, "collectionName": "carts", "state": "DONE"}, 400, "state"),
    ("POST", BUILDS, {**BUILD, "collectionName": "x" * 300}, 400, "collectionName"),
    ("POST", CONFIRM, {"writesStopped": True, "state": "BUILDING"}, 400, "state"),
    ("POST", CONFIRM, {"writesStopped": "yes"}, 400, "writesStopped"),
    ("POST", CONFIRM, {"writesStopped": True, "operator": "x" * 300}, 400, "operator"),
]


def _filled(body: Any, snapshot: str) -> Any:
    if isinstance(body, dict):
        return {k: snapshot if v == SNAPSHOT else v for k, v in body.items()}
    return body


def refused(response: httpx.Response, status: int) -> dict[str, Any]:
    """A 4xx in Ops Manager's error shape."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = dict(response.json())
    assert {"detail", "error", "errorCode", "reason"} <= set(body) and body["error"] == status, body
    return body


@pytest.mark.parametrize(("method", "route", "body", "status", "field"), FORGED)
def test_a_forged_body_is_refused_and_changes_nothing(
    project: Project, method: str, route: str, body: Any, status: int, field: str | None
) -> None:
    before = project.state()
    error = refused(
        project.api.request(method, project.path(route), json=_filled(body, project.snapshot)), status
    )
    if field is not None:
        assert error["parameters"]["field"].startswith(field), error
    assert project.state() == before


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_a_body_over_the_limit_is_refused_and_changes_nothing(
    project: Project, method: str, route: str
) -> None:
    before = project.state()
    oversized = b'{"x": "' + b"x" * MAX_BODY_BYTES + b'"}'
    r = project.api.request(
        method, project.path(route), content=oversized, headers={"content-type": "application/json"}
    )
    assert refused(r, 413)["errorCode"] == "REQUEST_TOO_LARGE"
    assert project.state() == before


def test_the_domain_sees_the_body_as_sent() -> None:
    """Key order included: the domain names the first field that is wrong, as it did before the models."""
    sent = {"links": [], "zzz": 1, "snapshotRetentionDays": 3, "aaa": 2}
    config = {"roles": [], "unknownSection": {"kept": True}, "processes": [], "version": 3}
    assert list(AutomationConfigBody.model_validate(config).as_sent().items()) == list(config.items())
    with pytest.raises(ValueError, match="zzz"):
        SnapshotScheduleBody.model_validate(sent)
    schedule = {"pointInTimeWindowHours": 12, "snapshotRetentionDays": 3}
    assert list(SnapshotScheduleBody.model_validate(schedule).as_sent()) == list(schedule)

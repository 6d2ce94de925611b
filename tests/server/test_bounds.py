"""Integer bounds through a real server: a position, a size, a sequence number or a time an agent or a user
sends is refused with a 400 naming the field unless the store (signed 64-bit columns) and the domain (a
position of the source's kind names a date, a count is not negative) can hold it; what was refused changes
nothing, and the views and alerts that read positions back keep answering."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr.backup.positions import POSITION_LIMITS, PositionKind
from tests.agent_protocol import AgentProject
from tests.configs import replica_set_config
from tests.procs import ServerProcess

HOSTS = ["h0.example.net", "h1.example.net", "h2.example.net"]
NOW_US = 1_700_000_000_000_000
# Not integers, or integers no position can be (2**64 is also past what strict JSON takes).
NOT_POSITIONS = [-1, 1.5, True, "5", 2**64]


class Project(AgentProject):
    def __init__(self, server: ServerProcess, api: httpx.Client) -> None:
        super().__init__(server.url, api, "bounds", replica_set_config(HOSTS))
        backing = api.post(f"/groups/{self.gid}/backingDatabases", json={"clusterName": "stores"}).json()
        self.store_source = backing["stores"][0]["sourceId"]  # positions: microseconds since the epoch
        self.cluster = api.get(f"/groups/{self.gid}/clusters").json()["results"][0]["id"]
        r = api.patch(f"/groups/{self.gid}/backupConfigs/{self.cluster}", json={"statusName": "STARTED"})
        assert r.status_code == 200, r.text
        jobs = self.agent.get(f"/agents/api/backup/v1/{self.gid}/jobs", params={"hostname": HOSTS[0]}).json()
        self.bson_source = jobs["sources"][0]["sourceId"]  # positions: seconds << 32 | increment

    def backup(self, source: str, path: str) -> str:
        return f"/agents/api/backup/v1/{self.gid}/sources/{source}{path}"

    def source(self, kind: PositionKind) -> str:
        return self.store_source if kind is PositionKind.STORE else self.bson_source


@pytest.fixture(scope="module")
def project(server: ServerProcess, owner: dict[str, Any]) -> Iterator[Project]:
    with server.client(owner) as api:
        p = Project(server, api)
        yield p
        p.agent.close()


def refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    body = response.json()
    assert body["errorCode"] == "INVALID_ATTRIBUTE" and field in body["detail"], body


@pytest.mark.parametrize("kind", list(PositionKind))
def test_an_initial_sync_takes_only_positions_of_its_source_kind(
    project: Project, kind: PositionKind
) -> None:
    source = project.source(kind)
    for value in [*NOT_POSITIONS, POSITION_LIMITS[kind] + 1]:
        refused(project.agent.post(project.backup(source, "/sync"), json={"position": value}), "position")
    sync = project.agent.post(project.backup(source, "/sync"), json={"position": NOW_US})
    assert sync.status_code == 200, sync.text
    finish = project.backup(source, f"/sync/{sync.json()['syncId']}/finish")
    for value in [*NOT_POSITIONS, POSITION_LIMITS[kind] + 1]:
        refused(project.agent.post(finish, json={"minValid": value}), "minValid")
    # Refusals changed nothing: the sync is still open and finishes at its own position.
    done = project.agent.post(finish, json={"minValid": NOW_US})
    assert done.status_code == 200 and done.json()["acknowledged"] == NOW_US, done.text


@pytest.mark.parametrize("kind", list(PositionKind))
def test_the_source_position_an_agent_reports_is_bounded_and_alerts_keep_working(
    server: ServerProcess, project: Project, kind: PositionKind
) -> None:
    acknowledged = project.backup(project.source(kind), "/acknowledged")
    for value in ["-1", "1.5", str(2**63), str(POSITION_LIMITS[kind] + 1)]:
        refused(project.agent.get(acknowledged, params={"sourceLast": value}), "sourceLast")
    assert project.agent.get(acknowledged, params={"sourceLast": POSITION_LIMITS[kind]}).status_code == 200
    gap = project.backup(project.source(kind), "/gap")
    for value in [*NOT_POSITIONS, POSITION_LIMITS[kind] + 1]:
        refused(project.agent.post(gap, json={"firstAvailable": value, "detail": "lost"}), "firstAvailable")
    # The views that show positions as dates still answer.
    assert project.api.get(f"/groups/{project.gid}/backingDatabases").status_code == 200
    assert project.api.get(f"/groups/{project.gid}/clusters/{project.cluster}/snapshots").status_code == 200


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/lease", {"member": "rs0_0", "seq": -1}, "seq"),
        ("/lease", {"member": "rs0_0", "seq": 1e300}, "seq"),
        ("/lease", {"member": "rs0_0", "seq": 2**63}, "seq"),
        ("/progress", {"changeId": "c", "move": {"name": "Start"}, "seq": 1.5}, "seq"),
        ("/progress", {"changeId": "c", "move": {"name": "Start"}, "at": -1}, "at"),
        ("/progress", {"changeId": "c", "move": {"name": "Start"}, "at": 1e300}, "at"),
        ("/progress", {"changeId": "c", "move": {"name": "Start"}, "connections": -3}, "connections"),
        ("/progress", {"changeId": "c", "move": {"name": "Start"}, "connections": 1e300}, "connections"),
    ],
)
def test_maintenance_numbers_are_bounded(
    project: Project, route: str, body: dict[str, Any], field: str
) -> None:
    path = f"/agents/api/automation/maintenance/v1/{project.gid}/rs0{route}"
    refused(project.agent.post(path, json=body), field)


def test_index_build_oplog_records_carry_positions(project: Project) -> None:
    path = f"/agents/api/automation/indexBuilds/v1/{project.gid}/nobuild/events"
    for ts in [-1, 1.5, 2**63]:
        body = {"type": "oplog", "records": [{"ts": ts, "op": "i", "ns": "db.c", "o": {}}]}
        refused(project.agent.post(path, params={"hostname": HOSTS[0]}, json=body), "ts")


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ({"pointInTimeUTCMillis": -1}, "pointInTimeUTCMillis"),
        ({"pointInTimeUTCMillis": 2**63 - 1}, "pointInTimeUTCMillis"),
        ({"pointInTimeUTCMillis": 1.5}, "pointInTimeUTCMillis"),
        ({"pointInTimeUTCMillis": True}, "pointInTimeUTCMillis"),
        ({"oplogTs": 2**40, "oplogInc": 0}, "oplogTs"),
        ({"oplogTs": 1_700_000_000, "oplogInc": 2**40}, "oplogInc"),
        ({"oplogTs": 1_700_000_000, "oplogInc": -1}, "oplogInc"),
    ],
)
def test_restore_targets_are_bounded_and_refusals_create_no_job(
    project: Project, target: dict[str, Any], field: str
) -> None:
    jobs = f"/groups/{project.gid}/clusters/{project.cluster}/restoreJobs"
    body = {**target, "delivery": {"methodName": "HTTP", "expirationHours": 1}}
    refused(project.api.post(jobs, json=body), field)
    backing = project.api.get(f"/groups/{project.gid}/backingDatabases").json()["results"][0]["id"]
    backing_jobs = f"/groups/{project.gid}/backingDatabases/{backing}/restoreJobs"
    refused(project.api.post(backing_jobs, json={"stores": {"app": target}}), field)
    assert project.api.get(jobs).json()["totalCount"] == 0


@pytest.mark.parametrize("hours", [0, -1, 169, 2**62, 1.5, True])
def test_a_download_expires_within_a_week(project: Project, hours: Any) -> None:
    body = {"pointInTimeUTCMillis": 0, "delivery": {"methodName": "HTTP", "expirationHours": hours}}
    refused(
        project.api.post(f"/groups/{project.gid}/clusters/{project.cluster}/restoreJobs", json=body),
        "expirationHours",
    )


@pytest.mark.parametrize(
    ("name", "value"), [("pageNum", "0"), ("pageNum", str(2**63)), ("itemsPerPage", "501")]
)
def test_pagination_is_bounded(project: Project, name: str, value: str) -> None:
    refused(project.api.get("/groups", params={name: value}), name)


def test_no_refusal_reached_the_error_log(server: ServerProcess, project: Project) -> None:
    assert project.api.get(f"/groups/{project.gid}/backingDatabases").status_code == 200
    assert '"level": "ERROR"' not in server.log(), server.log()[-3000:]

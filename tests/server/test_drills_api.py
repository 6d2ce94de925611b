"""The drills routes through the real server: a backup admin of the secondary's project records a drill and
any role of the project reads them; a read-only key cannot record one, another project's key neither reads
nor records, a cluster that is not a backing deployment is refused, and forged, oversized or non-finite
reports are a 4xx that keeps nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.procs import ServerProcess, started_server


def report(**more: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    step = {"name": "restore into the sandbox", "passed": True, "seconds": 2.5, "detail": "3 stores"}
    return {"passed": True, "started": now - 9000, "finished": now, "steps": [step]} | more


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with started_server(tmp_path_factory.mktemp("drills") / "data") as srv:
        owner = srv.create_key("ORG_OWNER")
        with srv.client(owner) as api:
            gid = api.post("/groups", json={"name": "drills"}).json()["id"]
            other = api.post("/groups", json={"name": "drills-other"}).json()["id"]
            cid = api.post(f"/groups/{gid}/backingDatabases", json={"clusterName": "stores"}).json()["id"]
        yield {
            "srv": srv,
            "path": f"/groups/{gid}/backingDatabases/{cid}/drills",
            "admin": srv.create_key("GROUP_BACKUP_ADMIN", group_id=gid),
            "reader": srv.create_key("GROUP_READ_ONLY", group_id=gid),
            "stranger": srv.create_key("GROUP_OWNER", group_id=other),
            "other_path": f"/groups/{other}/backingDatabases/{cid}/drills",
        }


def _count(srv: ServerProcess, key: dict[str, Any], path: str) -> int:
    with srv.client(key) as api:
        return int(api.get(path).json()["totalCount"])


def test_a_backup_admin_records_and_a_reader_reads(world: dict[str, Any]) -> None:
    srv, path = world["srv"], world["path"]
    with srv.client(world["admin"]) as api:
        made = api.post(path, json=report())
        assert made.status_code == 201, made.text
        assert made.json()["passed"] is True and made.json()["rtoSeconds"] == 9.0
    with srv.client(world["reader"]) as api:
        listed = api.get(path).json()
        assert made.json() in listed["results"]
        refused = api.post(path, json=report())
        assert refused.status_code == 403 and "GROUP_BACKUP_ADMIN" in refused.json()["detail"]


def test_another_projects_key_neither_reads_nor_records(world: dict[str, Any]) -> None:
    srv = world["srv"]
    before = _count(srv, world["admin"], world["path"])
    with srv.client(world["stranger"]) as api:
        assert api.get(world["path"]).status_code == 403
        assert api.post(world["path"], json=report()).status_code == 403
        mine = api.post(world["other_path"], json=report())
        assert mine.status_code == 404, "its own project has no such backing deployment"
    assert _count(srv, world["admin"], world["path"]) == before


@pytest.mark.parametrize(
    "body",
    [
        report(started=1e30),
        report(started="yesterday"),
        report(steps=[]),
        report(steps=[{"name": "x", "passed": True, "seconds": 1}] * 21),
        report(steps=[{"name": "x", "passed": True, "seconds": 1, "detail": "d" * 5000}]),
        report(passed=False),
        report(restorePointUTCMillis=-1),
        report(storeBytes={f"s{i}": 1 for i in range(4)}),
        report(bogus=True),
    ],
)
def test_forged_reports_are_refused_and_keep_nothing(world: dict[str, Any], body: dict[str, Any]) -> None:
    srv, path = world["srv"], world["path"]
    before = _count(srv, world["admin"], path)
    with srv.client(world["admin"]) as api:
        r = api.post(path, json=body)
        assert 400 <= r.status_code < 500 and r.json()["detail"], r.text
    assert _count(srv, world["admin"], path) == before


def test_non_finite_and_oversized_bodies_are_4xx(world: dict[str, Any]) -> None:
    srv, path = world["srv"], world["path"]
    before = _count(srv, world["admin"], path)
    with srv.client(world["admin"]) as api:
        for raw in (b'{"passed": true, "started": NaN}', b'{"started": Infinity}', b"[" * 5000):
            r = api.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, raw[:30]
        huge = report(steps=[{"name": "x", "passed": True, "seconds": 1, "detail": "d" * 2000}] * 20)
        huge["padding"] = "p" * 3_000_000
        assert 400 <= api.post(path, json=huge).status_code < 500
    assert _count(srv, world["admin"], path) == before

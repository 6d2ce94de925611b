"""HTTP restore downloads through a real server backing up a sim replica set (one member, a real agent): the
download URL is shown only to keys that may restore, it is a single-use (or ``maxDownloads``-use), expiring
token bound to its job, and the application database keeps only the token's hash.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.server.backup_api import JOBS
from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from opsmgr.store.engine import Store
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import listing, set_load, start_backup
from tests.procs import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

HOSTS = ["src0.download.sim"]
ROLES = ["GROUP_READ_ONLY", "GROUP_AUTOMATION_ADMIN", "GROUP_BACKUP_ADMIN", "GROUP_OWNER"]


@dataclass
class Backed:
    server: ServerProcess
    source: Deployment
    base: str  # the cluster's path under the public API
    snapshot_id: str
    keys: dict[str, dict[str, Any]]  # per project role, and "stranger": an ORG_OWNER of another organization
    store: Store

    def client(self, role: str) -> httpx.Client:
        return self.server.client(self.keys[role])

    def create(self, **delivery: Any) -> dict[str, Any]:
        body = {"snapshotId": self.snapshot_id, "delivery": {"methodName": "HTTP", **delivery}}
        with self.client("GROUP_BACKUP_ADMIN") as c:
            r = c.post(f"{self.base}/restoreJobs", json=body)
        assert r.status_code == 200, r.text
        created = r.json()
        assert created["totalCount"] == 1 and len(created["results"]) == 1, created
        return dict(created["results"][0])

    def jobs(self) -> list[dict[str, Any]]:
        return sorted(self.store.find(JOBS), key=lambda j: str(j["_id"]))


@pytest.fixture(scope="module")
def backed(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backed]:
    root: Path = tmp_path_factory.mktemp("restore-download")
    source = Deployment(server, owner, root, "restore-download")
    world: SimWorld | None = None
    store: Store | None = None
    try:
        source.agent(HOSTS[0])
        source.wait_goal(source.put(replica_set_config(HOSTS, rs="dl")), 1)
        world = SimWorld.open(root / "world.sqlite")
        set_load(world, HOSTS, "dl", WriteLoad(rate=30, keys=20, payload_bytes=16))
        base = start_backup(source)
        wait_for(lambda: listing(source, base)["totalCount"] >= 1, 60, what="a first snapshot")
        keys = {
            role: source.api.post(
                f"/groups/{source.group_id}/apiKeys", json={"desc": role, "roles": [role]}
            ).json()
            for role in ROLES
        }
        org = source.api.post("/orgs", json={"name": "download-stranger"}).json()["id"]
        keys["stranger"] = source.api.post(
            f"/orgs/{org}/apiKeys", json={"desc": "stranger", "roles": ["ORG_OWNER"]}
        ).json()
        store = Store(f"sqlite:///{server.data_dir / 'appdb.sqlite'}")
        snapshot_id = listing(source, base)["results"][0]["id"]
        yield Backed(server, source, base, snapshot_id, keys, store)
    finally:
        if store is not None:
            store.close()
        if world is not None:
            world.close()
        source.close()


def documents(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def gone(response: httpx.Response, status_name: str) -> None:
    assert response.status_code == 410, response.text
    body = response.json()
    assert body["error"] == 410 and body["parameters"]["statusName"] == status_name, body


def missing(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["errorCode"] == "RESTORE_DOWNLOAD_NOT_FOUND", response.text


def test_only_keys_that_may_restore_see_the_url(backed: Backed) -> None:
    job = backed.create()
    url = job["delivery"]["url"]
    token = url.rsplit("/", 1)[1]
    assert job["delivery"]["statusName"] == "READY" and job["delivery"]["maxDownloads"] == 1
    assert job["delivery"]["expires"].endswith("Z")
    path = f"{backed.base}/restoreJobs/{job['id']}"
    for role in ROLES:
        with backed.client(role) as c:
            one, listed = c.get(path), c.get(f"{backed.base}/restoreJobs")
        assert one.status_code == 200 and listed.status_code == 200, role
        shown = [
            one.json()["delivery"],
            *(j["delivery"] for j in listed.json()["results"] if j["id"] == job["id"]),
        ]
        may_restore = role in ("GROUP_BACKUP_ADMIN", "GROUP_OWNER")
        assert all(d.get("url") == (url if may_restore else None) for d in shown), (role, shown)
        assert all(d["statusName"] == "READY" for d in shown)
        if not may_restore:
            assert token not in one.text + listed.text, role
    with backed.client("stranger") as c:
        assert c.get(path).status_code == 403
        assert c.get(f"{backed.base}/restoreJobs").status_code == 403


@pytest.mark.parametrize("role", ["GROUP_READ_ONLY", "GROUP_AUTOMATION_ADMIN", "stranger"])
def test_roles_that_may_not_restore_create_no_job(backed: Backed, role: str) -> None:
    before = backed.jobs()
    body = {"snapshotId": backed.snapshot_id, "delivery": {"methodName": "HTTP"}}
    with backed.client(role) as c:
        r = c.post(f"{backed.base}/restoreJobs", json=body)
    assert r.status_code == 403, r.text
    assert backed.jobs() == before


def test_the_url_serves_one_download(backed: Backed) -> None:
    job = backed.create()
    url = job["delivery"]["url"]
    first = httpx.get(url, timeout=60)
    assert first.status_code == 200, first.text
    assert documents(first), "the snapshot holds the write load's documents"
    gone(httpx.get(url, timeout=10), "MAX_DOWNLOADS_EXCEEDED")
    with backed.client("GROUP_OWNER") as c:
        delivery = c.get(f"{backed.base}/restoreJobs/{job['id']}").json()["delivery"]
    assert delivery["statusName"] == "MAX_DOWNLOADS_EXCEEDED" and "url" not in delivery


def test_max_downloads_is_honoured(backed: Backed) -> None:
    job = backed.create(maxDownloads=2)
    url = job["delivery"]["url"]
    assert job["delivery"]["maxDownloads"] == 2
    first, second = httpx.get(url, timeout=60), httpx.get(url, timeout=60)
    assert first.status_code == second.status_code == 200
    assert documents(first) == documents(second)
    gone(httpx.get(url, timeout=10), "MAX_DOWNLOADS_EXCEEDED")


def test_concurrent_downloads_of_a_single_use_url_serve_one(backed: Backed) -> None:
    url = backed.create()["delivery"]["url"]
    statuses: list[int] = []
    lock = threading.Lock()

    def fetch() -> None:
        status = httpx.get(url, timeout=60).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=fetch) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(statuses) == [200, 410, 410, 410, 410], statuses


def test_a_token_opens_only_its_own_job(backed: Backed) -> None:
    a, b = backed.create(), backed.create()
    a_token = a["delivery"]["url"].rsplit("/", 1)[1]
    b_url = b["delivery"]["url"]
    swapped = b_url.rsplit("/", 1)[0] + "/" + a_token
    before = backed.jobs()
    missing(httpx.get(swapped, timeout=10))
    assert backed.jobs() == before, "a refused download uses no grant"
    assert httpx.get(b_url, timeout=60).status_code == 200
    assert httpx.get(a["delivery"]["url"], timeout=60).status_code == 200


def test_an_expired_url_is_refused(backed: Backed) -> None:
    job = backed.create()
    # An hour is the shortest expiry: move this job's back in time, as the server's clock would.
    record = backed.store.get(JOBS, job["id"])
    assert record is not None
    backed.store.put(JOBS, {**record, "download": {**record["download"], "expiresMs": 1000}})
    gone(httpx.get(job["delivery"]["url"], timeout=10), "EXPIRED")
    with backed.client("GROUP_BACKUP_ADMIN") as c:
        delivery = c.get(f"{backed.base}/restoreJobs/{job['id']}").json()["delivery"]
    assert delivery["statusName"] == "EXPIRED" and "url" not in delivery
    assert delivery["expires"] == "1970-01-01T00:00:01Z"


def test_only_the_hash_of_the_token_is_stored(backed: Backed) -> None:
    job = backed.create()
    token = job["delivery"]["url"].rsplit("/", 1)[1]
    record = backed.store.get(JOBS, job["id"])
    assert record is not None
    assert token not in json.dumps(record)
    assert record["download"]["tokenHash"] == hashlib.sha256(token.encode()).hexdigest()


def test_forged_download_urls_are_404_and_use_nothing(backed: Backed) -> None:
    job = backed.create()
    url = job["delivery"]["url"]
    prefix, token = url.rsplit("/", 1)
    root = prefix.rsplit("/", 1)[0]
    before = backed.jobs()
    for forged in (
        f"{prefix}/{'A' * len(token)}",
        f"{prefix}/{token[:-1]}",
        f"{prefix}/{token}x",
        f"{prefix}/{'t' * 5000}",
        f"{root}/0123456789abcdef01234567/{token}",
        f"{root}/not-a-job-id/{token}",
        f"{root}/{'a' * 3000}/{token}",
    ):
        missing(httpx.get(forged, timeout=10))
    assert backed.jobs() == before
    assert httpx.get(url, timeout=60).status_code == 200


@pytest.mark.parametrize(
    "delivery",
    [
        {"maxDownloads": 0},
        {"maxDownloads": 101},
        {"maxDownloads": 10**30},
        {"maxDownloads": "1"},
        {"maxDownloads": True},
        {"maxDownloads": 1.5},
        {"expirationHours": 169},
        {"expirationHours": 0},
    ],
)
def test_out_of_range_delivery_is_400_and_creates_no_job(backed: Backed, delivery: dict[str, Any]) -> None:
    before = backed.jobs()
    body = {"snapshotId": backed.snapshot_id, "delivery": {"methodName": "HTTP", **delivery}}
    with backed.client("GROUP_BACKUP_ADMIN") as c:
        r = c.post(f"{backed.base}/restoreJobs", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["parameters"]["field"] == f"delivery.{next(iter(delivery))}"
    assert backed.jobs() == before


def test_a_job_of_another_project_is_not_found_here(backed: Backed, owner: dict[str, Any]) -> None:
    job = backed.create()
    with backed.server.client(owner) as api:
        org = owner["roles"][0]["orgId"]
        other = api.post("/groups", json={"name": "download-other", "orgId": org}).json()["id"]
        for gid in (other, "0123456789abcdef01234567"):
            r = api.get(f"/groups/{gid}/clusters/{backed.base.rsplit('/', 1)[1]}/restoreJobs/{job['id']}")
            assert r.status_code == 404, r.text
        r = api.get(f"{backed.base}/restoreJobs/not-a-job")
        assert r.status_code == 404, r.text

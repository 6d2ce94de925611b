"""Tenant isolation: a user of one organization's project learns nothing of another organization's projects
(names, ids, states) from the installation-wide Restoration Mode banner, which is on every page (a user who
may read a project sees its entry), nor the processes of a project restored into from a restore job's page."""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsmgr.backup.jobs import DEPLOYMENT_JOBS
from opsmgr.restoration.service import RESTORATION
from opsmgr.restoration.state import ModeRecord, ModeState
from opsmgr.server.boot import opened
from opsmgr.server.settings import load_settings
from tests.configs import replica_set_config
from tests.procs import ServerProcess
from tests.ui.uisupport import PASSWORD, UiSession

SECRET = "hidden-tenant-b"
SECRET_HOST = "secret-b0.tenant.sim"


@pytest.fixture(scope="module")
def tenants(server: ServerProcess, owner: dict[str, Any]) -> dict[str, str]:
    """Project A (default organization) and project B (another organization), B ARMED after a restore."""
    api = server.client(owner)
    org_a = api.get("/orgs").json()["results"][0]["id"]
    org_b = api.post("/orgs", json={"name": "Other Org"}).json()["id"]
    group_a = api.post("/groups", json={"name": "tenant-a", "orgId": org_a}).json()["id"]
    group_b = api.post("/groups", json={"name": SECRET, "orgId": org_b}).json()["id"]
    # Their deployments (B's written before B is armed, which refuses changes).
    for group, host, rs in ((group_a, "a0.tenant.sim", "rsa"), (group_b, SECRET_HOST, "rsb")):
        put = api.put(f"/groups/{group}/automationConfig", json=replica_set_config([host], rs))
        assert put.status_code == 200, put.text
    settings, _ = load_settings(data_dir=server.data_dir)
    with opened(settings) as services:
        armed = ModeRecord(
            id=group_b,
            state=ModeState.ARMED,
            armed_at=int(time.time() * 1000),
            awaiting_hosts=[SECRET_HOST],
        )
        services.restoration.store.put(RESTORATION, armed.to_doc())
    server.create_user("tenant-a-owner", PASSWORD, "GROUP_OWNER", group_id=group_a)
    server.create_user("tenant-b-reader", PASSWORD, "GROUP_READ_ONLY", group_id=group_b)
    server.create_user("org-a-owner", PASSWORD, "ORG_OWNER", org_id=org_a)
    return {"a": group_a, "b": group_b}


def test_the_installation_banner_names_only_projects_the_user_may_see(
    server: ServerProcess, tenants: dict[str, str]
) -> None:
    outsider = UiSession(server.url, "tenant-a-owner")
    insider = UiSession(server.url, "tenant-b-reader")
    try:
        seen = insider.get("/ui/restoration/banner")
        assert seen.status_code == 200 and SECRET in seen.text and tenants["b"] in seen.text
        for path in ("/ui/restoration/banner", "/ui/", f"/ui/projects/{tenants['a']}/deployment"):
            page = outsider.get(path)
            assert page.status_code == 200, path
            assert SECRET not in page.text and tenants["b"] not in page.text, path
    finally:
        outsider.close()
        insider.close()


@pytest.fixture(scope="module")
def restored_into_b(server: ServerProcess, tenants: dict[str, str]) -> str:
    """A restore job of project A's replica set into project B's (made by someone who is Backup Admin on
    both); the job is recorded as failed, so nothing acts on it."""
    settings, _ = load_settings(data_dir=server.data_dir)
    with opened(settings) as services:
        cluster = services.clusters.ensure(tenants["a"], ["rsa"])[0]
        target = services.clusters.ensure(tenants["b"], ["rsb"])[0]
        job = {
            "_id": "6b14a0000000000000000001",
            "groupId": tenants["a"],
            "clusterId": str(cluster["_id"]),
            "target": {"snapshotId": "6b14a0000000000000000002"},
            "plan": {"oplogSlices": 0, "targetTimestamp": {"date": "2026-12-05T00:00:00Z"}},
            "snapshotId": "6b14a0000000000000000002",
            "delivery": {
                "methodName": "AUTOMATED_RESTORE",
                "targetGroupId": tenants["b"],
                "targetClusterId": str(target["_id"]),
                "targetReplicaSetName": "rsb",
            },
            "created": int(time.time() * 1000),
            "statusName": "FAILED",
            "pending": [],
            "failure": "staged by the test",
        }
        services.clusters.store.insert(DEPLOYMENT_JOBS, job)
    server.create_user("tenant-a-reader", PASSWORD, "GROUP_READ_ONLY", group_id=tenants["a"])
    return f"/ui/projects/{tenants['a']}/backup/{cluster['_id']}/restores/{job['_id']}"


def test_a_restore_job_page_names_no_process_of_a_project_the_user_may_not_read(
    server: ServerProcess, restored_into_b: str
) -> None:
    reader = UiSession(server.url, "tenant-a-reader")
    org_owner = UiSession(server.url, "org-a-owner")
    try:
        # A's reader, and A's Organization Owner (no role on B either).
        for session in (reader, org_owner):
            for path in (restored_into_b, restored_into_b + "/live"):
                page = session.get(path)
                assert page.status_code == 200, (path, page.text[:300])
                assert "rsb" in page.text  # what GET restoreJobs/{id} shows of the target
                # What it does not: the target's processes (their names, how many, which are loaded).
                assert "rsb_0" not in page.text and SECRET_HOST not in page.text, path
    finally:
        reader.close()
        org_owner.close()

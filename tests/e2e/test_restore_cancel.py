"""Cancelling an automated restore mid-way, end to end: a real server and real ``opsmgr agent`` processes of a
backed-up 3-member sim replica set restored into itself. One member's agent is stopped, so the restore stays
RUNNING after the other two members are loaded (that member never stops: it is neither loaded nor touched).
``opsmgr backup cancel`` ends the job CANCELLED (KILLED) stating that rs0_0 and rs0_1 were restored and rs0_2
still holds its data from before; with the stopped agent back, the members are all up and the set has a
primary. Around it the route's refusals: a read-only key (403), another project (404), forged ids (4xx
JSON), a job that ended (409)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.backup.jobs import DEPLOYMENT_JOBS
from opsmgr.store.engine import Store
from tests.deployments import Deployment
from tests.e2e.simbackup import cluster_id, listing
from tests.procs import ServerProcess, run_cli, wait_for
from tests.ui.test_backup import backed_up

pytestmark = pytest.mark.e2e

HOSTS = [f"c{i}.cancel.sim" for i in range(3)]


@pytest.fixture
def deployment(server: ServerProcess, owner: dict[str, Any], tmp_path: Path) -> Iterator[Deployment]:
    d = backed_up(server, owner, tmp_path, "cancel-restore", HOSTS)
    yield d
    d.close()


def pending(server: ServerProcess, job_id: str) -> list[str]:
    """The job's processes not loaded yet, as the server keeps them (the API does not show them)."""
    store = Store(f"sqlite:///{server.data_dir / 'appdb.sqlite'}")
    try:
        return list((store.get(DEPLOYMENT_JOBS, job_id) or {}).get("pending", []))
    finally:
        store.close()


def _key(d: Deployment, group_id: str, role: str) -> dict[str, Any]:
    made = d.api.post(f"/groups/{group_id}/apiKeys", json={"desc": role, "roles": [role]})
    assert made.status_code in (200, 201), made.text
    return dict(made.json())


def test_a_restore_cancelled_mid_way_with_the_cli(
    server: ServerProcess, owner: dict[str, Any], deployment: Deployment
) -> None:
    d = deployment
    cid = cluster_id(d)
    base = f"/groups/{d.group_id}/clusters/{cid}"
    d.agents[HOSTS[2]].stop()
    snapshot = listing(d, base)["results"][0]["id"]
    into = {"methodName": "AUTOMATED_RESTORE", "targetGroupId": d.group_id, "targetClusterId": cid}
    made = d.api.post(f"{base}/restoreJobs", json={"snapshotId": snapshot, "delivery": into})
    assert made.status_code == 200, made.text
    job_id = made.json()["results"][0]["id"]
    wait_for(lambda: pending(server, job_id) == ["rs0_2"], 40, what="rs0_0 and rs0_1 loaded")
    assert d.api.get(f"{base}/restoreJobs/{job_id}").json()["phase"] == "RUNNING"

    with server.client(_key(d, d.group_id, "GROUP_READ_ONLY")) as reader:
        refused = reader.delete(f"{base}/restoreJobs/{job_id}")
    assert refused.status_code == 403 and refused.json()["errorCode"], refused.text
    other = d.api.post("/groups", json={"name": "cancel-other"}).json()["id"]
    with server.client(_key(d, other, "GROUP_OWNER")) as stranger:
        elsewhere = stranger.delete(f"/groups/{other}/clusters/{cid}/restoreJobs/{job_id}")
    assert elsewhere.status_code == 404, elsewhere.text
    for forged in ("0" * 24, "x" * 300, "%00", "..%2F..", "😀"):
        r = d.api.delete(f"{base}/restoreJobs/{forged}")
        assert 400 <= r.status_code < 500 and r.json()["detail"], (forged, r.status_code, r.text)
    assert d.api.get(f"{base}/restoreJobs/{job_id}").json()["phase"] == "RUNNING"

    keys = ("--public-key", owner["publicKey"], "--private-key", owner["privateKey"])
    cli = ("--url", server.url, *keys, "--group", d.group_id, "--cluster", "rs0")
    done = run_cli("backup", "cancel", job_id, *cli)
    assert done.returncode == 0, done.stderr
    assert f"restore job {job_id} CANCELLED: rs0_0, rs0_1 were restored to " in done.stdout, done.stdout
    assert "rs0_2 still holds its data from before the restore" in done.stdout, done.stdout
    job = d.api.get(f"{base}/restoreJobs/{job_id}").json()
    assert (job["statusName"], job["phase"]) == ("KILLED", "CANCELLED"), job
    held = job["cancellation"]
    assert (held["restored"], held["partiallyLoaded"], held["unchanged"]) == (
        ["rs0_0", "rs0_1"],
        [],
        ["rs0_2"],
    )

    listed = run_cli("backup", "jobs", *cli)
    assert listed.returncode == 0 and "CANCELLED" in listed.stdout, listed.stdout + listed.stderr
    again = run_cli("backup", "cancel", job_id, *cli)
    assert again.returncode != 0 and "already CANCELLED" in again.stdout + again.stderr
    twice = d.api.delete(f"{base}/restoreJobs/{job_id}")
    assert twice.status_code == 409 and twice.json()["errorCode"] == "RESTORE_JOB_NOT_CANCELLABLE"

    # The members restart as a restore's end restarts them; the stopped agent back, the set is whole.
    d.agents[HOSTS[2]].start()
    d.wait_goal(int(d.status()["goalVersion"]), 3, timeout=40)
    assert all(
        not p.get("disabled") for p in d.api.get(f"/groups/{d.group_id}/automationConfig").json()["processes"]
    )

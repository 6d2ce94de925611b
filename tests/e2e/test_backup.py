"""Continuous backup and point-in-time restore end to end: a real server, real ``opsmgr agent`` processes on
one sim world file with a write load, backup started through the public API, snapshots and a PITR window
that advances, an on-demand snapshot, and an automated restore into another project's replica set whose
data equals, document for document, the source's at the chosen instant (the target is inclusive).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import cluster_id, dump_at_a_position, primary
from tests.procs import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

SOURCE_HOSTS = [f"src{i}.backup.sim" for i in range(3)]
TARGET_HOSTS = [f"dst{i}.backup.sim" for i in range(3)]


@pytest.fixture
def pair(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path
) -> Iterator[tuple[Deployment, Deployment]]:
    source = Deployment(server, owner, tmp_path, "backup-source")
    target = Deployment(server, owner, tmp_path, "backup-target")
    try:
        yield source, target
    finally:
        source.close()
        target.close()


def test_backup_snapshots_window_and_point_in_time_restore(pair: tuple[Deployment, Deployment]) -> None:
    source, target = pair
    for host in SOURCE_HOSTS:
        source.agent(host)
    for host in TARGET_HOSTS:
        target.agent(host)
    source.wait_goal(source.put(replica_set_config(SOURCE_HOSTS, rs="src")), 3)
    target.wait_goal(target.put(replica_set_config(TARGET_HOSTS, rs="dst")), 3)
    world = SimWorld.open(source.root / "world.sqlite")
    try:
        found = primary(world, SOURCE_HOSTS, "src")
        assert found is not None
        set_id = world.set_id_of(*found)
        assert set_id is not None
        world.set_write_load(set_id, WriteLoad(rate=40, keys=100, payload_bytes=32))

        cid = cluster_id(source)
        base = f"/groups/{source.group_id}/clusters/{cid}"
        r = source.api.patch(f"/groups/{source.group_id}/backupConfigs/{cid}", json={"statusName": "STARTED"})
        assert r.status_code == 200 and r.json()["statusName"] == "STARTED", r.text

        def listing() -> dict[str, Any]:
            return dict(source.api.get(f"{base}/snapshots").json())

        wait_for(
            lambda: listing()["totalCount"] >= 1 and listing()["pitrWindow"], 60, what="a first snapshot"
        )
        first_end = listing()["pitrWindow"][-1]["end"]["time"]
        wait_for(
            lambda: listing()["pitrWindow"][-1]["end"]["time"] > first_end,
            30,
            what="the PITR window advancing",
        )

        r = source.api.post(f"{base}/snapshots")
        assert r.status_code == 200, r.text
        (on_demand,) = r.json()["snapshotIds"]
        wait_for(
            lambda: any(s["id"] == on_demand for s in listing()["results"]), 30, what="the on-demand snapshot"
        )
        snap = source.api.get(f"{base}/snapshots/{on_demand}").json()
        assert snap["id"] == on_demand and snap["snapshotType"] == "ON_DEMAND", snap

        # The instant to restore to: the source's documents as they were at one oplog position.
        host, name = primary(world, SOURCE_HOSTS, "src") or ("", "")
        position, expected = dump_at_a_position(world, host, name)
        assert expected, "the write load wrote documents"
        wait_for(
            lambda: listing()["pitrWindow"][-1]["end"]["time"] > position >> 32, 30, what="window past it"
        )

        outside = source.api.post(
            f"{base}/restoreJobs",
            json={"pointInTimeUTCMillis": 1000, "delivery": {"methodName": "HTTP", "expirationHours": 1}},
        )
        assert outside.status_code == 400, outside.text
        assert outside.json()["parameters"]["restorableRanges"], outside.text

        target_cid = cluster_id(target)
        job = source.api.post(
            f"{base}/restoreJobs",
            json={
                "oplogTs": position >> 32,
                "oplogInc": position & 0xFFFFFFFF,
                "delivery": {
                    "methodName": "AUTOMATED_RESTORE",
                    "targetGroupId": target.group_id,
                    "targetClusterId": target_cid,
                },
            },
        )
        assert job.status_code == 200, job.text
        assert job.json()["totalCount"] == 1, "Ops Manager answers the jobs created as a list"
        job_id = job.json()["results"][0]["id"]

        def job_state() -> str:
            return str(source.api.get(f"{base}/restoreJobs/{job_id}").json()["statusName"])

        wait_for(lambda: job_state() in ("FINISHED", "BROKEN"), 60, what="the restore job")
        assert job_state() == "FINISHED", source.api.get(f"{base}/restoreJobs/{job_id}").json()

        def restored() -> bool:
            p = primary(world, TARGET_HOSTS, "dst")
            return p is not None and world.dump(*p) == expected

        wait_for(restored, 60, what="the target's primary holding the source's documents at the instant")

        # An agent (of one of the project's hosts) holding a newer config than the target project's puts it in
        # Restoration Mode: restore jobs into it are deployment changes and are refused. The target's agents
        # are stopped first: running, they report their real version within a poll and the mode reconciles
        # and exits before the refusal is tried.
        for agent in target.agents.values():
            agent.stop()
        poll = httpx.get(
            f"{target.server.url}/agents/api/automation/conf/v1/{target.group_id}",
            params={"hostname": TARGET_HOSTS[0], "cv": 10_000},
            auth=(target.group_id, target.agent_key),
        )
        assert poll.status_code in (200, 304), poll.text
        wait_for(
            lambda: (
                target.api.get(f"/groups/{target.group_id}/restorationMode").json()["state"] != "INACTIVE"
            ),
            30,
            what="Restoration Mode",
        )
        refused = source.api.post(
            f"{base}/restoreJobs",
            json={
                "snapshotId": on_demand,
                "delivery": {
                    "methodName": "AUTOMATED_RESTORE",
                    "targetGroupId": target.group_id,
                    "targetClusterId": target_cid,
                },
            },
        )
        assert refused.status_code == 409 and refused.json()["errorCode"] == "RESTORATION_MODE_ACTIVE", (
            refused.text
        )
    finally:
        world.close()

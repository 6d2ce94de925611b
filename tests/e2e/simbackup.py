"""Helpers of the backup end-to-end tests: a sim replica set under a write load backed up by a real server,
read back from the sim world file (the primary, its documents at one oplog position)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.deployments import Deployment
from tests.procs import wait_for


def cluster_id(d: Deployment) -> str:
    clusters = d.api.get(f"/groups/{d.group_id}/clusters").json()["results"]
    assert len(clusters) == 1 and clusters[0]["typeName"] == "REPLICA_SET"
    return str(clusters[0]["id"])


def primary(world: SimWorld, hosts: list[str], rs: str) -> tuple[str, str] | None:
    for i, host in enumerate(hosts):
        name = f"{rs}_{i}"
        try:
            status = world.rs_status(host, name)
        except Exception:  # a member being restarted does not answer
            continue
        if status is not None and status.my_state.value == "PRIMARY":
            return host, name
    return None


def dump_at_a_position(world: SimWorld, host: str, name: str) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """The primary's documents and the oplog position they are at (no entry between the two reads)."""
    for _ in range(200):
        before = world.oplog_window(host, name)
        docs = world.dump(host, name)
        after = world.oplog_window(host, name)
        if before is not None and after is not None and before.last_ts == after.last_ts:
            return before.last_ts, docs
    raise AssertionError("the write load never paused long enough for a dump at one position")


def set_load(world: SimWorld, hosts: list[str], rs: str, load: WriteLoad) -> None:
    found = primary(world, hosts, rs)
    assert found is not None, "no primary"
    set_id = world.set_id_of(*found)
    assert set_id is not None
    world.set_write_load(set_id, load)


def start_backup(d: Deployment) -> str:
    """Starts backup of the project's one cluster; returns the cluster's snapshots path."""
    cid = cluster_id(d)
    r = d.api.patch(f"/groups/{d.group_id}/backupConfigs/{cid}", json={"statusName": "STARTED"})
    assert r.status_code == 200 and r.json()["statusName"] == "STARTED", r.text
    return f"/groups/{d.group_id}/clusters/{cid}"


def listing(d: Deployment, base: str) -> dict[str, Any]:
    return dict(d.api.get(f"{base}/snapshots").json())


def wait_window_past(d: Deployment, base: str, position: int, timeout: float = 30) -> None:
    """Until the PITR window's end is at or after the BSON ``position``."""

    def past() -> bool:
        window = listing(d, base)["pitrWindow"]
        return bool(window) and (window[-1]["end"]["time"], window[-1]["end"]["increment"]) >= (
            position >> 32,
            position & 0xFFFFFFFF,
        )

    wait_for(past, timeout, what=f"the window reaching {position >> 32}:{position & 0xFFFFFFFF}")


def download(d: Deployment, base: str, target: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """An HTTP restore of ``target`` (``snapshotId``, ``oplogTs``/``oplogInc``...), read back."""
    job = d.api.post(
        f"{base}/restoreJobs", json={**target, "delivery": {"methodName": "HTTP", "expirationHours": 1}}
    )
    assert job.status_code == 200, job.text
    (created,) = job.json()["results"]
    response = httpx.get(created["delivery"]["url"], timeout=60)
    assert response.status_code == 200, response.text
    return [(d["ns"], d["doc"]) for d in map(json.loads, response.text.splitlines()) if d]


def restore_matches_now(d: Deployment, base: str, world: SimWorld, hosts: list[str], rs: str) -> None:
    """The source's documents at a position reached now are what a restore to that position gives."""
    found = primary(world, hosts, rs)
    assert found is not None
    position, expected = dump_at_a_position(world, *found)
    wait_window_past(d, base, position)
    got = download(d, base, {"oplogTs": position >> 32, "oplogInc": position & 0xFFFFFFFF})
    assert got == expected

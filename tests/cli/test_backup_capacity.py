"""Backup capacity planning on a real server backing up a sim replica set (one member, a real agent) with two
snapshots: ``GET .../clusters/{id}/backup/capacity`` and ``GET /admin/backup/capacity`` report the bytes the
blockstore really holds (its block files) and the snapshots' figures, refuse keys without the role and
forged cluster ids, and ``opsmgr backup capacity`` shows them as tables; ``opsmgr backup daemon`` shows the
daemon's job for the source (to an org key only).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import cluster_id, listing, set_load, start_backup
from tests.procs import ServerProcess, run_cli, wait_for

pytestmark = pytest.mark.e2e

SOURCE = ["src0.capacity.sim"]


@dataclass
class Backed:
    server: ServerProcess
    source: Deployment
    base: str
    cid: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def backed(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backed]:
    root = tmp_path_factory.mktemp("capacity")
    source = Deployment(server, owner, root, "capacity-source")
    world: SimWorld | None = None
    try:
        source.agent(SOURCE[0])
        source.wait_goal(source.put(replica_set_config(SOURCE, rs="src")), 1)
        world = SimWorld.open(root / "world.sqlite")
        set_load(world, SOURCE, "src", WriteLoad(rate=40, keys=200, payload_bytes=64))
        base = start_backup(source)
        wait_for(lambda: listing(source, base)["totalCount"] >= 1, 60, what="a first snapshot")
        r = source.api.post(f"{base}/snapshots")
        assert r.status_code == 200, r.text
        wait_for(lambda: listing(source, base)["totalCount"] >= 2, 60, what="the on-demand snapshot")
        # The figures are compared with the files: no more writes, so only empty slices follow.
        set_load(world, SOURCE, "src", WriteLoad(rate=0, keys=200, payload_bytes=64))
        env = {
            "OPSMGR_URL": server.url,
            "OPSMGR_PUBLIC_KEY": owner["publicKey"],
            "OPSMGR_PRIVATE_KEY": owner["privateKey"],
        }
        yield Backed(server, source, base, cluster_id(source), env)
    finally:
        if world is not None:
            world.close()
        source.close()


def _block_files(server: ServerProcess) -> int:
    blocks = server.data_dir / "blockstore" / "blocks"
    return sum(f.stat().st_size for f in blocks.rglob("*") if f.is_file())


def test_the_cluster_figures_are_its_snapshots(backed: Backed) -> None:
    figures = backed.source.api.get(f"{backed.base}/backup/capacity").json()
    snaps = listing(backed.source, backed.base)["results"]
    assert figures["clusterId"] == backed.cid and figures["snapshotCount"] == len(snaps) >= 2
    parts = [p for s in snaps for p in s["parts"]]
    assert figures["logicalBytes"] == sum(p["dataSizeBytes"] for p in parts)
    # Each snapshot's stored bytes are the blocks it added: together, its unique blocks.
    assert figures["snapshotStoredBytes"] == sum(p["storageSizeBytes"] for p in parts)
    assert figures["storedBytes"] == figures["snapshotStoredBytes"] + figures["oplogStoredBytes"]
    assert figures["dedupRatio"] > 1.0  # the second snapshot shares most blocks of the first
    assert figures["growthMeasuredFromSnapshots"] == len(snaps) and figures["growthBytesPerDay"] >= 0
    assert [p["days"] for p in figures["projections"]] == [30, 90, 365]
    assert all(p["storedBytes"] >= figures["storedBytes"] for p in figures["projections"])


def test_the_blockstore_figures_are_its_files(backed: Backed) -> None:
    seen: dict[str, Any] = {}

    def matches() -> bool:
        seen.update(backed.source.api.get("/admin/backup/capacity").json())
        return bool(seen["storedBytes"] == _block_files(backed.server))

    wait_for(matches, 30, what="the blockstore's stored bytes equal to its block files")
    (mine,) = [s for s in seen["results"] if s["clusterId"] == backed.cid]
    assert 0 < mine["storedBytes"] <= seen["storedBytes"]
    assert 0 < seen["diskFreeBytes"] <= seen["diskTotalBytes"]
    assert seen["totalCount"] == seen["sourceCount"] == 1


def test_keys_without_the_role_and_forged_ids_are_refused(backed: Backed) -> None:
    server, group = backed.server, backed.source.group_id
    reader = server.create_key("GROUP_READ_ONLY", group_id=group)
    with server.client(reader) as api:
        assert api.get(f"{backed.base}/backup/capacity").status_code == 200
        refused = api.get("/admin/backup/capacity")
        assert refused.status_code == 403 and "ORG_OWNER" in refused.json()["detail"], refused.text
    other = backed.source.api.post("/groups", json={"name": "capacity-other"}).json()["id"]
    stranger = server.create_key("GROUP_READ_ONLY", group_id=other)
    with server.client(stranger) as api:
        assert api.get(f"{backed.base}/backup/capacity").status_code in (401, 403)
    for forged in ("0" * 24, "x" * 5000, "%00"):
        r = backed.source.api.get(f"/groups/{group}/clusters/{forged}/backup/capacity")
        assert 400 <= r.status_code < 500 and "detail" in r.json(), r.text


def test_the_cli_shows_the_cluster_and_the_blockstore(backed: Backed) -> None:
    done = run_cli(
        "backup", "capacity", "--group", backed.source.group_id, "--cluster", "src", env=backed.env
    )
    assert done.returncode == 0, done.stderr
    assert f"capacity of cluster {backed.cid}" in done.stdout and "in 365 days" in done.stdout, done.stdout
    assert "measured from 2 recent snapshot(s)" in done.stdout, done.stdout
    whole = run_cli("backup", "capacity", env=backed.env)
    assert whole.returncode == 0, whole.stderr
    assert "whole blockstore" in whole.stdout and f"src ({backed.cid})" in whole.stdout, whole.stdout
    assert "disk:" in whole.stdout and "free of" in whole.stdout, whole.stdout
    lonely = run_cli("backup", "capacity", "--cluster", "src", env=backed.env)
    assert lonely.returncode != 0 and "--group" in lonely.stdout + lonely.stderr


def test_a_reader_key_is_refused_the_whole_blockstore_by_the_cli(backed: Backed) -> None:
    reader = backed.server.create_key("GROUP_READ_ONLY", group_id=backed.source.group_id)
    env = {**backed.env, "OPSMGR_PUBLIC_KEY": reader["publicKey"], "OPSMGR_PRIVATE_KEY": reader["privateKey"]}
    done = run_cli("backup", "capacity", env=env)
    assert done.returncode != 0 and "ORG_OWNER" in done.stdout + done.stderr


def test_the_cli_shows_the_daemons_jobs(backed: Backed) -> None:
    done = run_cli("backup", "daemon", env=backed.env)
    assert done.returncode == 0, done.stderr
    assert "backup daemon: 1 source(s)" in done.stdout and "src (" in done.stdout, done.stdout
    assert " ago" in done.stdout, "the source has snapshots: the age of its last one is shown"
    reader = backed.server.create_key("GROUP_READ_ONLY", group_id=backed.source.group_id)
    env = {**backed.env, "OPSMGR_PUBLIC_KEY": reader["publicKey"], "OPSMGR_PRIVATE_KEY": reader["privateKey"]}
    refused = run_cli("backup", "daemon", env=env)
    assert refused.returncode != 0 and "ORG_OWNER" in refused.stdout + refused.stderr

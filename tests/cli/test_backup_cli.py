"""``opsmgr backup`` through the real console script against a real server backing up a sim replica set
(one member per set, each with a real agent): the snapshots table with the PITR window, an on-demand
snapshot, an automated restore into another project with a progress bar, a download whose content is the
source's documents at the chosen instant, 400 outside the window listing the ranges, and 409 once the
snapshot's blocks are gone from the blockstore. The tests run in order on one backed-up deployment.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import (
    cluster_id,
    dump_at_a_position,
    listing,
    primary,
    set_load,
    start_backup,
    wait_window_past,
)
from tests.procs import ServerProcess, run_cli, wait_for

pytestmark = pytest.mark.e2e

SOURCE = ["src0.cli.sim"]
TARGET = ["dst0.cli.sim"]


@dataclass
class Backed:
    source: Deployment
    target: Deployment
    world: SimWorld
    base: str
    env: dict[str, str]

    def cli(self, *args: str) -> Any:
        return run_cli("backup", *args, "--group", self.source.group_id, "--cluster", "src", env=self.env)


@pytest.fixture(scope="module")
def backed(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backed]:
    root = tmp_path_factory.mktemp("cli-backup")
    source = Deployment(server, owner, root, "cli-backup-source")
    target = Deployment(server, owner, root, "cli-backup-target")
    world: SimWorld | None = None
    try:
        for host in SOURCE:
            source.agent(host)
        for host in TARGET:
            target.agent(host)
        source.wait_goal(source.put(replica_set_config(SOURCE, rs="src")), 1)
        target.wait_goal(target.put(replica_set_config(TARGET, rs="dst")), 1)
        world = SimWorld.open(root / "world.sqlite")
        set_load(world, SOURCE, "src", WriteLoad(rate=30, keys=50, payload_bytes=32))
        base = start_backup(source)
        wait_for(lambda: listing(source, base)["totalCount"] >= 1, 60, what="a first snapshot")
        env = {
            "OPSMGR_URL": server.url,
            "OPSMGR_PUBLIC_KEY": owner["publicKey"],
            "OPSMGR_PRIVATE_KEY": owner["privateKey"],
        }
        yield Backed(source, target, world, base, env)
    finally:
        if world is not None:
            world.close()
        source.close()
        target.close()


def _expected_at_a_position(b: Backed) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """The restore options naming an oplog position inside the window, and the documents at it."""
    found = primary(b.world, SOURCE, "src")
    assert found is not None
    position, docs = dump_at_a_position(b.world, *found)
    assert docs, "the write load wrote documents"
    wait_window_past(b.source, b.base, position)
    return ["--oplog-ts", str(position >> 32), "--oplog-inc", str(position & 0xFFFFFFFF)], docs


def test_snapshots_lists_the_snapshots_and_the_window(backed: Backed) -> None:
    done = backed.cli("snapshots")
    assert done.returncode == 0, done.stderr
    first = listing(backed.source, backed.base)["results"][-1]
    assert first["id"] in done.stdout
    assert "point-in-time window:" in done.stdout and "range" in done.stdout, done.stdout


def test_an_on_demand_snapshot_waits_until_it_is_taken(backed: Backed) -> None:
    before = {s["id"] for s in listing(backed.source, backed.base)["results"]}
    done = backed.cli("snapshot")
    assert done.returncode == 0, done.stderr
    after = {s["id"] for s in listing(backed.source, backed.base)["results"]}
    (new,) = after - before
    assert f"snapshot taken: {new}" in done.stdout, done.stdout


def test_a_point_in_time_download_holds_the_documents_at_that_instant(backed: Backed, tmp_path: Path) -> None:
    at, expected = _expected_at_a_position(backed)
    out = tmp_path / "restored.jsonl"
    done = backed.cli("restore", *at, "--download", str(out))
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in out.read_text().splitlines() if line]
    assert [(d["ns"], d["doc"]) for d in got] == expected
    assert f"downloaded {out.stat().st_size:,} bytes" in done.stdout


def test_an_automated_restore_into_another_project(backed: Backed) -> None:
    at, expected = _expected_at_a_position(backed)
    done = backed.cli(
        "restore",
        *at,
        "--target-group",
        backed.target.group_id,
        "--target-cluster",
        cluster_id(backed.target),
        "--timeout",
        "90",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FINISHED" in done.stdout

    def restored() -> bool:
        p = primary(backed.world, TARGET, "dst")
        return p is not None and backed.world.dump(*p) == expected

    wait_for(restored, 60, what="the target holding the source's documents at the instant")
    jobs = backed.cli("jobs")
    assert jobs.returncode == 0 and "FINISHED" in jobs.stdout, jobs.stdout + jobs.stderr


def test_a_point_outside_the_window_is_refused_with_the_ranges(backed: Backed, tmp_path: Path) -> None:
    done = backed.cli("restore", "--point-in-time-ms", "1000", "--download", str(tmp_path / "x.jsonl"))
    assert done.returncode != 0
    assert "HTTP 400" in done.stderr and "restorable ranges:" in done.stderr, done.stderr
    window = listing(backed.source, backed.base)["pitrWindow"]
    assert window[0]["start"]["date"] in done.stderr
    bad = backed.cli("restore", "--at", "yesterday", "--download", str(tmp_path / "y.jsonl"))
    assert bad.returncode != 0 and "ISO 8601" in bad.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_a_snapshot_whose_blocks_are_gone_is_409(backed: Backed, tmp_path: Path) -> None:
    snap = listing(backed.source, backed.base)["results"][0]["id"]
    blocks = backed.source.server.data_dir / "blockstore" / "blocks"
    # Moved away in one step first: the server goes on writing the slices its agents ship meanwhile.
    gone = blocks.rename(tmp_path / "blocks-gone")
    shutil.rmtree(gone)
    done = backed.cli("restore", "--snapshot", snap, "--download", str(tmp_path / "gone.jsonl"))
    assert done.returncode != 0
    assert "HTTP 409" in done.stderr and "snapshot blocks missing" in done.stderr, done.stderr

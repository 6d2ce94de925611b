"""SIGKILL at the worst moments, stopped there deterministically by ``opsmgr.backup.crashpoints``:

- the agent, right after the daemon acknowledged a slice and before the agent used the answer;
- the server, with every block of an on-demand snapshot written and its metadata not committed.

After the restart nothing acknowledged is lost (the window's end never goes back), no partial snapshot is
ever listed, the chain stays continuous (one range, no new hole) and a restore to a point after the crash
equals the source's documents at that point. Then a flipped bit in the blockstore: the integrity job run at
start-up reports it, a BACKUP_BLOCK_CORRUPT alert opens, and a restore that needs the block is a 409.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.backup.crashpoints import ENV
from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import listing, restore_matches_now, set_load, start_backup
from tests.procs import ServerProcess, free_port, wait_for

pytestmark = pytest.mark.e2e

LOAD = WriteLoad(rate=40, keys=60, payload_bytes=32)


def _end(window: list[dict[str, Any]]) -> tuple[int, int]:
    return window[-1]["end"]["time"], window[-1]["end"]["increment"]


def _backed_up(d: Deployment, hosts: list[str], rs: str) -> tuple[SimWorld, str]:
    d.wait_goal(d.put(replica_set_config(hosts, rs=rs)), 1)
    world = SimWorld.open(d.root / "world.sqlite")
    set_load(world, hosts, rs, LOAD)
    base = start_backup(d)
    wait_for(
        lambda: listing(d, base)["totalCount"] >= 1 and listing(d, base)["pitrWindow"], 60, what="snapshot"
    )
    first = _end(listing(d, base)["pitrWindow"])
    wait_for(lambda: _end(listing(d, base)["pitrWindow"]) > first, 30, what="the window advancing")
    return world, base


def _continuous_past(d: Deployment, base: str, before: tuple[int, int]) -> None:
    """One range (no hole) whose end moves past ``before``, what was acknowledged before the crash."""
    wait_for(lambda: _end(listing(d, base)["pitrWindow"]) > before, 60, what="the window past the crash")
    window = listing(d, base)["pitrWindow"]
    assert len(window) == 1, window


def test_agent_killed_after_a_slice_upload_resumes_without_loss(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "agent-crash"
    monkeypatch.setenv(ENV, f"agent-slice-upload:{marker}")
    d = Deployment(server, owner, tmp_path, "crash-agent")
    world: SimWorld | None = None
    try:
        agent = d.agent("ca0.crash.sim")
        world, base = _backed_up(d, ["ca0.crash.sim"], "ca")
        Path(f"{marker}.armed").touch()
        wait_for(marker.exists, 30, what="the agent stopped after an acknowledged slice")
        acknowledged = _end(listing(d, base)["pitrWindow"])
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        Path(f"{marker}.armed").unlink()
        monkeypatch.delenv(ENV)
        agent.start()
        _continuous_past(d, base, acknowledged)
        restore_matches_now(d, base, world, ["ca0.crash.sim"], "ca")
    finally:
        if world is not None:
            world.close()
        d.close()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    marker = tmp_path / "daemon-crash"
    srv = ServerProcess(tmp_path / "data", free_port(), env={ENV: f"daemon-snapshot-commit:{marker}"})
    try:
        yield srv.start()
    finally:
        srv.stop()


def test_server_killed_mid_snapshot_shows_no_partial_snapshot_and_loses_nothing(
    own_server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "daemon-crash"
    owner = own_server.create_key("ORG_OWNER")
    d = Deployment(own_server, owner, tmp_path, "crash-daemon")
    world: SimWorld | None = None
    try:
        d.agent("cd0.crash.sim")
        world, base = _backed_up(d, ["cd0.crash.sim"], "cd")
        Path(f"{marker}.armed").touch()
        r = d.api.post(f"{base}/snapshots")
        assert r.status_code == 200, r.text
        (pending,) = r.json()["snapshotIds"]
        wait_for(marker.exists, 60, what="the daemon stopped before the snapshot's metadata commit")
        seen = listing(d, base)
        assert pending not in {s["id"] for s in seen["results"]}, "a partial snapshot is listed"
        acknowledged = _end(seen["pitrWindow"])
        own_server.kill()
        Path(f"{marker}.armed").unlink()
        own_server.env = {}
        own_server.start()

        after = listing(d, base)
        assert all(s["complete"] for s in after["results"])
        assert _end(after["pitrWindow"]) >= acknowledged, "an acknowledged slice was lost"
        _continuous_past(d, base, acknowledged)
        # The request survived the crash: the snapshot is taken again, whole.
        wait_for(
            lambda: pending in {s["id"] for s in listing(d, base)["results"]}, 60, what="the retaken snapshot"
        )
        restore_matches_now(d, base, world, ["cd0.crash.sim"], "cd")

        # A flipped bit in every block: reported at the next start, alerted, and restores refuse.
        own_server.stop()
        blocks = [p for p in (own_server.data_dir / "blockstore" / "blocks").rglob("*") if p.is_file()]
        assert blocks
        for path in blocks:
            data = bytearray(path.read_bytes())
            data[-1] ^= 0x01
            path.write_bytes(bytes(data))
        own_server.start()

        def corrupt_alert() -> list[dict[str, Any]]:
            alerts = d.api.get(f"/groups/{d.group_id}/alerts", params={"status": "OPEN"}).json()["results"]
            return [a for a in alerts if a["eventTypeName"] == "BACKUP_BLOCK_CORRUPT"]

        (alert,) = wait_for(corrupt_alert, 60, what="the corrupt block alert")
        assert "corrupt or missing block" in alert["message"]
        refused = d.api.post(
            f"{base}/restoreJobs",
            json={"snapshotId": pending, "delivery": {"methodName": "HTTP", "expirationHours": 1}},
        )
        assert refused.status_code == 409 and "corrupt" in refused.json()["detail"], refused.text
    finally:
        if world is not None:
            world.close()
        d.close()

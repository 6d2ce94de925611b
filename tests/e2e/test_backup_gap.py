"""A gap forced on a real agent: its source's oplog rolls over while the agent is paused (SIGSTOP), so the
position after the last shipped entry is gone. The agent reports the gap, a BACKUP_PITR_WINDOW_GAP alert is
raised, the window shows the hole, the agent resyncs by itself and the daemon snapshots the new chain at
once, so the window advances again after the hole and RESYNC_REQUIRED is (or ends) resolved.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import listing, primary, set_load, start_backup
from tests.procs import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

HOSTS = ["gap0.backup.sim"]
QUIET = WriteLoad(rate=10, keys=20, payload_bytes=32)
FLOOD = WriteLoad(rate=5000, keys=5000, payload_bytes=1000)


@pytest.fixture
def source(server: ServerProcess, owner: dict[str, Any], tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(server, owner, tmp_path, "backup-gap")
    try:
        yield d
    finally:
        d.close()


def _alerts(d: Deployment, status: str | None = None) -> list[dict[str, Any]]:
    params = {"status": status} if status else {}
    return list(d.api.get(f"/groups/{d.group_id}/alerts", params=params).json()["results"])


def _open(d: Deployment, event: str) -> bool:
    return any(a["eventTypeName"] == event for a in _alerts(d, "OPEN"))


def test_a_gap_raises_an_alert_shows_a_hole_and_a_resync_heals_the_window(source: Deployment) -> None:
    agent = source.agent(HOSTS[0])
    source.wait_goal(source.put(replica_set_config(HOSTS, rs="gap", oplog_size_mb=1)), 1)
    world = SimWorld.open(source.root / "world.sqlite")
    try:
        set_load(world, HOSTS, "gap", QUIET)
        base = start_backup(source)
        wait_for(lambda: listing(source, base)["totalCount"] >= 1, 60, what="a first snapshot")
        first_end = listing(source, base)["pitrWindow"][-1]["end"]["time"]
        wait_for(
            lambda: listing(source, base)["pitrWindow"][-1]["end"]["time"] > first_end,
            30,
            what="window advancing",
        )
        assert not _open(source, "BACKUP_PITR_WINDOW_GAP")

        # Pause the agent, flood the 1 MB oplog past everything it shipped, then let it go on.
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGSTOP)
        try:
            shipped = listing(source, base)["pitrWindow"][-1]["end"]
            shipped_ts = (shipped["time"] << 32) | shipped["increment"]
            set_load(world, HOSTS, "gap", FLOOD)
            found = primary(world, HOSTS, "gap")
            assert found is not None

            def rolled_over() -> bool:
                window = world.oplog_window(*found)
                return window is not None and window.first_ts > shipped_ts

            wait_for(rolled_over, 30, what="the oplog rolling over past the shipped position")
            set_load(world, HOSTS, "gap", QUIET)
        finally:
            agent.proc.send_signal(signal.SIGCONT)

        wait_for(lambda: _open(source, "BACKUP_PITR_WINDOW_GAP"), 60, what="the window gap alert")
        (gap_alert,) = [a for a in _alerts(source, "OPEN") if a["eventTypeName"] == "BACKUP_PITR_WINDOW_GAP"]
        assert "hole" in gap_alert["message"] and gap_alert["replicaSetName"] == "gap", gap_alert
        window = listing(source, base)["pitrWindow"]
        assert len(window) == 2, window
        assert (window[0]["end"]["time"] << 32) | window[0]["end"]["increment"] <= shipped_ts
        hole_start = window[0]["end"]["time"]

        # A point in the hole is refused, listing both ranges.
        inside = (window[0]["end"]["time"] << 32 | window[0]["end"]["increment"]) + 1
        refused = source.api.post(
            f"{base}/restoreJobs",
            json={
                "oplogTs": inside >> 32,
                "oplogInc": inside & 0xFFFFFFFF,
                "delivery": {"methodName": "HTTP", "expirationHours": 1},
            },
        )
        assert refused.status_code == 400 and len(refused.json()["parameters"]["restorableRanges"]) == 2

        # The resync healed the window going forward: the new range keeps advancing, the resync is resolved.
        new_end = window[1]["end"]["time"]
        wait_for(
            lambda: listing(source, base)["pitrWindow"][-1]["end"]["time"] > new_end,
            30,
            what="the new range advancing",
        )
        wait_for(lambda: not _open(source, "RESYNC_REQUIRED"), 30, what="RESYNC_REQUIRED resolved")
        assert listing(source, base)["pitrWindow"][0]["end"]["time"] == hole_start, (
            "the hole stays in history"
        )
        assert "gap" in agent.log().lower(), agent.log()[-2000:]
    finally:
        world.close()

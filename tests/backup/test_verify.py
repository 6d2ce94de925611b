"""The runbook checks of a secondary's backup (pure): each passes or names what is missing."""

from __future__ import annotations

from typing import Any

from opsmgr.backup.verify import Limits, verify

NOW = 1_800_000_000_000
HOUR = 3_600_000
LIMITS = Limits(hours=24, max_lag_s=300, drill_days=7)


def store(name: str, *ranges: tuple[int, int], snaps: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "snapshots": [{"id": f"{name}{i}", "complete": True} for i in range(snaps)],
        "pitrWindow": [{"startUTCMillis": lo, "endUTCMillis": hi} for lo, hi in ranges],
    }


def healthy_backing() -> dict[str, Any]:
    window = (NOW - 30 * HOUR, NOW - 1000)
    return {
        "stores": [store(n, window) for n in ("app", "snapshot", "oplog")],
        "restorableTogether": [{"startUTCMillis": window[0], "endUTCMillis": window[1]}],
    }


PASSED = [{"passed": True, "started": NOW - 2 * HOUR, "steps": [{"name": "restore", "passed": True}]}]
DAEMON = {"healthy": True, "problems": []}


def failing(checks: list[Any]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


def test_a_sound_backup_passes_every_check() -> None:
    checks = verify(healthy_backing(), PASSED, DAEMON, NOW, LIMITS)
    assert failing(checks) == {} and len(checks) == 3 * 2 + 3


def test_each_missing_thing_is_named() -> None:
    backing = healthy_backing()
    backing["stores"][0] = store("app", (NOW - 30 * HOUR, NOW - 10 * HOUR), (NOW - 9 * HOUR, NOW), snaps=0)
    backing["stores"][1] = store("snapshot", (NOW - 30 * HOUR, NOW - HOUR))
    backing["stores"].pop()
    backing["restorableTogether"] = [{"startUTCMillis": 0, "endUTCMillis": NOW - HOUR}]
    failed = [
        {"passed": False, "started": NOW - HOUR, "steps": [{"name": "sandbox preflight", "passed": False}]}
    ]
    found = failing(verify(backing, failed, {"healthy": False, "problems": ["ingest stalled"]}, NOW, LIMITS))
    assert found["snapshot of the app store"] == "no completed snapshot"
    assert "a hole or a late start" in found["window of the app store"]
    assert "not advancing" in found["window of the snapshot store"]
    assert found["backup of the oplog store"] == "the store is not backed up"
    assert "1.0 h old" in found["restorable together"]
    assert "failed at sandbox preflight" in found["last restore drill"]
    assert found["secondary's Backup Daemon"] == "ingest stalled"


def test_an_old_or_absent_drill_and_an_unknown_daemon_fail() -> None:
    old = [{"passed": True, "started": NOW - 8 * 24 * HOUR, "steps": []}]
    assert "over 7 days" in failing(verify(healthy_backing(), old, DAEMON, NOW, LIMITS))["last restore drill"]
    found = failing(verify(healthy_backing(), [], None, NOW, LIMITS))
    assert "opsmgr drill run" in found["last restore drill"]
    assert found["secondary's Backup Daemon"] == "its health is unknown"

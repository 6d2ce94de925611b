"""``opsmgr backup restore-stores`` options: instants, and the per-store targets of the restore job."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.cli.restore_targets import parse_instant, restore_targets
from opsmgr.errors import InvalidInput

BACKING: dict[str, Any] = {
    "stores": [
        {"name": "app", "snapshots": [{"id": "s1", "timestamp": {"time": 100, "increment": 5}}]},
        {"name": "snapshot", "snapshots": []},
        {"name": "oplog", "snapshots": []},
    ]
}


def test_parse_instant() -> None:
    assert parse_instant("1970-01-01T00:00:01.5Z", "--at") == 1500
    with pytest.raises(InvalidInput, match="time zone"):
        parse_instant("2024-01-01T00:00:00", "--at")


def test_targets() -> None:
    same = restore_targets(BACKING, at_ms=7, snapshot_id=None, app_only=False, metadata_at_ms=None)
    assert same == {n: {"pointInTimeUTCMillis": 7} for n in ("app", "snapshot", "oplog")}
    later = restore_targets(BACKING, at_ms=7, snapshot_id=None, app_only=False, metadata_at_ms=9)
    assert later["app"] == {"pointInTimeUTCMillis": 7} and later["oplog"] == {"pointInTimeUTCMillis": 9}
    assert restore_targets(BACKING, at_ms=7, snapshot_id=None, app_only=True, metadata_at_ms=None) == {
        "app": {"pointInTimeUTCMillis": 7}
    }
    snap = restore_targets(BACKING, at_ms=None, snapshot_id="s1", app_only=False, metadata_at_ms=None)
    assert snap["app"] == {"snapshotId": "s1"} and snap["snapshot"] == {"oplogTs": 100, "oplogInc": 5}
    with pytest.raises(InvalidInput):
        restore_targets(BACKING, at_ms=7, snapshot_id="s1", app_only=False, metadata_at_ms=None)
    with pytest.raises(InvalidInput):
        restore_targets(BACKING, at_ms=None, snapshot_id="nope", app_only=False, metadata_at_ms=None)

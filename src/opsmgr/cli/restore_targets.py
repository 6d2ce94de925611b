"""What ``opsmgr backup restore-stores`` asks the secondary for: the restore point given as an ISO 8601
instant, and the restore job's per-store targets (a point in time, a snapshot and the position it stands for,
``--app-only``, a later point for the metadata stores), checked against the backing deployment's stores.

Pure: no I/O. May import ``opsmgr.errors``, ``opsmgr.backup.positions`` and ``opsmgr.store.backing``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opsmgr.backup.positions import PositionKind, to_oplog
from opsmgr.errors import InvalidInput
from opsmgr.store.backing import StoreName


def parse_instant(text: str, option: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 instant (``Z`` or an offset required)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{option} must be an ISO 8601 instant, e.g. 2024-05-01T12:00:00Z", field=option
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{option} needs a time zone (Z or +hh:mm)", field=option)
    return int(moment.timestamp() * 1000)


def position_target(position: int) -> dict[str, int]:
    ts, inc = to_oplog(PositionKind.STORE, position)
    return {"oplogTs": ts, "oplogInc": inc}


def restore_targets(
    backing: dict[str, Any],
    *,
    at_ms: int | None,
    snapshot_id: str | None,
    app_only: bool,
    metadata_at_ms: int | None,
) -> dict[str, dict[str, Any]]:
    """The restore job body's per-store targets."""
    if sum(x is not None for x in (at_ms, snapshot_id)) != 1:
        raise InvalidInput("give one of --at, --point-in-time-ms or --snapshot", field="--at")
    if app_only and metadata_at_ms is not None:
        raise InvalidInput(
            "--app-only leaves the metadata stores as they are: no --metadata-at", field="--app-only"
        )
    stores = {s["name"]: s for s in backing["stores"]}
    targets: dict[str, dict[str, Any]] = {}
    if snapshot_id is not None:
        owner = next(
            (s for s in stores.values() if any(x["id"] == snapshot_id for x in s["snapshots"])), None
        )
        if owner is None:
            raise InvalidInput(f"no snapshot {snapshot_id} of the backing databases", field="--snapshot")
        snap = next(x for x in owner["snapshots"] if x["id"] == snapshot_id)
        ts = snap["timestamp"]
        position = ts["time"] * 1_000_000 + ts["increment"]
        targets[owner["name"]] = {"snapshotId": snapshot_id}
        same: dict[str, Any] = position_target(position)
    else:
        same = {"pointInTimeUTCMillis": at_ms}
    for name in (StoreName.APP, StoreName.SNAPSHOT, StoreName.OPLOG):
        if name.value not in stores or name.value in targets:
            continue
        if name is not StoreName.APP and app_only:
            continue
        if name is not StoreName.APP and metadata_at_ms is not None:
            targets[name.value] = {"pointInTimeUTCMillis": metadata_at_ms}
        else:
            targets[name.value] = dict(same)
    if app_only:
        targets = {k: v for k, v in targets.items() if k == StoreName.APP.value}
    if StoreName.APP.value not in targets:
        raise InvalidInput("the application database is not backed up by this deployment", field="--cluster")
    return targets

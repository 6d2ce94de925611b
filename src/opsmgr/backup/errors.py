"""The errors of backup and restore, each with the HTTP status a restore or upload answers with. Pure.

- :class:`BlockMissing`/:class:`BlockCorrupt`: a block cannot be used (409, "snapshot blocks missing").
- :class:`SnapshotBlocksMissing`: a snapshot's metadata or blocks are gone (409, as Ops Manager answers a
  restore job whose snapshot the restored metadata stores no longer have).
- :class:`OutsideWindow`: a point in time no snapshot and chain of slices can reach (400, listing the
  restorable ranges).
- :class:`SnapshotFailed`: a snapshot could not be written (503; the daemon retries at its next tick).

May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

from typing import Any

from opsmgr.errors import Conflict, InvalidInput, OpsmgrError


class SnapshotBlocksMissing(Conflict):
    error_code = "SNAPSHOT_BLOCKS_MISSING"

    def __init__(self, detail: str, **parameters: Any) -> None:
        super().__init__(f"snapshot blocks missing: {detail}", **parameters)


class BlockError(SnapshotBlocksMissing):
    """A block a snapshot or slice needs cannot be used."""

    def __init__(self, detail: str, block_id: str) -> None:
        super().__init__(detail, blockId=block_id)
        self.block_id = block_id


class BlockMissing(BlockError):
    def __init__(self, block_id: str) -> None:
        super().__init__(f"block {block_id} is not in the blockstore", block_id)


class BlockCorrupt(BlockError):
    error_code = "SNAPSHOT_BLOCK_CORRUPT"

    def __init__(self, block_id: str, why: str) -> None:
        super().__init__(f"block {block_id} is corrupt ({why}) and cannot be restored from", block_id)
        self.why = why


class OutsideWindow(InvalidInput):
    """The target is not restorable; ``restorableRanges`` (in the parameters) says what is."""

    error_code = "POINT_IN_TIME_OUTSIDE_WINDOW"

    def __init__(
        self, detail: str, ranges: list[dict[str, Any]], field: str = "pointInTimeUTCMillis"
    ) -> None:
        super().__init__(detail, field=field, restorableRanges=ranges)
        self.ranges = ranges


class SnapshotFailed(OpsmgrError):
    """Taking a snapshot failed for a reason of the machine (disk full, I/O error); retried next tick."""

    http_status = 503
    error_code = "SNAPSHOT_FAILED"

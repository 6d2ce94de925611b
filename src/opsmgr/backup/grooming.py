"""Grooming and the integrity job: what retention no longer keeps is deleted (snapshots, then the slices no
kept snapshot or the window needs, and the initial syncs no head needs any more: ``backup.syncs``), then
the blocks nothing references are freed; every block is re-hashed once after each start (a crash may have
come with disk trouble) and then daily, the problems reported with the snapshots, slices and syncs each
affects.

Owns ``backup_integrity`` in the snapshot metadata store (the last integrity report). May import
``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from opsmgr.backup import policy
from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.head import Heads
from opsmgr.backup.slices import SliceCatalog
from opsmgr.backup.snapshots import SnapshotCatalog
from opsmgr.backup.sources import Clock, Source, SourceLocks, Sources, now_ms
from opsmgr.backup.syncs import SyncCatalog, dropped

log = logging.getLogger("opsmgr.backup")

INTEGRITY = "backup_integrity"


def last_integrity(catalog: SnapshotCatalog) -> dict[str, Any] | None:
    """The last integrity report (``problems``: ``blockId``, ``problem``, ``usedBy``), if the job ran."""
    return catalog.store.get(INTEGRITY, "last")


@dataclass(frozen=True)
class GroomReport:
    snapshots_deleted: list[str]
    slices_deleted: int
    blocks_freed: int


class Grooming:
    """Retention and block integrity, on their own intervals."""

    def __init__(
        self,
        sources: Sources,
        catalog: SnapshotCatalog,
        slices: SliceCatalog,
        blockstore: Blockstore,
        heads: Heads,
        locks: SourceLocks,
        clock: Clock,
        *,
        interval_s: float,
        grace_s: float,
        integrity_interval_s: float,
    ) -> None:
        self.sources = sources
        self.catalog = catalog
        self.slices = slices
        self.syncs = SyncCatalog(slices.store)
        self.blockstore = blockstore
        self.heads = heads
        self.locks = locks
        self.clock = clock
        self.interval_ms = int(interval_s * 1000)
        self.grace_s = grace_s
        self.integrity_interval_ms = int(integrity_interval_s * 1000)
        self._last_groom_ms: int | None = None
        self._integrity_checked = False

    def groom_due(self, now: int) -> bool:
        return self._last_groom_ms is None or now - self._last_groom_ms >= self.interval_ms

    def integrity_due(self, now: int) -> bool:
        last = last_integrity(self.catalog)
        return (
            not self._integrity_checked
            or last is None
            or now - last["checkedAt"] >= self.integrity_interval_ms
        )

    def groom(self, now_ms: int) -> GroomReport:
        """Deletes what retention no longer keeps, then frees the blocks nothing references."""
        self._last_groom_ms = now_ms
        deleted: list[str] = []
        slices_deleted = 0
        for src in self.sources.find():
            gone, n = self._groom_source(src, now_ms)
            deleted += gone
            slices_deleted += n
        referenced = (
            self.catalog.referenced_blocks()
            | self.slices.referenced_blocks()
            | set(self.syncs.referenced_blocks())
        )
        older_than = time.time() - self.grace_s
        freed = sum(
            self.blockstore.delete(b, older_than=older_than)
            for b in policy.unreferenced(list(self.blockstore), referenced)
        )
        if deleted or slices_deleted or freed:
            log.info(
                "groom: %d snapshot(s), %d slice(s) deleted, %d block(s) freed",
                len(deleted),
                slices_deleted,
                freed,
            )
        return GroomReport(deleted, slices_deleted, freed)

    def _groom_source(self, src: Source, now: int) -> tuple[list[str], int]:
        """The snapshots and the number of slices of one source that retention dropped, deleted."""
        with self.locks(src.id):
            metas = self.catalog.for_source(src.id)
            snaps = [policy.Snap(m.id, m.createdAt, m.position, m.chain) for m in metas]
            kept = policy.retained(snaps, now, src.schedule)
            gone = [m.id for m in metas if m.id not in kept]
            head = self.heads.current(src.id)
            state = head.state() if head else None
            slices = self.slices.slices(src.id)
            refs = [policy.SliceRef(s.id, s.chain, s.start, s.end) for s in slices]
            keep_slices = policy.needed_slices(
                snaps,
                kept,
                refs,
                now,
                src.schedule,
                state.sync_id if state else None,
                state.applied if state else None,
            )
            # Metadata first: a crash before the blocks are freed leaves unreferenced blocks, never
            # metadata naming a freed block.
            self.catalog.delete(src.id, gone)
            chain = self.slices.chain(src.id)
            self.syncs.delete(
                dropped(
                    self.syncs.of_source(src.id),
                    chain.chain if chain else None,
                    {m.chain for m in metas if m.id not in gone},
                    now,
                    int(self.grace_s * 1000),
                )
            )
            return gone, self.slices.delete(src.id, [s.id for s in slices if s.id not in keep_slices])

    def integrity_check(self) -> dict[str, Any]:
        """Re-hashes every block; reports those that do not match and the referenced ones that are gone,
        with the snapshots and slices each affects. The report is kept in the snapshot metadata store."""
        users = self._block_users()
        checked = 0
        problems: dict[str, str] = {}
        for block_id in self.blockstore:
            checked += 1
            problem = self.blockstore.verify(block_id)
            if problem is not None:
                problems[block_id] = problem.problem
        for block_id in users:
            if block_id not in problems and not self.blockstore.exists(block_id):
                problems[block_id] = "missing"
        found = [
            {"blockId": b, "problem": p, "usedBy": users.get(b, [])} for b, p in sorted(problems.items())
        ]
        report = {"_id": "last", "checkedAt": now_ms(self.clock), "blocksChecked": checked, "problems": found}
        self.catalog.store.put(INTEGRITY, report)
        self._integrity_checked = True
        for item in found:
            log.error(
                "integrity: block %s: %s (used by %s)", item["blockId"], item["problem"], item["usedBy"]
            )
        return report

    def _block_users(self) -> dict[str, list[str]]:
        """Which snapshots (``snapshot:<id>``) and slices (``slice:<source>/<id>``) use each block."""
        users: defaultdict[str, list[str]] = defaultdict(list)
        for snapshot_id, blocks in self.catalog.block_lists().items():
            for b in blocks:
                users[b].append(f"snapshot:{snapshot_id}")
        for src in self.sources.find():
            for s in self.slices.slices(src.id):
                if s.blockId:
                    users[s.blockId].append(f"slice:{src.id}/{s.id}")
        for block_id, sync in self.syncs.referenced_blocks().items():
            users[block_id].append(sync)
        return users

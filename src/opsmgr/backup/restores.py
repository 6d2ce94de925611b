"""Restores as the daemon plans and serves them: the point-in-time window of a source (and of a cluster's
sources together), restore plans (the newest snapshot at or before the target and the slices to replay up to
it, every block they need present and none the integrity job found damaged), and the restored documents, for
a download, an agent's load or a backing database's replacement.

May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from opsmgr.backup import pitr, restore
from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.errors import BlockCorrupt, SnapshotBlocksMissing
from opsmgr.backup.grooming import last_integrity
from opsmgr.backup.pitr import Range, SliceSpan, SnapshotPoint, Target
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.slices import SliceCatalog, SliceMeta
from opsmgr.backup.snapshots import ProgressBoard, SnapshotCatalog, check_blocks, snapshot_blocks
from opsmgr.backup.sources import Sources
from opsmgr.errors import NotFound
from opsmgr.store.engine import Store


def _spans(slices: Iterable[SliceMeta]) -> list[SliceSpan]:
    return [SliceSpan(s.id, s.chain, s.start, s.end) for s in slices]


class Restores:
    """Windows, plans and restored documents of the sources."""

    def __init__(
        self,
        sources: Sources,
        catalog: SnapshotCatalog,
        slices: SliceCatalog,
        blockstore: Blockstore,
        scratch: Path,
        progress: ProgressBoard,
    ) -> None:
        self.sources = sources
        self.catalog = catalog
        self.slices = slices
        self.blockstore = blockstore
        self.scratch = scratch
        self.progress = progress

    def _points(self, source_id: str) -> list[SnapshotPoint]:
        metas = self.catalog.for_source(source_id)
        return [SnapshotPoint(m.id, m.position, m.chain, m.createdAt) for m in metas]

    def pitr_window(self, source_id: str) -> list[Range]:
        return pitr.window(self._points(source_id), self.slices.runs(source_id))

    def window_json(self, source_id: str) -> list[dict[str, Any]]:
        return pitr.window_json(self.sources.get(source_id).position_kind, self.pitr_window(source_id))

    def cluster_window(self, group_id: str, cluster_id: str) -> list[tuple[int, int]]:
        """The milliseconds to which every source of a cluster can be restored (the same point for all)."""
        windows = []
        for src in self.sources.find(group_id, cluster_id):
            shown = pitr.window_json(src.position_kind, self.pitr_window(src.id))
            windows.append(
                [(r["startUTCMillis"], r["endUTCMillis"]) for r in shown if r["startUTCMillis"] is not None]
            )
        return pitr.intersect(windows)

    def snapshot_chooser(self, source_id: str) -> Callable[[int], str | None]:
        """What gives the snapshot a restore of the source to a position starts from (metadata only, read
        once: no block is checked), None for a position outside its window."""
        kind = self.sources.get(source_id).position_kind
        points = self._points(source_id)
        spans = _spans(self.slices.slices(source_id))
        window = pitr.window(points, spans)

        def choose(position: int) -> str | None:
            if not pitr.restorable(window, position):
                return None
            return pitr.plan_restore(kind, points, spans, Target(position=position)).snapshot.id

        return choose

    def plan(self, source_id: str, target: Target | dict[str, Any]) -> ResolvedRestore:
        """What a restore to ``target`` needs; 400 outside the window, 409 when blocks are missing."""
        kind = self.sources.get(source_id).position_kind
        if isinstance(target, dict):
            target = pitr.parse_target(kind, target)
        slices = self.slices.slices(source_id)
        plan = pitr.plan_restore(kind, self._points(source_id), _spans(slices), target)
        meta = self.catalog.get(source_id, plan.snapshot.id)
        if meta is None:  # groomed since the plan was made
            raise SnapshotBlocksMissing(
                f"snapshot {plan.snapshot.id} was just deleted", snapshotId=plan.snapshot.id
            )
        blocks = snapshot_blocks(self.catalog, self.blockstore, meta)
        by_id = {s.id: s for s in slices}
        needed = [by_id[s.id] for s in plan.slices]
        slice_blocks = [s.blockId for s in needed if s.blockId]
        check_blocks(self.blockstore, slice_blocks, "the oplog slices to replay")
        self._refuse_known_corrupt(blocks + slice_blocks)
        return ResolvedRestore(kind, plan, meta, blocks, needed)

    def _refuse_known_corrupt(self, block_ids: list[str]) -> None:
        """A restore needing a block the integrity job found damaged is refused before it starts (409), not
        cut off midway; such blocks are re-verified here, as the report may be older than a repair."""
        report = last_integrity(self.catalog)
        reported = {p["blockId"] for p in report["problems"]} if report else set()
        for block_id in reported.intersection(block_ids):
            problem = self.blockstore.verify(block_id)
            if problem is not None:
                raise BlockCorrupt(block_id, f"{problem.problem}; found by the integrity job")

    def cluster_plans(self, group_id: str, cluster_id: str, body: dict[str, Any]) -> list[ResolvedRestore]:
        """A restore job's plans for a cluster: with ``snapshotId``, the one source that snapshot is of;
        with a point in time, every source of the cluster to that same point (each refusal as for one)."""
        sources = self.sources.find(group_id, cluster_id)
        if not sources:
            raise NotFound(
                f"cluster {cluster_id} of project {group_id} is not backed up", clusterId=cluster_id
            )
        snapshot_id = body.get("snapshotId") if isinstance(body, dict) else None
        if snapshot_id is not None:
            for src in sources:
                if isinstance(snapshot_id, str) and self.catalog.get(src.id, snapshot_id):
                    return [self.plan(src.id, body)]
            # Parsed for its validation; then, as no source has it, 409 as for a single source.
            return [self.plan(sources[0].id, body)]
        return [self.plan(src.id, body) for src in sources]

    def documents(
        self, resolved: ResolvedRestore, job_id: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The restored documents ``(namespace, document)``, for a download or a driver's ``load``."""
        return restore.materialize(self.blockstore, resolved, self.scratch, self.progress.reporter(job_id))

    def into_store(
        self, resolved: ResolvedRestore, target: Store, job_id: str | None = None
    ) -> dict[str, int]:
        """Replaces a backing database's documents with the restored ones (verifies every block first)."""
        return restore.restore_into_store(self.blockstore, resolved, target, self.progress.reporter(job_id))

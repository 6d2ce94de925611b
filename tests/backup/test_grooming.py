"""backup.grooming: retention frees only what no kept snapshot or needed slice uses, and the integrity job
runs after each start, then daily, naming each damaged or missing block and what uses it."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.grooming import Grooming, last_integrity
from opsmgr.backup.policy import HOUR_MS
from opsmgr.backup.sources import SourceLocks
from opsmgr.store import Store
from tests.backup.backuptest import FakeClock, StoreAgent, at, restored, store_documents


def test_grooming_frees_only_blocks_no_retained_snapshot_or_needed_slice_uses(
    make_daemon: Callable[..., BackupDaemon], source: Source, source_store: Store, clock: FakeClock
) -> None:
    daemon = make_daemon(block_target=2048)
    daemon.set_schedule(
        source.id,
        {
            "snapshotRetentionDays": 1,
            "dailySnapshotRetentionDays": 3,
            "weeklySnapshotRetentionWeeks": 0,
            "monthlySnapshotRetentionMonths": 0,
            "pointInTimeWindowHours": 12,
        },
    )
    rnd = random.Random(7)
    with source_store.tx() as t:
        for i in range(400):
            t.put("things", {"_id": f"d{i:04d}", "body": "x" * 200, "v": 0})
    agent = StoreAgent(daemon, source.id, source_store, page=500)
    agent.sync()
    states: dict[str, dict[tuple[str, str], Any]] = {}
    for _ in range(6 * 4):  # six days of six-hourly ticks
        with source_store.tx() as t:
            for i in rnd.sample(range(400), 8):
                t.update("things", f"d{i:04d}", {"v": rnd.randint(1, 10**6)})
        agent.ship()
        for snapshot_id in daemon.tick().snapshots:
            states[snapshot_id] = store_documents(source_store)
        clock.advance(6 * 3600)
    before = set(daemon.blockstore)
    report = daemon.groom()
    kept = {m.id for m in daemon.snapshots(source.id)}
    assert report.snapshots_deleted and kept and not kept & set(report.snapshots_deleted)
    assert 4 <= len(kept) <= 8  # the last day's four, the first of each of the last three days, the base
    assert report.blocks_freed > 0
    referenced = daemon.snapshot_catalog.referenced_blocks() | daemon.slice_catalog.referenced_blocks()
    assert set(daemon.blockstore) == referenced
    assert before - set(daemon.blockstore)
    for snapshot_id in kept:
        assert restored(daemon, source, {"snapshotId": snapshot_id}) == states[snapshot_id]
    # The whole window is still restorable after grooming, up to the last write.
    window = daemon.pitr_window(source.id)
    assert window[-1].end == agent.acked
    now_ms = int(clock.now() * 1000)
    base = [m for m in daemon.snapshots(source.id) if m.createdAt <= now_ms - 12 * HOUR_MS]
    assert base and any(r.start <= max(b.position for b in base) for r in window)
    assert restored(daemon, source, at(window[-1].end)) == store_documents(source_store)


def test_the_integrity_job_runs_daily_from_the_tick(daemon: BackupDaemon, clock: FakeClock) -> None:
    assert daemon.tick().integrity_problems == 0
    clock.advance(3600)
    assert daemon.tick().integrity_problems is None
    clock.advance(24 * 3600)
    assert daemon.tick().integrity_problems == 0


@pytest.fixture
def grooming(daemon: BackupDaemon) -> Grooming:
    """The daemon's part alone, over its stores."""
    return Grooming(
        daemon.registry,
        daemon.snapshot_catalog,
        daemon.slice_catalog,
        daemon.blockstore,
        daemon.heads,
        SourceLocks(),
        daemon.clock,
        interval_s=600,
        grace_s=0,
        integrity_interval_s=3600,
    )


def test_grooming_and_the_integrity_job_come_due_on_their_intervals(grooming: Grooming) -> None:
    assert grooming.groom_due(0) and grooming.integrity_due(0)  # first of all, after each start
    grooming.groom(1_000)
    assert not grooming.groom_due(1_000 + 599_999) and grooming.groom_due(1_000 + 600_000)
    checked = grooming.integrity_check()["checkedAt"]
    assert not grooming.integrity_due(checked + 3_599_999) and grooming.integrity_due(checked + 3_600_000)
    assert last_integrity(grooming.catalog) is not None


def test_the_integrity_job_names_a_missing_block_and_what_uses_it(
    grooming: Grooming, daemon: BackupDaemon, source: Source, agent: StoreAgent
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    snap = daemon.take_snapshot(source.id)
    grooming.groom(daemon.now_ms())  # the sync's record goes: its chain has a snapshot
    assert daemon.ingest.syncs.of_source(source.id) == []
    (block,) = daemon.snapshot_catalog.blocks(snap.id) or []
    daemon.blockstore.files.path(block).unlink()
    report = grooming.integrity_check()
    assert report["problems"] == [{"blockId": block, "problem": "missing", "usedBy": [f"snapshot:{snap.id}"]}]
    assert report["blocksChecked"] == 0

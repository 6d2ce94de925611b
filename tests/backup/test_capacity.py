"""Capacity planning: growth, dedup, projection under retention and the disk's fill date (pure), the figures a
daemon measures against its blockstore's files, and the BACKUP_BLOCKSTORE_FILLING alert's watch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsmgr.backup.alerts import BLOCKSTORE_FILLING, BLOCKSTORE_FILLING_KEY, AlertPolicy, CapacityWatch
from opsmgr.backup.capacity import (
    SnapshotUse,
    blockstore_capacity,
    days_until_full,
    growth_per_day,
    horizon_days,
    measure,
    measure_blockstore,
    source_capacity,
)
from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.policy import DAY_MS, HOUR_MS, Schedule
from tests.backup.backuptest import FakeClock, StoreAgent

NOW = 1_700_000_000_000
IDS = ("s1", "g1", "c1", "rs")
# Only snapshotRetentionDays matters: a horizon of 10 days.
TEN_DAYS = Schedule(
    snapshotIntervalHours=6,
    snapshotRetentionDays=10,
    dailySnapshotRetentionDays=0,
    weeklySnapshotRetentionWeeks=0,
    monthlySnapshotRetentionMonths=0,
    pointInTimeWindowHours=24,
)


def daily(days: int, first: int = 1000, each: int = 100, size: int = 5000) -> list[SnapshotUse]:
    """A snapshot a day for ``days`` days up to NOW: the first stores ``first`` bytes, each later ``each``."""
    return [SnapshotUse(NOW - (days - 1 - i) * DAY_MS, size, first if i == 0 else each) for i in range(days)]


def test_growth_is_new_bytes_per_day_over_the_last_week() -> None:
    growth, used = growth_per_day(daily(3), HOUR_MS)
    assert (growth, used) == (100.0, 3)  # 200 bytes added in 2 days; the first snapshot is the base
    # 20 days of history: only the snapshots within 7 days of the newest count (8 of them, 7 days apart).
    recent_heavy = daily(13, each=100) + [SnapshotUse(NOW + i * DAY_MS, 5000, 700) for i in range(1, 8)]
    growth, used = growth_per_day(recent_heavy, HOUR_MS)
    assert used == 8 and growth == pytest.approx(700.0)


def test_a_burst_shorter_than_the_interval_is_spread_over_the_interval() -> None:
    burst = [SnapshotUse(NOW, 5000, 1000), SnapshotUse(NOW + 1000, 5000, 600)]
    growth, _ = growth_per_day(burst, 6 * HOUR_MS)
    assert growth == pytest.approx(600 * 4)  # 600 bytes per 6 hours


def test_no_snapshot_and_one_snapshot_have_no_growth() -> None:
    assert growth_per_day([], HOUR_MS) == (None, 0)
    assert growth_per_day([SnapshotUse(NOW, 10, 10)], HOUR_MS) == (None, 1)
    empty = source_capacity(IDS, TEN_DAYS, [], (0, 0, 0), NOW)
    assert empty.dedup_ratio is None and empty.growth_bytes_per_day is None
    assert empty.projections == ((30, 0), (90, 0), (365, 0))
    one = source_capacity(IDS, TEN_DAYS, [SnapshotUse(NOW, 4000, 1000)], (1000, 50, 2), NOW)
    assert one.stored_bytes == 1050 and one.dedup_ratio == 4.0
    assert [stored for _, stored in one.projections] == [1050, 1050, 1050]


def test_dedup_ratio_is_logical_bytes_per_stored_snapshot_byte() -> None:
    figures = source_capacity(IDS, TEN_DAYS, daily(3), (1200, 300, 7), NOW)
    assert figures.logical_bytes == 15000 and figures.dedup_ratio == pytest.approx(12.5)
    assert figures.stored_bytes == 1500 and figures.oplog_stored_bytes == 300
    assert figures.to_json()["dedupRatio"] == 12.5


def test_projection_stops_growing_at_the_retention_horizon() -> None:
    # 3 days of history under a 10-day horizon: 7 more days of 100 bytes a day, then flat.
    figures = source_capacity(IDS, TEN_DAYS, daily(3), (1200, 0, 3), NOW)
    assert figures.growth_days_left == pytest.approx(8.0)  # oldest snapshot is 2 days old
    assert figures.projections == ((30, 2000), (90, 2000), (365, 2000))
    # A history as old as the horizon: steady state, nothing more accumulates.
    old = daily(11)
    assert source_capacity(IDS, TEN_DAYS, old, (2000, 0, 3), NOW).projections[0] == (30, 2000)
    # The defaults keep monthly snapshots 13 months: growth goes on past a year.
    assert horizon_days(Schedule()) == pytest.approx(13 * 30.44)
    default = source_capacity(IDS, Schedule(), daily(3), (1200, 0, 3), NOW)
    assert [stored for _, stored in default.projections] == [4200, 10200, 37700]


def test_days_until_full_follows_each_sources_horizon() -> None:
    assert days_until_full(0, [(100.0, 10.0)]) == 0.0  # already full
    assert days_until_full(-5, []) == 0.0
    assert days_until_full(500, [(100.0, 10.0)]) == pytest.approx(5.0)
    assert days_until_full(5000, [(100.0, 10.0)]) is None  # growth stops at 1000 bytes
    assert days_until_full(500, [(0.0, 10.0)]) is None
    # Two sources: 300/day for 2 days (600), then 100/day: 700 more bytes take 7 days.
    assert days_until_full(1300, [(200.0, 2.0), (100.0, 100.0)]) == pytest.approx(9.0)


def test_the_blockstore_adds_its_sources_and_dates_the_fill() -> None:
    a = source_capacity(IDS, TEN_DAYS, daily(3), (1200, 0, 3), NOW)
    b = source_capacity(("s2", "g1", "c2", "rs2"), TEN_DAYS, daily(3, each=300), (1600, 0, 3), NOW)
    whole = blockstore_capacity([a, b], (3000, 2500), (1000, 10_000), NOW)
    assert whole.growth_bytes_per_day == pytest.approx(400.0)
    assert whole.logical_bytes == 30000 and whole.dedup_ratio == pytest.approx(12.0)
    assert whole.days_until_full == pytest.approx(2.5)
    assert whole.full_at_ms == NOW + 2.5 * DAY_MS
    assert whole.projections[0] == (30, 3000 + 800 + 2400)
    shown = whole.to_json()
    assert shown["fullDate"] == "2023-11-17T10:13:20Z" and shown["diskFreeBytes"] == 1000
    never = blockstore_capacity([], (0, 0), (0, 10_000), NOW)
    assert never.days_until_full == 0.0 and never.dedup_ratio is None


class Sink:
    def __init__(self) -> None:
        self.open: dict[str, str] = {}
        self.writes = 0

    def raise_alert(
        self, group_id: str, event_type: str, key: str, message: str, **details: Any
    ) -> dict[str, Any]:
        assert (group_id, event_type, key) == ("global", BLOCKSTORE_FILLING, BLOCKSTORE_FILLING_KEY)
        self.open[key] = message
        self.writes += 1
        return {}

    def resolve(self, group_id: str, key: str) -> bool:
        self.writes += 1
        return self.open.pop(key, None) is not None


def test_the_fill_alert_opens_within_the_threshold_and_closes_after() -> None:
    sink = Sink()
    watch = CapacityWatch(sink, "global", AlertPolicy(capacity_days=14))
    projected: list[tuple[float | None, str | None]] = [(30.0, "later")]
    assert watch.run(lambda: projected[0], NOW) is None
    assert sink.writes == 1 and not sink.open  # the first run resolves what an earlier process left
    projected[0] = (3.5, "2023-11-18")
    assert watch.run(lambda: projected[0], NOW + 1000) is None  # checked at most once a minute
    message = watch.run(lambda: projected[0], NOW + 60_000)
    assert message is not None and "3.5 days (2023-11-18)" in message
    assert sink.open[BLOCKSTORE_FILLING_KEY] == message
    watch.run(lambda: projected[0], NOW + 120_000)
    assert sink.writes == 2  # unchanged: no write
    projected[0] = (None, None)
    assert watch.run(lambda: projected[0], NOW + 180_000) is None
    assert not sink.open and sink.writes == 3


def _block_files(root: Path) -> int:
    return sum(f.stat().st_size for f in (root / "blocks").rglob("*") if f.is_file())


def test_measured_figures_are_the_blockstores_files(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, clock: FakeClock
) -> None:
    for i in range(300):
        agent.store.insert("things", {"_id": f"k{i}", "v": "x" * 200})
    agent.sync()
    first = daemon.take_snapshot(source.id)
    clock.advance(3600)
    agent.store.insert("things", {"_id": "new", "v": "y" * 5000})
    agent.ship()
    daemon.apply_pending(source.id)
    second = daemon.take_snapshot(source.id)
    daemon.groom()  # the initial sync's blocks go once its chain has a snapshot
    figures = measure(daemon, source, daemon.now_ms())
    assert figures.snapshot_count == 2
    assert figures.logical_bytes == first.sizeBytes + second.sizeBytes
    assert figures.snapshot_stored_bytes == first.storedBytes + second.storedBytes
    whole = measure_blockstore(daemon, [source], daemon.now_ms())
    assert whole.stored_bytes == _block_files(daemon.root) == figures.stored_bytes
    assert whole.dedup_ratio is not None and whole.dedup_ratio > 1.5  # the unchanged block is shared
    assert whole.disk_total_bytes > 0 and 0 <= whole.disk_free_bytes <= whole.disk_total_bytes

"""Snapshot schedule and retention (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsmgr.backup import policy
from opsmgr.backup.policy import DAY_MS, HOUR_MS, Schedule, SliceRef, Snap
from opsmgr.errors import InvalidInput


def ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


def test_due_after_the_interval() -> None:
    s = Schedule()
    assert policy.due(0, None, s)
    assert not policy.due(6 * HOUR_MS - 1, 0, s)
    assert policy.due(6 * HOUR_MS, 0, s)


def test_schedule_bodies_are_validated_field_by_field() -> None:
    s = policy.schedule_from_json({"snapshotIntervalHours": 12, "snapshotRetentionDays": 3})
    assert (s.snapshotIntervalHours, s.snapshotRetentionDays, s.pointInTimeWindowHours) == (12, 3, 24)
    assert (
        policy.schedule_from_json({"groupId": "g", "dailySnapshotRetentionDays": 10}, s).snapshotRetentionDays
        == 3
    )
    for bad in (
        {"snapshotIntervalHours": 0},
        {"snapshotIntervalHours": "6"},
        {"snapshotRetentionDays": 2.5},
        {"snapshotRetentionDays": True},
        {"weeklySnapshotRetentionWeeks": -1},
        {"frequency": 1},
        {"pointInTimeWindowHours": 72},  # longer than the 2 days every snapshot is kept
    ):
        with pytest.raises(InvalidInput) as err:
            policy.schedule_from_json(bad)
        assert err.value.field == next(iter(bad))
    with pytest.raises(InvalidInput):
        policy.schedule_from_json([1])


def every_six_hours(start: int, end: int) -> list[Snap]:
    return [Snap(f"s{t}", t, t, "A") for t in range(start, end, 6 * HOUR_MS)]


def test_retention_keeps_recent_daily_weekly_monthly_and_the_newest() -> None:
    now = ms(2024, 6, 30, 12)
    snaps = every_six_hours(ms(2023, 1, 1), now)
    retained = policy.retained(snaps, now, Schedule())
    kept = {s.created_ms for s in snaps if s.id in retained}
    recent = {s.created_ms for s in snaps if s.created_ms > now - 2 * DAY_MS}
    assert recent <= kept
    days = {datetime.fromtimestamp(t / 1000, UTC).date() for t in kept}
    # daily for 7 days, and the first of each of the last 13 months
    assert all(datetime(2024, 6, d, tzinfo=UTC).date() in days for d in range(24, 31))
    months = {(d.year, d.month) for d in days}
    assert months == {(2023, m) for m in range(6, 13)} | {(2024, m) for m in range(1, 7)}
    assert ms(2023, 6, 1) in kept and ms(2023, 5, 1) not in kept
    # a kept weekly snapshot is the first of its ISO week
    monday = ms(2024, 6, 3)
    assert monday in kept and monday + 6 * HOUR_MS not in kept
    assert len(kept) < len(snaps) / 10


def test_the_newest_snapshot_is_never_dropped_and_the_window_base_is_kept() -> None:
    old = Snap("old", 0, 0, "A")
    assert policy.retained([old], 400 * DAY_MS, Schedule()) == {"old"}
    s = Schedule(
        snapshotRetentionDays=2,
        dailySnapshotRetentionDays=0,
        weeklySnapshotRetentionWeeks=0,
        monthlySnapshotRetentionMonths=0,
        pointInTimeWindowHours=48,
    )
    now = 10 * DAY_MS
    snaps = [
        Snap("a", now - 3 * DAY_MS, 1, "A"),
        Snap("b", now - 2 * DAY_MS - 1, 2, "A"),
        Snap("c", now - DAY_MS, 3, "A"),
    ]
    assert policy.retained(snaps, now, s) == {"b", "c"}  # b: the window's base; a is no longer needed


def test_slices_are_needed_from_the_window_base_and_until_the_head_applied_them() -> None:
    s = Schedule(pointInTimeWindowHours=24)
    now = 10 * DAY_MS
    snaps = [
        Snap("a", now - 3 * DAY_MS, 100, "A"),
        Snap("b", now - 2 * DAY_MS, 200, "A"),
        Snap("c", now - HOUR_MS, 300, "A"),
    ]
    slices = [SliceRef(f"x{a}", "A", a, a + 50) for a in range(0, 400, 50)]
    kept = policy.retained(snaps, now, s)
    needed = policy.needed_slices(snaps, kept, slices, now, s, "A", 350)
    assert needed == {"x200", "x250", "x300", "x350"}  # after b, the base of the last 24 hours
    assert "x350" in policy.needed_slices(snaps, kept, slices, now, s, "A", 320)
    assert policy.needed_slices([], set(), slices, now, s, None, None) == {x.id for x in slices}


def test_expiry_is_the_longest_class_a_snapshot_belongs_to() -> None:
    first_of_june = Snap("m", ms(2024, 6, 1), 1, "A")
    later = Snap("l", ms(2024, 6, 1, 6), 2, "A")
    snaps = [first_of_june, later]
    assert policy.expires_ms(later, snaps, Schedule()) == later.created_ms + 2 * DAY_MS
    assert policy.expires_ms(first_of_june, snaps, Schedule()) == ms(2025, 7, 1)

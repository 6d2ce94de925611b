"""The PITR window and restore planning (pure), and the time shapes of positions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.backup import pitr
from opsmgr.backup.errors import OutsideWindow, SnapshotBlocksMissing
from opsmgr.backup.pitr import Range, SliceSpan, SnapshotPoint, Target
from opsmgr.backup.positions import (
    PositionKind,
    from_millis,
    from_oplog,
    millis_range,
    timestamp_json,
    to_millis,
    to_oplog,
)
from opsmgr.errors import InvalidInput

STORE = PositionKind.STORE


def spans(chain: str, *bounds: int) -> list[SliceSpan]:
    """Abutting slices of one chain through the given bounds."""
    return [SliceSpan(f"{chain}{a}", chain, a, b) for a, b in itertools.pairwise(bounds)]


def test_a_snapshot_alone_restores_only_its_own_position() -> None:
    assert pitr.window([SnapshotPoint("s", 50, "A")], []) == [Range(50, 50)]


def test_the_window_runs_from_each_snapshot_to_the_end_of_its_unbroken_chain() -> None:
    snaps = [SnapshotPoint("s1", 100, "A"), SnapshotPoint("s2", 150, "A")]
    assert pitr.window(snaps, spans("A", 100, 120, 170, 200)) == [Range(100, 200)]


def test_a_gap_makes_a_hole_until_the_next_chain_and_its_snapshot() -> None:
    # Chain A broke at 200 (the source's oplog rolled over); chain B started at 300 with a new sync, and its
    # first snapshot was taken at 310. Nothing between 200 and 310 is restorable.
    snaps = [SnapshotPoint("a", 100, "A"), SnapshotPoint("b", 310, "B")]
    slices = spans("A", 100, 150, 200) + spans("B", 300, 310, 400)
    assert pitr.window(snaps, slices) == [Range(100, 200), Range(310, 400)]


def test_slices_of_another_chain_do_not_extend_a_snapshot() -> None:
    # A resync that started at the same position is another history: its slices do not continue A.
    snaps = [SnapshotPoint("a", 100, "A")]
    assert pitr.window(snaps, spans("A", 100, 200) + spans("B", 200, 300)) == [Range(100, 200)]


def test_a_broken_run_inside_a_chain_ends_the_window() -> None:
    slices = [SliceSpan("1", "A", 100, 150), SliceSpan("2", "A", 160, 200)]
    assert pitr.window([SnapshotPoint("a", 100, "A")], slices) == [Range(100, 150)]


def test_touching_ranges_merge() -> None:
    assert pitr.merge([Range(5, 9), Range(1, 4), Range(20, 30), Range(25, 26)]) == [
        Range(1, 9),
        Range(20, 30),
    ]


def test_the_plan_takes_the_newest_snapshot_and_the_slices_up_to_the_target_inclusive() -> None:
    snaps = [SnapshotPoint("s1", 100, "A"), SnapshotPoint("s2", 150, "A")]
    slices = spans("A", 100, 120, 170, 200)
    plan = pitr.plan_restore(STORE, snaps, slices, Target(position=170))
    assert plan.snapshot.id == "s2" and plan.after == 150 and plan.target == 170
    assert [s.id for s in plan.slices] == ["A120"]  # (120, 170] holds every entry in (150, 170]
    at_snapshot = pitr.plan_restore(STORE, snaps, slices, Target(position=150))
    assert at_snapshot.snapshot.id == "s2" and at_snapshot.slices == ()
    end = pitr.plan_restore(STORE, snaps, slices, Target(position=200))
    assert [s.id for s in end.slices] == ["A120", "A170"]


def test_a_target_outside_the_window_is_a_400_listing_the_ranges() -> None:
    snaps = [SnapshotPoint("a", 1_000_000, "A"), SnapshotPoint("b", 3_000_000, "B")]
    slices = spans("A", 1_000_000, 2_000_000) + spans("B", 3_000_000, 4_000_000)
    for outside in (999_999, 2_000_001, 2_999_999, 4_000_001):
        with pytest.raises(OutsideWindow) as err:
            pitr.plan_restore(STORE, snaps, slices, Target(position=outside, label="then"))
        assert err.value.http_status == 400
        ranges = err.value.parameters["restorableRanges"]
        assert [(r["start"]["time"], r["end"]["time"]) for r in ranges] == [(1, 2), (3, 4)]
        assert "then is outside" in err.value.detail
        assert err.value.field == "pointInTimeUTCMillis"
    body = pitr.parse_target(STORE, {"oplogTs": 5, "oplogInc": 0})
    with pytest.raises(OutsideWindow) as err:
        pitr.plan_restore(STORE, snaps, slices, body)
    assert err.value.field == "oplogTs" and "oplogTs 5" in err.value.detail


def test_a_snapshot_id_that_the_metadata_no_longer_has_is_a_409() -> None:
    with pytest.raises(SnapshotBlocksMissing) as err:
        pitr.plan_restore(STORE, [], [], Target(snapshot_id="abc"))
    assert err.value.http_status == 409
    assert err.value.detail.startswith("snapshot blocks missing")


def test_restore_targets_in_ops_managers_shapes() -> None:
    assert pitr.parse_target(STORE, {"snapshotId": "abc123"}).snapshot_id == "abc123"
    ms = pitr.parse_target(STORE, {"pointInTimeUTCMillis": 1_700_000_000_123})
    assert ms.position == 1_700_000_000_123_999
    oplog = pitr.parse_target(PositionKind.BSON, {"oplogTs": 1_700_000_000, "oplogInc": 7})
    assert oplog.position == (1_700_000_000 << 32) | 7
    assert pitr.parse_target(PositionKind.BSON, {"oplogTs": 1_700_000_000}).position == 1_700_000_000 << 32


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"snapshotId": "a", "pointInTimeUTCMillis": 5},
        {"pointInTimeUTCMillis": "soon"},
        {"pointInTimeUTCMillis": -1},
        {"pointInTimeUTCMillis": True},
        {"oplogTs": 5.5},
        {"oplogTs": 5, "oplogInc": 1_000_000},
        {"oplogInc": 5, "pointInTimeUTCMillis": 5},
        {"snapshotId": "../x"},
        {"snapshotId": 7},
    ],
)
def test_bad_targets_are_invalid_input(body: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        pitr.parse_target(STORE, body)


@pytest.mark.parametrize("kind", list(PositionKind))
@settings(max_examples=200, deadline=None)
@given(ms=st.integers(0, (1 << 31) * 1000 - 1))
def test_a_millisecond_maps_to_the_last_position_of_it(kind: PositionKind, ms: int) -> None:
    pos = from_millis(kind, ms)
    assert to_millis(kind, pos) <= ms
    assert to_millis(kind, pos + 1) > ms
    assert from_oplog(kind, *to_oplog(kind, pos)) == pos


@pytest.mark.parametrize("kind", list(PositionKind))
@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, 1 << 62), length=st.integers(0, 1 << 40), probe=st.integers(-(1 << 41), 1 << 41))
def test_millis_range_holds_exactly_the_milliseconds_restorable_in_a_range(
    kind: PositionKind, a: int, length: int, probe: int
) -> None:
    b = a + length
    shown = millis_range(kind, a, b)
    ms = (
        max(to_millis(kind, a) + probe // 1000, 0)
        if kind is PositionKind.STORE
        else max(to_millis(kind, a) + probe, 0)
    )
    inside = a <= from_millis(kind, ms) <= b
    assert inside == (shown is not None and shown[0] <= ms <= shown[1])


def test_timestamps_are_shown_as_ops_manager_does() -> None:
    assert timestamp_json(PositionKind.BSON, (1_700_000_000 << 32) | 3) == {
        "date": "2023-11-14T22:13:20Z",
        "time": 1_700_000_000,
        "increment": 3,
    }
    assert timestamp_json(STORE, 1_700_000_000_250_001)["date"] == "2023-11-14T22:13:20.250Z"


def test_cluster_windows_intersect() -> None:
    assert pitr.intersect([[(0, 10), (20, 30)], [(5, 25)], [(0, 100)]]) == [(5, 10), (20, 25)]
    assert pitr.intersect([]) == []

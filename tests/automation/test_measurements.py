"""The measurement store (``automation.measurements``): samples fold into minute and hour buckets, gauges
average, counters become rates per second across buckets (a restart is not a negative rate), missing buckets
are null points, and buckets past their retention are pruned when a host opens a new hour."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmgr.automation.hosts import host_id
from opsmgr.automation.measurements import (
    COLLECTIONS,
    HOUR_S,
    MINUTE_S,
    Measurements,
    expired,
    fold,
    point_value,
    series,
)
from opsmgr.automation.status import StatusReport
from opsmgr.store.engine import Store

G = "5f0000000000000000000001"
T0 = 1_700_000_040  # a minute's start


def _bucket(t: int, *samples: tuple[float, dict[str, float]]) -> dict[str, object]:
    doc: dict[str, object] = {}
    for at, sample in samples:
        doc = fold(doc, sample, at)
    return {**doc, "t": t}


def test_gauges_average_and_unknown_names_are_dropped() -> None:
    b = _bucket(T0, (T0 + 1, {"CONNECTIONS": 4, "BOGUS": 1}), (T0 + 2, {"CONNECTIONS": 8}))
    assert point_value("CONNECTIONS", b, None) == 6
    assert b["g"] == {"CONNECTIONS": [12.0, 2.0]}


def test_counters_are_rates_from_the_previous_bucket() -> None:
    prev = _bucket(T0, (T0 + 50, {"OPCOUNTER_INSERT": 100}))
    cur = _bucket(T0 + 60, (T0 + 70, {"OPCOUNTER_INSERT": 150}), (T0 + 110, {"OPCOUNTER_INSERT": 400}))
    assert point_value("OPCOUNTER_INSERT", cur, prev) == pytest.approx(300 / 60)
    assert point_value("OPCOUNTER_INSERT", cur, None) == pytest.approx(250 / 40)  # within the bucket
    restarted = _bucket(T0 + 60, (T0 + 70, {"OPCOUNTER_INSERT": 3}), (T0 + 80, {"OPCOUNTER_INSERT": 13}))
    assert point_value("OPCOUNTER_INSERT", restarted, prev) == pytest.approx(1.0)
    single = _bucket(T0 + 60, (T0 + 70, {"OPCOUNTER_INSERT": 3}))
    assert point_value("OPCOUNTER_INSERT", single, None) is None


def test_series_has_one_point_per_bucket_null_where_nothing_arrived() -> None:
    buckets = [_bucket(T0, (T0 + 1, {"CONNECTIONS": 2})), _bucket(T0 + 120, (T0 + 121, {"CONNECTIONS": 5}))]
    got = series(buckets, ["CONNECTIONS"], MINUTE_S, T0, T0 + 179)
    assert got == {"CONNECTIONS": [(T0, 2.0), (T0 + 60, None), (T0 + 120, 5.0)]}


def test_retention_is_48_hours_of_minutes_and_60_days_of_hours() -> None:
    now = T0 + 48 * HOUR_S
    assert not expired(T0, MINUTE_S, now) and expired(T0 - 60, MINUTE_S, now)
    assert not expired(T0 - 3600, HOUR_S, T0 + 59 * 24 * HOUR_S)
    assert expired(T0 - 3600, HOUR_S, T0 + 61 * 24 * HOUR_S)


def _report(**measurements: float) -> StatusReport:
    return StatusReport.model_validate(
        {"processes": [{"name": "rs0_0", "observed": {"running": True, "measurements": measurements}}]}
    )


def test_reports_fold_into_one_bucket_per_host_and_minute_and_old_ones_are_pruned(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")
    m, host = Measurements(store), host_id(G, "rs0_0")
    for i in range(6):  # every 20 s for two minutes
        m.record(G, _report(CONNECTIONS=float(i), OPCOUNTER_UPDATE=float(100 * i)), T0 + 20 * i)
    minutes = m.buckets(G, host, MINUTE_S, T0, T0 + 119)
    assert [b["t"] for b in minutes] == [T0, T0 + 60]
    points = series(minutes, ["CONNECTIONS", "OPCOUNTER_UPDATE"], MINUTE_S, T0, T0 + 119)
    assert points["CONNECTIONS"] == [(T0, 1.0), (T0 + 60, 4.0)]
    assert points["OPCOUNTER_UPDATE"][1] == (T0 + 60, pytest.approx(5.0))
    assert len(m.buckets(G, host, HOUR_S, T0, T0 + 119)) == 1
    assert m.buckets(G, host_id(G, "other"), MINUTE_S, T0, T0 + 119) == []
    # Three days later, a new hour: the minutes of the first day are gone, the hour stays.
    later = T0 + 72 * HOUR_S
    m.record(G, _report(CONNECTIONS=1.0), later)
    assert [b["t"] for b in store.find_prefix(COLLECTIONS[MINUTE_S], f"{G}:")] == [later - later % 60]
    assert len(store.find_prefix(COLLECTIONS[HOUR_S], f"{G}:")) == 2


def test_a_report_without_samples_writes_nothing(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")
    Measurements(store).record(G, StatusReport.model_validate({"processes": [{"name": "rs0_0"}]}), T0)
    assert store.find_prefix(COLLECTIONS[MINUTE_S], "") == []

"""The measurement store (``automation.measurements``): samples fold into minute and hour buckets, gauges
average, counters become rates per second across buckets (a restart is not a negative rate), missing buckets
are null points, and buckets past their retention are pruned when a host opens a new hour. A report costs
one read and one write (the open minute); a finished minute folds into its hour once, and the hours the
readers see are the same as if every report had folded into its hour (the open minute included). Partitions
and databases fold the same way, each its own series."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.automation.hosts import host_id
from opsmgr.automation.measurements import (
    CATALOG,
    COLLECTIONS,
    DATABASE_CATALOG,
    DATABASES,
    DISK_CATALOG,
    DISKS,
    HOUR_S,
    MINUTE_S,
    Measurements,
    bucket_start,
    expired,
    fold,
    point_value,
    series,
    sub_buckets,
)
from opsmgr.automation.status import StatusReport
from opsmgr.store.engine import Store, Txn

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
    # the store keeps the finished hour; the readers add the hour of the open minute
    assert len(store.find_prefix(COLLECTIONS[HOUR_S], f"{G}:")) == 1
    assert len(m.buckets(G, host, HOUR_S, T0, later)) == 2


def test_a_report_without_samples_writes_nothing(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")
    Measurements(store).record(G, StatusReport.model_validate({"processes": [{"name": "rs0_0"}]}), T0)
    assert store.find_prefix(COLLECTIONS[MINUTE_S], "") == []


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """The measurement collections' reads and writes, as (operation, collection)."""
    seen: list[tuple[str, str]] = []
    for op in ("get", "put", "find_prefix"):
        real = getattr(Txn, op)

        def counted(self: Txn, coll: str, *args: Any, _op: str = op, _real: Any = real, **kw: Any) -> Any:
            if coll.startswith("measurements"):
                seen.append((_op, coll))
            return _real(self, coll, *args, **kw)

        monkeypatch.setattr(Txn, op, counted)
    yield seen


def test_a_report_costs_one_read_and_one_write(store: Store, calls: list[tuple[str, str]]) -> None:
    m = Measurements(store)
    m.record(G, _report(CONNECTIONS=1.0), T0 + 1)
    calls.clear()
    m.record(G, _report(CONNECTIONS=2.0), T0 + 11)
    assert calls == [("get", COLLECTIONS[MINUTE_S]), ("put", COLLECTIONS[MINUTE_S])]
    calls.clear()  # the next minute: the finished one is kept and folded into its hour, once
    m.record(G, _report(CONNECTIONS=3.0), T0 + 61)
    minute, hour = COLLECTIONS[MINUTE_S], COLLECTIONS[HOUR_S]
    assert sorted(calls) == sorted(
        [("get", minute), ("put", minute), ("put", minute), ("get", hour), ("put", hour)]
    )


def _direct_hours(reports: list[tuple[float, dict[str, float]]]) -> list[dict[str, Any]]:
    """The hour buckets as folding every report into its hour would make them (the former write path)."""
    hours: dict[int, dict[str, Any]] = {}
    for at, sample in reports:
        t = bucket_start(at, HOUR_S)
        hours[t] = {**fold(hours.get(t), sample, at), "t": t}
    return list(hours.values())


def test_the_hours_read_are_those_of_folding_every_report_into_its_hour(store: Store) -> None:
    rng, m, host = random.Random(15), Measurements(store), host_id(G, "rs0_0")
    reports, at, inserts = [], float(T0 - 1800), 0.0
    while at < T0 + 2.5 * HOUR_S:  # reports at uneven intervals, a gap of minutes among them
        at += rng.choice([7.0, 10.0, 13.0, 250.0])
        inserts += rng.randint(0, 500)
        reports.append((at, {"CONNECTIONS": float(rng.randint(0, 9)), "OPCOUNTER_INSERT": inserts}))
    for when, sample in reports:
        m.record(G, _report(**sample), when)
    names, start = ["CONNECTIONS", "OPCOUNTER_INSERT"], T0 - HOUR_S
    got = series(m.buckets(G, host, HOUR_S, start, int(at)), names, HOUR_S, start, int(at))
    want = series(_direct_hours(reports), names, HOUR_S, start, int(at))
    assert got.keys() == want.keys()
    for name in names:
        assert [t for t, _ in got[name]] == [t for t, _ in want[name]]
        assert [v for _, v in got[name]] == pytest.approx([v for _, v in want[name]])
    assert got["CONNECTIONS"][-1][1] is not None  # the current hour, its open minute included


def _storage_report(objects: float, used: float) -> StatusReport:
    observed = {
        "running": True,
        "disks": {"xvdb": {"DISK_PARTITION_SPACE_USED": used, "BOGUS": 1.0}},
        "databases": {
            "shop": {"DATABASE_OBJECT_COUNT": objects, "DATABASE_DATA_SIZE": 10 * objects},
            "app": {"DATABASE_OBJECT_COUNT": 1.0},
        },
    }
    return StatusReport.model_validate({"processes": [{"name": "rs0_0", "observed": observed}]})


def test_partitions_and_databases_are_series_of_their_own(store: Store) -> None:
    m, host = Measurements(store), host_id(G, "rs0_0")
    for i in range(4):  # two minutes, two reports each
        m.record(G, _storage_report(objects=float(10 * i), used=1000.0 + i), T0 + 30 * i)
    assert m.names(G, host, DISKS) == ["xvdb"] and m.names(G, host, DATABASES) == ["app", "shop"]
    minutes = m.buckets(G, host, MINUTE_S, T0, T0 + 119)
    shop = series(
        sub_buckets(minutes, DATABASES, "shop"),
        ["DATABASE_OBJECT_COUNT"],
        MINUTE_S,
        T0,
        T0 + 119,
        DATABASE_CATALOG,
    )
    assert shop["DATABASE_OBJECT_COUNT"] == [(T0, 5.0), (T0 + 60, 25.0)]
    disk = sub_buckets(m.buckets(G, host, HOUR_S, T0, T0 + 119), DISKS, "xvdb")
    assert series(disk, ["DISK_PARTITION_SPACE_USED"], HOUR_S, T0, T0 + 119, DISK_CATALOG) == {
        "DISK_PARTITION_SPACE_USED": [(bucket_start(T0, HOUR_S), 1001.5)]
    }
    assert "BOGUS" not in disk[0]["g"]
    assert sub_buckets(minutes, DATABASES, "nope") == [] and m.names(G, host_id(G, "x"), DISKS) == []
    # the host's own series holds none of its storage's names
    assert not set(DATABASE_CATALOG) & set(CATALOG)


def test_the_names_outlive_an_hours_first_minute_without_storage(store: Store) -> None:
    m, host = Measurements(store), host_id(G, "rs0_0")
    hour = bucket_start(T0, HOUR_S) + HOUR_S
    m.record(G, _storage_report(objects=1.0, used=1.0), hour - 5)
    m.record(G, _report(CONNECTIONS=1.0), hour + 1)  # the new hour's first report carries no storage
    assert m.names(G, host, DATABASES) == ["app", "shop"]

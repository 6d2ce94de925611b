"""The measurements route's pure half (``server.measurements_api``): ISO-8601 durations, the span a request
asks for, and the measurement names it may name."""

from __future__ import annotations

import pytest

from opsmgr.automation.measurements import DATABASE_CATALOG, DISK_CATALOG
from opsmgr.errors import InvalidInput
from opsmgr.server.measurements_api import MAX_POINTS, duration_s, metric_names, window

NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT1H", 3600), ("P1D", 86400), ("P2DT12H", 216000), ("PT90S", 90), ("P1W", 604800), ("PT1M", 60)],
)
def test_durations(text: str, seconds: int) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "1H", "PT1.5H", "P1DT", "-PT1H", "PT1H ", "P1Y"])
def test_what_is_not_a_duration_is_zero(text: str) -> None:
    assert duration_s(text) == 0


def test_a_period_ends_now_and_a_start_and_end_are_instants() -> None:
    span = window("PT1M", "PT1H", None, None, NOW + 0.7)
    assert (span.granularity_s, span.start_s, span.end_s) == (60, NOW - 3600, NOW)
    span = window("PT1H", None, "2024-05-01T00:00:00Z", "2024-05-02T00:00:00+00:00", NOW)
    assert (span.granularity_s, span.end_s - span.start_s) == (3600, 86400)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("PT5M", "PT1H", None, None), "INVALID_GRANULARITY"),
        (("PT1M", None, None, None), "INVALID_PERIOD"),
        (("PT1M", "PT1H", "2024-05-01T00:00:00Z", None), "INVALID_PERIOD"),
        (("PT1M", None, "2024-05-02T00:00:00Z", "2024-05-01T00:00:00Z"), "INVALID_PERIOD"),
        (("PT1M", f"PT{MAX_POINTS}M", None, None), "INVALID_PERIOD"),
        (("PT1H", "P200D", None, None), "INVALID_PERIOD"),
    ],
)
def test_refusals(args: tuple[str, str | None, str | None, str | None], code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        window(*args, NOW)
    assert raised.value.error_code == code


def test_metric_names() -> None:
    assert metric_names(["CONNECTIONS", "CONNECTIONS"]) == ["CONNECTIONS"]
    assert "OPCOUNTER_INSERT" in metric_names(None)
    with pytest.raises(InvalidInput) as raised:
        metric_names(["ASSERT_NOPE"])
    assert raised.value.error_code == "INVALID_METRIC_NAME"


def test_a_partitions_or_databases_names_are_its_catalogues() -> None:
    assert metric_names(None, DISK_CATALOG) == list(DISK_CATALOG)
    assert metric_names(["DATABASE_OBJECT_COUNT"], DATABASE_CATALOG) == ["DATABASE_OBJECT_COUNT"]
    with pytest.raises(InvalidInput) as raised:
        metric_names(["CONNECTIONS"], DATABASE_CATALOG)  # a host's measurement, not a database's
    assert raised.value.error_code == "INVALID_METRIC_NAME"

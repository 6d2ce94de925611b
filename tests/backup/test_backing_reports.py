"""A backing restore job's purpose and delivery, and what its agent reports, checked as sent (pure)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from opsmgr.backup.backing_reports import (
    MAX_MESSAGE,
    MAX_OUTCOME_BYTES,
    backing_choices,
    parse_agent_report,
    parse_progress,
)
from opsmgr.backup.job_records import BackingDelivery, RestorePurpose
from opsmgr.errors import InvalidInput


def test_defaults_are_a_restore_the_asking_host_carries_out() -> None:
    assert backing_choices(None, None, None) == (RestorePurpose.RESTORE, BackingDelivery.CLI)
    assert backing_choices("RESTORE", "AGENT", True) == (RestorePurpose.RESTORE, BackingDelivery.AGENT)
    assert backing_choices("DRILL", "CLI", None) == (RestorePurpose.DRILL, BackingDelivery.CLI)


@pytest.mark.parametrize(
    ("purpose", "delivery", "force", "field"),
    [
        ("BOGUS", None, None, "purpose"),
        (None, "SOMEONE", None, "delivery"),
        (None, 1, None, "delivery"),
        (None, "AGENT", "yes", "force"),
        ("DRILL", "AGENT", None, "delivery"),  # a drill's sandbox is not the agent's primary
        (None, "CLI", True, "force"),  # the CLI decides the rules itself
    ],
)
def test_refused_choices_name_their_field(purpose: Any, delivery: Any, force: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        backing_choices(purpose, delivery, force)
    assert refused.value.parameters["field"] == field


def test_progress_is_kept_bounded_with_its_percent() -> None:
    got = parse_progress({"phase": "WRITING", "fraction": 0.25, "documents": 10, "message": "x" * 1000})
    assert got == {
        "phase": "WRITING",
        "fraction": 0.25,
        "percent": 25.0,
        "documents": 10,
        "message": "x" * MAX_MESSAGE,
    }


@pytest.mark.parametrize(
    "progress",
    [
        "WRITING",
        {"phase": "SLEEPING"},
        {"phase": "WRITING", "fraction": 1.5},
        {"phase": "WRITING", "fraction": -0.1},
        {"phase": "WRITING", "fraction": math.inf},
        {"phase": "WRITING", "fraction": True},
        {"phase": "WRITING", "documents": -1},
        {"phase": "WRITING", "documents": 2**60},
        {"phase": "WRITING", "message": 3},
        {"phase": "WRITING", "extra": 1},
        {"phase": "WRITING", "written": "app"},
        {"phase": "WRITING", "written": ["app", "app"]},
        {"phase": "WRITING", "written": ["users"]},
        {"phase": "WRITING", "written": [["app"]]},
        {"phase": "WRITING", "writing": ["app"]},
        {"phase": "WRITING", "writing": {"a": 1}},
        {"phase": "WRITING", "writing": "users"},
    ],
)
def test_forged_progress_is_refused(progress: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_progress(progress)


def test_progress_names_the_stores_written_and_the_one_being_written() -> None:
    sent = {"phase": "WRITING", "written": ["app"], "writing": "snapshot"}
    kept = parse_progress(sent)
    assert kept["written"] == ["app"] and kept["writing"] == "snapshot"
    assert "written" not in parse_progress({"phase": "WRITING"})
    assert parse_progress({"phase": "WRITING", "writing": None})["writing"] is None


def test_a_report_sets_progress_and_outcome_only() -> None:
    fields = parse_agent_report(
        {"statusName": "FAILED", "detail": "why", "outcome": {"reason": "why", "jobsAnswering409": ["j1"]}}
    )
    assert fields == {"outcome": {"reason": "why", "jobsAnswering409": ["j1"]}}
    assert parse_agent_report({"progress": {"phase": "DONE", "fraction": 1}})["progress"]["percent"] == 100.0


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"detail": "progress missing"},
        {"progress": {"phase": "DONE"}, "owner": "me"},
        {"statusName": "FINISHED", "outcome": ["not", "an", "object"]},
        {"statusName": "FINISHED", "outcome": {"big": "x" * MAX_OUTCOME_BYTES}},
        {"statusName": "FINISHED", "outcome": {"n": math.nan}},
        {"statusName": "FINISHED", "detail": 5},
    ],
)
def test_forged_or_oversized_reports_are_refused(report: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse_agent_report(report)

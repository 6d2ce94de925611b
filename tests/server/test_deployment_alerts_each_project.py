"""The deployment alerts' job settles every project even when one of them fails (pure)."""

from __future__ import annotations

import logging

import pytest

from opsmgr.server.deployment_alerts_job import each_project


def test_one_projects_failure_does_not_silence_the_others(caplog: pytest.LogCaptureFixture) -> None:
    settled: list[str] = []

    def settle(group_id: str) -> int:
        if group_id.startswith("bad"):
            raise KeyError("a malformed record")
        settled.append(group_id)
        return 2

    with caplog.at_level(logging.WARNING):
        assert each_project(["a", "bad1", "b", "bad2"], settle) == 4
    assert settled == ["a", "b"]
    assert "bad1" in caplog.text and "bad2" in caplog.text

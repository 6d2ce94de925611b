"""The deployment alerts' job: every project settled even when one of them fails, the open alerts read
once a pass."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from opsmgr.alerts import ALERTS, AlertService
from opsmgr.server.deployment_alerts_job import each_project, open_keys
from opsmgr.store.engine import Store


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


def test_every_projects_open_alerts_come_from_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read once a project, the alerts (every one ever raised) made a pass over 1,000 projects quadratic."""
    store = Store(f"sqlite:///{tmp_path / 'app.db'}")
    alerts = AlertService(store)
    alerts.raise_alert("g1", "HOST_DOWN", "deployment:HOST_DOWN:h1", "down")
    alerts.raise_alert("g1", "BACKUP_AGENT_DOWN", "backup:x", "down")
    alerts.raise_alert("g2", "HOST_DOWN", "deployment:HOST_DOWN:h2", "down")
    alerts.resolve("g2", "deployment:HOST_DOWN:h2")
    reads: list[str] = []
    find = Store.find
    monkeypatch.setattr(Store, "find", lambda self, coll, **eq: reads.append(coll) or find(self, coll, **eq))
    keys = open_keys(store)
    assert {g: sorted(k) for g, k in keys.items()} == {"g1": ["backup:x", "deployment:HOST_DOWN:h1"]}
    assert reads == [ALERTS]

"""The server's periodic jobs: each runs at its interval in a thread of its own, a failing job records its
error and runs again while the others go on; a real server shows its jobs in ``/metrics`` and
``/health/ready``."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx
import pytest

from opsmgr.errors import Conflict
from opsmgr.server.jobs import Job, JobRunner
from tests.procs import ServerProcess, started_server, wait_for


def test_a_failing_job_records_its_error_and_the_others_go_on() -> None:
    calls = {"bad": 0, "good": 0}
    hung = threading.Event()

    def bad() -> None:
        calls["bad"] += 1
        if calls["bad"] == 1:
            raise Conflict("the first run fails")
        raise RuntimeError("a bug")

    def good() -> None:
        calls["good"] += 1

    runner = JobRunner([Job("bad", 0.01, bad), Job("good", 0.01, good), Job("hung", 0.01, hung.wait)])
    runner.start()
    try:
        wait_for(lambda: calls["bad"] >= 3 and calls["good"] >= 3, 10, 0.01, what="both jobs running")
    finally:
        hung.set()
        runner.stop()
    views = {v["name"]: v for v in runner.views()}
    assert views["bad"]["failures"] == views["bad"]["runs"] >= 3
    assert views["bad"]["lastError"] == "RuntimeError: a bug"
    assert views["good"]["failures"] == 0 and views["good"]["lastError"] is None
    assert views["good"]["lastRun"] is not None and views["good"]["intervalSecs"] == 0.01
    assert 'opsmgr_job_failures_total{job="bad"}' in "\n".join(runner.metrics())


def test_job_names_are_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        JobRunner([Job("a", 1, lambda: None), Job("a", 1, lambda: None)])


def test_a_server_shows_its_jobs_in_metrics_and_readiness(server: ServerProcess) -> None:
    names = {
        "restoration",
        "backup",
        "backup-alerts",
        "secondary-watch",
        "maintenance",
        "index-build-configs",
    }

    def ran() -> dict[str, dict[str, object]] | None:
        jobs = {j["name"]: j for j in httpx.get(f"{server.url}/health/ready", timeout=10).json()["jobs"]}
        return jobs if all(jobs.get(n, {}).get("runs") for n in names) else None

    jobs = wait_for(ran, 30, 0.2, what="every periodic job to run once")
    assert set(jobs) >= names
    assert all(j["lastError"] is None for j in jobs.values()), jobs
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for name in names:
        runs = re.search(rf'^opsmgr_job_runs_total{{job="{name}"}} (\d+)$', text, re.M)
        assert runs is not None and int(runs.group(1)) >= 1, name
        assert f'opsmgr_job_last_run_timestamp_seconds{{job="{name}"}}' in text


def test_a_drill_sandbox_runs_no_job_that_reaches_outside(tmp_path: Path) -> None:
    with started_server(tmp_path / "sandbox", {"mms.drill.sandbox": "true"}) as sandbox:
        ready = httpx.get(f"{sandbox.url}/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        names = {j["name"] for j in ready.json()["jobs"]}
        assert {"restoration", "deployment-alerts"} <= names
        outward = {"backup", "backup-alerts", "secondary-watch", "alert-webhook", "backup-drills"}
        assert not names & outward, names
        assert "drill sandbox: no notification is delivered" in sandbox.log()

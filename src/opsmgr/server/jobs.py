"""The server's periodic work: named jobs, each run by a thread of its own at its interval, so that a long
snapshot never holds up Restoration Mode's timeouts.

Owns the run loop and each job's record (its interval, when it last ran and for how long, how often it ran
and failed, the last error, whether this server holds it), which ``/metrics`` and ``/health/ready`` show. A
job's failure is logged and recorded, and the job runs again at its next interval: one job's bug never stops
another. Where several servers share the backing databases each job runs on one of them: a run starts only
under this server's lease of the job (``store.job_leases``), fenced by its token; a keeper thread renews the
leases held while long runs go on, and a graceful stop hands them over at once. May import ``opsmgr.errors``,
``opsmgr.store.job_leases`` and ``opsmgr.server.metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opsmgr.errors import OpsmgrError
from opsmgr.store.job_leases import JobLeases, fenced

log = logging.getLogger("opsmgr.server")


@dataclass
class Job:
    """One periodic job and what it last did (times in epoch seconds)."""

    name: str
    interval_s: float
    run: Callable[[], object]
    on_stop: Callable[[], object] | None = None  # what the job leaves running is ended with the server
    last_started_at: float | None = None
    last_duration_s: float | None = None
    last_error: str | None = None
    runs: int = 0
    failures: int = 0
    held: bool = False  # whether this server held the job's lease at its last turn (ran it)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run_once(self) -> None:
        started, wall = time.perf_counter(), time.time()
        error: str | None = None
        try:
            self.run()
        except OpsmgrError as exc:
            error = exc.detail
            log.warning("periodic job %s failed: %s", self.name, error)
        except Exception as exc:  # the job's boundary: a bug in one job never stops the others
            error = f"{type(exc).__name__}: {exc}"
            log.exception("periodic job %s failed", self.name)
        with self._lock:
            self.last_started_at, self.last_duration_s = wall, time.perf_counter() - started
            self.runs += 1
            self.failures += error is not None
            self.last_error = error

    def view(self) -> dict[str, object]:
        with self._lock:
            return {
                "name": self.name,
                "intervalSecs": self.interval_s,
                "lastRun": self.last_started_at,
                "lastDurationSecs": self.last_duration_s,
                "lastError": self.last_error,
                "runs": self.runs,
                "failures": self.failures,
                "held": self.held,
            }


class JobRunner:
    """Runs every job in a thread of its own until :meth:`stop`, each only while ``leases`` grants it to this
    server (every job always, without leases)."""

    def __init__(self, jobs: list[Job], leases: JobLeases | None = None) -> None:
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"periodic jobs must have distinct names: {names}")
        self.jobs = jobs
        self.leases = leases
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._loop, args=(job,), name=f"job-{job.name}", daemon=True)
            for job in self.jobs
        ]
        if self.leases is not None and self.jobs:
            self._threads.append(threading.Thread(target=self._keep, name="job-leases", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []
        for job in self.jobs:
            if job.on_stop is not None:
                job.on_stop()
        if self.leases is not None:
            try:
                self.leases.release_all()
            except OpsmgrError as exc:  # the others take over when the leases expire instead
                log.warning("periodic jobs: leases not handed over: %s", exc.detail)

    def _loop(self, job: Job) -> None:
        while not self._stop.wait(job.interval_s):
            self.turn(job)

    def turn(self, job: Job) -> None:
        """One run of ``job`` if this server holds (or now takes) its lease."""
        if self.leases is None:
            job.held = True
            job.run_once()
            return
        try:
            lease = self.leases.acquire(job.name)
        except OpsmgrError as exc:
            log.warning("periodic job %s: its lease cannot be read: %s", job.name, exc.detail)
            return
        if (lease is not None) != job.held:
            log.info(
                "periodic job %s: %s", job.name, "taken by this server" if lease else "run by another server"
            )
        job.held = lease is not None
        if lease is not None:
            with fenced(job.name, lease.token):
                job.run_once()

    def _keep(self) -> None:
        assert self.leases is not None
        while not self._stop.wait(self.leases.ttl_s / 3):
            try:
                self.leases.renew_held()
            except OpsmgrError as exc:
                log.warning("periodic jobs: leases not renewed: %s", exc.detail)

    def views(self) -> list[dict[str, object]]:
        return [job.view() for job in self.jobs]

    def metrics(self) -> list[str]:
        """The jobs' lines in the Prometheus text format."""
        lines = [
            "# HELP opsmgr_job_runs_total Runs of each periodic job.",
            "# TYPE opsmgr_job_runs_total counter",
        ]
        views = self.views()
        lines += [f'opsmgr_job_runs_total{{job="{v["name"]}"}} {v["runs"]}' for v in views]
        lines += [
            "# HELP opsmgr_job_failures_total Runs of each periodic job that failed.",
            "# TYPE opsmgr_job_failures_total counter",
        ]
        lines += [f'opsmgr_job_failures_total{{job="{v["name"]}"}} {v["failures"]}' for v in views]
        lines += [
            "# HELP opsmgr_job_last_run_timestamp_seconds When each periodic job last started (epoch).",
            "# TYPE opsmgr_job_last_run_timestamp_seconds gauge",
        ]
        lines += [
            f'opsmgr_job_last_run_timestamp_seconds{{job="{v["name"]}"}} {v["lastRun"]}'
            for v in views
            if v["lastRun"] is not None
        ]
        lines += [
            "# HELP opsmgr_job_interval_seconds Each periodic job's interval.",
            "# TYPE opsmgr_job_interval_seconds gauge",
        ]
        lines += [f'opsmgr_job_interval_seconds{{job="{v["name"]}"}} {v["intervalSecs"]}' for v in views]
        lines += [
            "# HELP opsmgr_job_held Whether this server holds each periodic job's lease (runs it).",
            "# TYPE opsmgr_job_held gauge",
        ]
        lines += [f'opsmgr_job_held{{job="{v["name"]}"}} {int(bool(v["held"]))}' for v in views]
        return lines

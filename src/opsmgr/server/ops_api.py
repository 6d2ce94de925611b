"""Operability endpoints: liveness, readiness (every backing database takes a write; the Backup Daemon's
health is shown beside, from ``opsmgr.server.exporter``'s cached jobs) and the version.

Readiness writes: a store that answers reads but refuses writes (read-only, its disk full, a lock held
elsewhere) serves nothing useful. Each store's probe updates one ``health`` document, at most every
:data:`PROBE_EVERY_S` whatever the polling rate (every write appends an entry to the store's oplog, which the
secondary backs up), and its outcome is cached in between; a write not finished within
:data:`PROBE_TIMEOUT_S` counts as failed until it finishes.

May import ``opsmgr`` (its version), ``opsmgr.errors``, ``opsmgr.store.engine`` and ``opsmgr.server.deps``.
"""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from opsmgr import __version__
from opsmgr.errors import StoreError
from opsmgr.server.deps import ServicesDep
from opsmgr.store.engine import Store

router = APIRouter(tags=["operations"])

HEALTH = "health"
PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 2.0


class WriteProbe:
    """One store's write probe. The write runs in a thread of its own, so a hung store holds a readiness
    request no longer than :data:`PROBE_TIMEOUT_S` and never holds more than one thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._finished_at = -PROBE_EVERY_S
        self._problem: str | None = None
        self._running: threading.Event | None = None
        self._started_at = 0.0

    def start(self) -> None:
        """Starts a write unless one is running or the last one finished less than PROBE_EVERY_S ago."""
        with self._lock:
            now = time.monotonic()
            if self._running is not None or now - self._finished_at < PROBE_EVERY_S:
                return
            done = self._running = threading.Event()
            self._started_at = now
        threading.Thread(target=self._write, args=(done,), name="write-probe", daemon=True).start()

    def problem(self) -> str | None:
        """Why the store takes no write (None when the last write went through); waits for a running write
        until PROBE_TIMEOUT_S after it started."""
        with self._lock:
            running, started_at = self._running, self._started_at
        if running is not None and not running.wait(
            max(0.0, started_at + PROBE_TIMEOUT_S - time.monotonic())
        ):
            return f"a write has not finished within {PROBE_TIMEOUT_S:g} s"
        with self._lock:
            return self._problem

    def _write(self, done: threading.Event) -> None:
        try:
            self.store.put(HEALTH, {"_id": "ready", "at": int(time.time() * 1000)})
            problem = None
        except StoreError as exc:
            problem = exc.detail
        except Exception as exc:  # the driver's refusal (a read-only transaction, say) is the finding
            cause = getattr(exc, "orig", None) or exc  # the database's words, not SQLAlchemy's statement dump
            problem = f"a write failed: {cause.__class__.__name__}: {str(cause).strip()}"
        with self._lock:
            self._problem, self._finished_at, self._running = problem, time.monotonic(), None
        done.set()


class Readiness:
    """The write probes of a server's three backing databases, by the names readiness reports."""

    def __init__(self, app: Store, snapshots: Store, oplogs: Store) -> None:
        self.probes = {
            "appdb": WriteProbe(app),
            "snapshotStore": WriteProbe(snapshots),
            "oplogStore": WriteProbe(oplogs),
        }

    def problems(self) -> dict[str, str]:
        for probe in self.probes.values():  # all at once: three hung stores cost one timeout, not three
            probe.start()
        found = {name: probe.problem() for name, probe in self.probes.items()}
        return {name: problem for name, problem in found.items() if problem is not None}


@router.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "OK"}


@router.get("/health/ready", response_model=None)
def ready(request: Request, services: ServicesDep) -> object:
    """Ready when every backing database takes a write; the periodic jobs' last runs and errors are shown
    (a failing job is an alert's business, not a reason to take the server out of its load balancer), and so
    is the Backup Daemon's health (``daemon``: what the primary's probe of a secondary checks)."""
    problems = request.app.state.readiness.problems()
    jobs = services.jobs.views()
    daemon = request.app.state.exporter.daemon_health()
    if problems:
        detail = "not ready: " + "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        body = StoreError(detail, error_code="NOT_READY").to_json()
        return JSONResponse(
            {**body, "status": "UNAVAILABLE", "problems": problems, "jobs": jobs, "daemon": daemon},
            status_code=503,
        )
    return {"status": "OK", "jobs": jobs, "daemon": daemon}


@router.get("/monitor/health")
def monitor_health() -> dict[str, str]:
    """Ops Manager's own health check path, kept for load balancers configured for it."""
    return {"status": "OK"}


@router.get("/api/public/v1.0/version")
def version() -> dict[str, str]:
    return {"version": __version__, "name": "opsmgr"}

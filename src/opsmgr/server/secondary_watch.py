"""The primary's watch over its secondaries: the periodic work that probes each secondary recorded in the
application database (``opsmgr.backup.secondaries``) with a short HTTP readiness check and keeps the global
alert ``BACKUP_SECONDARY_UNREACHABLE`` in step. A server with no recorded secondary probes nothing. The check
covers the secondary's backing databases (its readiness takes a write on each, its application database
among them) and its Backup Daemon (the ``daemon`` section of its answer): a secondary that answers but says
its daemon is unhealthy is a failed probe, whose reason says so.

An HTTPS secondary is verified against the CA file ``opsmgr secondary attach --ca-file`` recorded with it
(else the system's CAs); a certificate it cannot verify is a failed probe whose reason says so.

May import ``opsmgr.errors``, ``opsmgr.tls``, ``opsmgr.backup.alerts``, ``opsmgr.backup.secondaries`` and
``opsmgr.server.services`` (types only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from opsmgr.backup.alerts import AlertPolicy
from opsmgr.backup.secondaries import Probe, SecondaryWatch, secondaries
from opsmgr.errors import OpsmgrError
from opsmgr.tls import Setting, client_verify, tls_failure

if TYPE_CHECKING:
    from opsmgr.server.services import Services

PROBE_TIMEOUT_S = 2.0


def http_probe(timeout_s: float, ca_file_of: Callable[[str], str | None] = lambda _url: None) -> Probe:
    """Probes a secondary's ``/health/ready``, trusting ``ca_file_of(url)`` for its certificate."""

    def probe(url: str) -> str | None:
        ca_file = ca_file_of(url)
        try:
            verify = client_verify(
                Path(ca_file) if ca_file else None, names=Setting(ca_file=f"the CA file recorded for {url}")
            )
            response = httpx.get(f"{url}/health/ready", timeout=timeout_s, verify=verify)
        except OpsmgrError as exc:
            return exc.detail
        except httpx.HTTPError as exc:
            return tls_failure(exc) or (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if response.status_code != 200:
            return f"/health/ready answered HTTP {response.status_code}"
        return daemon_problem(response)

    return probe


def daemon_problem(response: httpx.Response) -> str | None:
    """What a ready secondary's answer says is wrong with its Backup Daemon, or None (a secondary too old
    to show its daemon is taken as healthy)."""
    try:
        daemon = response.json().get("daemon")
    except (ValueError, AttributeError):
        return "/health/ready answered something other than a JSON object"
    if not isinstance(daemon, dict) or daemon.get("healthy") is not False:
        return None
    problems = daemon.get("problems")
    said = (
        "; ".join(str(p) for p in problems) if isinstance(problems, list) and problems else "no reason given"
    )
    return f"its Backup Daemon is unhealthy: {said}"


def secondary_work(services: Services, policy: AlertPolicy | None = None) -> Callable[[], object]:
    """The periodic work: probe the recorded secondaries, raise or resolve their alerts."""
    policy = policy or AlertPolicy()
    # Never longer than half the threshold, so a hung secondary is noticed as soon as a refusing one.
    timeout_s = min(PROBE_TIMEOUT_S, policy.secondary_unreachable_ms / 2000)
    ca_files: dict[str, str | None] = {}
    watch = SecondaryWatch(services.alerts, http_probe(timeout_s, ca_files.get), policy)

    def run() -> object:
        recorded = secondaries(services.stores.app)
        ca_files.clear()
        ca_files.update({str(d["url"]): d.get("caFile") for d in recorded})
        return watch.run(recorded, int(time.time() * 1000))

    return run

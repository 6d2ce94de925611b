"""The primary's watch over its secondaries: the periodic work that probes each secondary recorded in the
application database (``opsmgr.backup.secondaries``) with a short HTTP readiness check and keeps the global
alert ``BACKUP_SECONDARY_UNREACHABLE`` in step. A server with no recorded secondary probes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from opsmgr.backup.alerts import AlertPolicy
from opsmgr.backup.secondaries import Probe, SecondaryWatch, secondaries

PROBE_TIMEOUT_S = 2.0


def http_probe(timeout_s: float) -> Probe:
    def probe(url: str) -> str | None:
        try:
            response = httpx.get(f"{url}/health/ready", timeout=timeout_s)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if response.status_code != 200:
            return f"/health/ready answered HTTP {response.status_code}"
        return None

    return probe


def secondary_work(ctx: Any, policy: AlertPolicy | None = None) -> Callable[[], object]:
    """The periodic work: probe the recorded secondaries, raise or resolve their alerts."""
    policy = policy or AlertPolicy()
    # Never longer than half the threshold, so a hung secondary is noticed as soon as a refusing one.
    timeout_s = min(PROBE_TIMEOUT_S, policy.secondary_unreachable_ms / 2000)
    watch = SecondaryWatch(ctx.alerts, http_probe(timeout_s), policy)
    return lambda: watch.run(secondaries(ctx.stores.app), int(time.time() * 1000))

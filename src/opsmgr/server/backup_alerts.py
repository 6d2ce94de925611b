"""The server's backup alerting: every period, the facts of each source whose backup is STARTED go through
``opsmgr.backup.alerts`` (which decides and publishes) into the application database's alerts.

A source of a cluster whose backup is STOPPED is not listed, so its alerts resolve: nothing is expected of it.

May import ``opsmgr.errors``, ``opsmgr.backup.alerts`` and ``opsmgr.server.services`` (types only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from opsmgr.backup.alerts import AlertPolicy, Publisher, SourceFacts
from opsmgr.errors import NotFound

if TYPE_CHECKING:
    from opsmgr.server.services import Services

log = logging.getLogger("opsmgr.server.backup_alerts")


def started_facts(services: Services) -> list[SourceFacts]:
    started = services.clusters.started()
    out = []
    for src in services.backup.sources():
        if src.clusterId not in started:
            continue
        try:
            status = services.backup.status(src.id)
        except NotFound:  # terminated meanwhile
            continue
        out.append(SourceFacts.from_status(status, services.backup.started_ms))
    return out


def alert_work(services: Services, policy: AlertPolicy | None = None) -> Callable[[], object]:
    """The periodic work that keeps backup alerts in step with the sources' conditions."""
    publisher = Publisher(services.alerts, policy)
    return lambda: publisher.run(started_facts(services), services.backup.now_ms())

"""The server's backup alerting: every period, the facts of each source whose backup is STARTED go through
``opsmgr.backup.alerts`` (which decides and publishes) into the application database's alerts.

A source of a cluster whose backup is STOPPED is not listed, so its alerts resolve: nothing is expected of it.
The same work keeps the global ``BACKUP_BLOCKSTORE_FILLING`` alert in step with ``opsmgr.backup.capacity``'s
projection over every source the daemon has (measured at most once a minute, after the sources' alerts).

May import ``opsmgr.errors``, ``opsmgr.backup.alerts``, ``opsmgr.backup.capacity``,
``opsmgr.backup.secondaries`` (the global project id), ``opsmgr.timestamps`` and ``opsmgr.server.services``
(types only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from opsmgr.backup.alerts import AlertPolicy, CapacityWatch, Publisher, SourceFacts
from opsmgr.backup.capacity import measure_blockstore
from opsmgr.backup.secondaries import GLOBAL_GROUP_ID
from opsmgr.errors import NotFound
from opsmgr.timestamps import iso_utc_or_none

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
    capacity = CapacityWatch(services.alerts, GLOBAL_GROUP_ID, policy)

    def fill_projection() -> tuple[float | None, str | None]:
        daemon = services.backup
        figures = measure_blockstore(daemon, daemon.sources(), daemon.now_ms())
        return figures.days_until_full, iso_utc_or_none(figures.full_at_ms)

    def run() -> object:
        now = services.backup.now_ms()
        held = publisher.run(started_facts(services), now)
        capacity.run(fill_projection, now)
        return held

    return run

"""The server's deployment alerting: every period, for each project, what its agents last reported (its
hosts, marked stale as ``GET /hosts`` marks them, and its agents' freshness) goes through
``opsmgr.automation.deployment_alerts`` (which decides) with the event types its alert configurations enable
(``store.alert_configs``); each condition that holds is raised (opened once, refreshed after) and each open
deployment alert whose condition is gone is resolved.

May import ``opsmgr.alerts``, ``opsmgr.automation.deployment_alerts`` and ``opsmgr.server.services``
(types only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from opsmgr.alerts import ALERTS, AlertStatus
from opsmgr.automation.deployment_alerts import Condition, conditions, to_close

if TYPE_CHECKING:
    from opsmgr.server.services import Services

log = logging.getLogger("opsmgr.server.deployment_alerts")


def project_conditions(services: Services, group_id: str) -> list[Condition]:
    automation = services.automation
    heard = automation.hearing()
    agents = {
        str(s.get("hostname")): heard.of(s.get("receivedAt")).value == "fresh"
        for s in automation.agent_statuses(group_id)
    }
    thresholds = services.alert_configs.thresholds(group_id)
    return conditions(automation.hosts(group_id), agents, thresholds)


def settle(services: Services, group_id: str) -> int:
    """Opens the project's deployment alerts that hold, closes the others; returns how many hold."""
    holding = project_conditions(services, group_id)
    for c in holding:
        services.alerts.raise_alert(
            group_id, c.event_type, c.key, c.message, typeName=c.type_name, **c.details
        )
    opened = services.stores.app.find(ALERTS, groupId=group_id, status=AlertStatus.OPEN.value)
    for key in to_close([str(a.get("key")) for a in opened], holding):
        services.alerts.resolve(group_id, key)
    return len(holding)


def deployment_alert_work(services: Services) -> Callable[[], object]:
    """The periodic work that keeps every project's deployment alerts in step with its agents' reports."""

    def run() -> object:
        return sum(settle(services, str(g["_id"])) for g in services.appdb.groups())

    return run

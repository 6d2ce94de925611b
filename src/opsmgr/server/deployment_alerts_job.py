"""The server's deployment alerting: every period, for each project, what its agents last reported (its
hosts, marked stale as ``GET /hosts`` marks them, and its agents' freshness) goes through
``opsmgr.automation.deployment_alerts`` (which decides) with the event types its alert configurations enable
(``store.alert_configs``); each condition that holds is raised (opened once, refreshed after) and each open
deployment alert whose condition is gone is resolved.

Every alert goes out through the alerts' outbox (``mms.alerts.webhook.url``, retried). An alert that opens or
closes is also posted, once and best effort (a failure is logged, not retried), to the ``webhookUrl`` of each
WEBHOOK notification of its configurations, unless a maintenance window of the project silences its type.

May import ``opsmgr.jsontypes``, ``opsmgr.alerts``, ``opsmgr.automation``, ``opsmgr.store``,
``opsmgr.server.alerts_api`` (the webhook poster) and ``opsmgr.server.services`` (types only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from opsmgr.alerts import ALERTS, AlertStatus, public_view
from opsmgr.automation.deployment_alerts import Condition, conditions, to_close
from opsmgr.automation.hosts import Freshness
from opsmgr.jsontypes import JsonObject
from opsmgr.server.alerts_api import webhook_poster
from opsmgr.store.maintenance_windows import muting

if TYPE_CHECKING:
    from opsmgr.server.services import Services

log = logging.getLogger("opsmgr.server.deployment_alerts")


def project_conditions(services: Services, group_id: str) -> list[Condition]:
    automation = services.automation
    heard = automation.hearing()
    agents = {
        str(s.get("hostname")): heard.of(s.get("receivedAt")) is Freshness.FRESH
        for s in automation.agent_statuses(group_id)
    }
    thresholds = services.alert_configs.thresholds(group_id)
    return conditions(automation.hosts(group_id), agents, thresholds)


def notify_webhooks(services: Services, alert: JsonObject, status: AlertStatus) -> int:
    """Posts the alert that opened or closed to its configurations' webhooks; returns how many took it."""
    group_id, event = str(alert["groupId"]), str(alert["eventTypeName"])
    urls = services.alert_configs.webhooks(group_id, event, alert.get("metricName"))
    if not urls:
        return 0
    with services.stores.app.read() as t:
        window = muting(t, group_id, event, alert.get("typeName"), services.alerts.clock())
    if window is not None:
        return 0
    payload = alert | {"notification": status.value, "status": status.value}
    sent = 0
    for url in urls:
        try:
            webhook_poster(url)(payload)
            sent += 1
        except Exception as exc:  # a receiver's failure must not stop the evaluation of the others
            log.warning("webhook %s of alert %s (%s) failed: %s", url, alert["id"], status.value, exc)
    return sent


def settle(services: Services, group_id: str) -> int:
    """Opens the project's deployment alerts that hold, closes the others; returns how many hold."""
    holding = project_conditions(services, group_id)
    before = {str(a["key"]): a for a in services.stores.app.find(ALERTS, groupId=group_id, status="OPEN")}
    for c in holding:
        raised = services.alerts.raise_alert(
            group_id, c.event_type, c.key, c.message, typeName=c.type_name, **c.details
        )
        if c.key not in before:
            notify_webhooks(services, raised, AlertStatus.OPEN)
    for key in to_close(list(before), holding):
        if services.alerts.resolve(group_id, key):
            notify_webhooks(services, public_view(before[key]), AlertStatus.CLOSED)
    return len(holding)


def deployment_alert_work(services: Services) -> Callable[[], object]:
    """The periodic work that keeps every project's deployment alerts in step with its agents' reports."""

    def run() -> object:
        return sum(settle(services, str(g["_id"])) for g in services.appdb.groups())

    return run

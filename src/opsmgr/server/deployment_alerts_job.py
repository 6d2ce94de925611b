"""The server's deployment alerting: every period, for each project, what its agents last reported (its
hosts, marked stale as ``GET /hosts`` marks them, their oplog windows, its agents' freshness) and its rolling
changes' states go through ``opsmgr.automation.deployment_alerts`` (which decides) under the rules its alert
configurations give (``store.alert_configs``: its own, or the defaults, and the applicable global ones);
each condition that holds, and held at the previous pass, is raised (opened once, refreshed after) and each
open deployment alert whose condition is gone is resolved; a project that fails is logged and the others
are settled all the same. Notifications go through the alerts' outbox (``opsmgr.alerts``), to the
installation's webhook and to the covering configurations' webhooks, retried.

May import ``opsmgr.jsontypes``, ``opsmgr.alerts``, ``opsmgr.automation``, ``opsmgr.store`` and
``opsmgr.server.services`` (types only).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from opsmgr.alerts import ALERTS, AlertStatus
from opsmgr.automation.deployment_alerts import ChangeFact, Facts, conditions, confirmed, to_close
from opsmgr.automation.hosts import Freshness
from opsmgr.jsontypes import JsonObject
from opsmgr.store.alert_rules import OPLOG_METRIC, Rule
from opsmgr.store.engine import Store

if TYPE_CHECKING:
    from opsmgr.server.services import Services

log = logging.getLogger(__name__)


def oplog_hours(statuses: Iterable[JsonObject]) -> dict[str, float]:
    """Each process's oplog window (hours) from its agent's last report's measurements."""
    out: dict[str, float] = {}
    for status in statuses:
        for proc in status.get("processes") or []:
            hours = (proc.get("measurements") or {}).get(OPLOG_METRIC)
            if isinstance(hours, int | float) and not isinstance(hours, bool):
                out[str(proc.get("name"))] = float(hours)
    return out


def project_facts(services: Services, group_id: str) -> Facts:
    automation = services.automation
    heard = automation.hearing()
    statuses = automation.agent_statuses(group_id)
    policy = services.maintenance.policy
    changes = [
        ChangeFact(str(v["replicaSet"]), str(v["state"]), v.get("reason"))
        for v in services.maintenance.status_views(group_id)
    ]
    return Facts(
        hosts=automation.hosts(group_id),
        agents={str(s.get("hostname")): heard.of(s.get("receivedAt")) is Freshness.FRESH for s in statuses},
        oplog_hours=oplog_hours(statuses),
        oplog_needed_h=policy.default_out_s * policy.oplog_margin / 3600,
        changes=changes,
    )


def open_keys(store: Store) -> dict[str, list[str]]:
    """Each project's open alerts' keys, from one read of the alerts (each one ever raised is kept): read
    once a project, a pass over 1,000 projects was quadratic."""
    keys: dict[str, list[str]] = defaultdict(list)
    for alert in store.find(ALERTS, status=AlertStatus.OPEN.value):
        keys[str(alert["groupId"])].append(str(alert["key"]))
    return dict(keys)


def settle(
    services: Services, group_id: str, rules: Sequence[Rule], opened: Sequence[str], held: dict[str, set[str]]
) -> int:
    """Opens the project's deployment alerts that hold under ``rules`` and held at the previous pass too
    (``held``: each project's keys then, updated here), closes the others of those that were ``opened``
    (their keys, read before); returns how many hold."""
    holding = conditions(project_facts(services, group_id), rules)
    before, held[group_id] = held.get(group_id, set()), {c.key for c in holding}
    for c in confirmed(holding, before, opened):
        services.alerts.raise_alert(
            group_id, c.event_type, c.key, c.message, typeName=c.type_name, **c.details
        )
    for key in to_close(opened, holding):
        services.alerts.resolve(group_id, key)
    return len(holding)


def each_project(group_ids: Iterable[str], settle_one: Callable[[str], int]) -> int:
    """Settles every project; returns how many conditions hold in all. A project that fails (a malformed
    record, a store error) is logged and the others are settled all the same: one tenant's data must not
    silence every other tenant's alerts."""
    held, failed = 0, 0
    for group_id in group_ids:
        try:
            held += settle_one(group_id)
        except Exception as exc:  # any failure of one project: the job goes on with the next
            if not failed:  # the first one's traceback; the others' (often the same cause) one line each
                log.exception("deployment alerts of project %s could not be settled", group_id)
            else:
                log.warning("deployment alerts of project %s could not be settled: %r", group_id, exc)
            failed += 1
    return held


def deployment_alert_work(services: Services) -> Callable[[], object]:
    """The periodic work that keeps every project's deployment alerts in step with its agents' reports."""

    held: dict[str, set[str]] = {}  # what held at the previous pass, per project

    def run() -> object:
        services.alert_configs.rekey_legacy()
        rules, opened = services.alert_configs.rules_by_group(), open_keys(services.stores.app)
        return each_project(rules, lambda g: settle(services, g, rules[g], opened.get(g, []), held))

    return run

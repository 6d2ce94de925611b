"""Alert configurations: Ops Manager's ``alertConfigs``, which deployment alerts a project evaluates and with
what threshold, kept in the application database (collection ``alert_configs``).

A configuration is ``{id, groupId, eventTypeName, enabled, matchers, notifications, created, updated,
typeName}`` plus ``metricThreshold`` (an ``OUTSIDE_METRIC_THRESHOLD`` configuration's metric) or
``threshold`` when it has one, as Ops Manager shows it. :func:`validated` checks a body sent to create or
replace one: ``eventTypeName`` one of :data:`EVENT_TYPES` (else ``INVALID_EVENT_TYPE_FOR_ALERT``), a
non-empty ``notifications`` list (else ``MISSING_NOTIFICATIONS``), each naming a :data:`NOTIFICATION_TYPES`
``typeName`` (a ``WEBHOOK`` one its ``webhookUrl``), matchers ``{fieldName, operator, value}`` (kept, not
yet applied). The only metric is :data:`LAG_METRIC`, replication lag in seconds. :func:`webhook_urls` says
where an alert's WEBHOOK notifications go.

:meth:`AlertConfigs.thresholds` says what a project evaluates: the event types of its enabled
configurations with their thresholds, or :data:`DEFAULTS` while it has none (Ops Manager's new project has
host down, no primary, too few healthy members, agent down and replication lag over 60 s configured).

May import ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from opsmgr.errors import InvalidInput, NotFound
from opsmgr.store.engine import Store, new_id

log = logging.getLogger(__name__)

CONFIGS = "alert_configs"
LAG_METRIC = "OPLOG_SLAVE_LAG_MASTER_TIME"
METRIC = "OUTSIDE_METRIC_THRESHOLD"
DEFAULT_LAG_S = 60.0
# Each event type this server evaluates, and the alert type (``typeName``) of its alerts.
EVENT_TYPES = {
    "HOST_DOWN": "HOST",
    "NO_PRIMARY": "REPLICA_SET",
    "TOO_FEW_HEALTHY_MEMBERS": "REPLICA_SET",
    "AUTOMATION_AGENT_DOWN": "AGENT",
    METRIC: "HOST_METRIC",
}
# What a project with no configuration evaluates: event type (the metric's name for a metric) -> threshold.
DEFAULTS: dict[str, float | None] = {
    "HOST_DOWN": None,
    "NO_PRIMARY": None,
    "TOO_FEW_HEALTHY_MEMBERS": None,
    "AUTOMATION_AGENT_DOWN": None,
    LAG_METRIC: DEFAULT_LAG_S,
}
NOTIFICATION_TYPES = ("GROUP", "USER", "EMAIL", "SMS", "WEBHOOK", "SLACK", "ORG")
OPERATORS = ("GREATER_THAN", "LESS_THAN")
MATCH_FIELDS = ("HOSTNAME", "PORT", "HOSTNAME_AND_PORT", "REPLICA_SET_NAME", "TYPE_NAME")
MATCH_OPERATORS = ("EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH", "REGEX")
MAX_ITEMS = 10
MAX_TEXT = 512
_NOTIFICATION_TEXT = (
    "webhookUrl",
    "webhookSecret",
    "emailAddress",
    "username",
    "mobileNumber",
    "channelName",
)
_NOTIFICATION_FLAGS = ("emailEnabled", "smsEnabled")
FIELDS = ("eventTypeName", "enabled", "matchers", "metricThreshold", "threshold", "notifications")


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: object, field: str, allowed: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TEXT:
        raise InvalidInput(f"{field} must be a string of 1 to {MAX_TEXT} characters", field=field)
    if allowed is not None and value not in allowed:
        raise InvalidInput(f"{field} {value[:40]!r} is not one of {', '.join(allowed)}", field=field)
    return value


def _number(value: object, field: str, *, integer: bool = False, low: float = 0) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= 10**9:
        kind = "an integer" if integer else "a number"
        raise InvalidInput(f"{field} must be {kind} from {low:g} to 10^9", field=field)
    return float(value)


def _object(value: object, field: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be an object", field=field)
    unknown = [k for k in value if k not in known]
    if unknown:
        raise InvalidInput(f"{field}.{str(unknown[0])[:40]} is not a field of {field}", field=field)
    return value


def _list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise InvalidInput(f"{field} must be a list of at most {MAX_ITEMS} items", field=field)
    return value


def parse_notification(value: object, index: int) -> dict[str, Any]:
    field = f"notifications[{index}]"
    known = ("typeName", "intervalMin", "delayMin", *_NOTIFICATION_TEXT, *_NOTIFICATION_FLAGS, "roles")
    body = _object(value, field, known)
    out: dict[str, Any] = {"typeName": _text(body.get("typeName"), f"{field}.typeName", NOTIFICATION_TYPES)}
    out["intervalMin"] = int(
        _number(body.get("intervalMin", 60), f"{field}.intervalMin", integer=True, low=5)
    )
    out["delayMin"] = int(_number(body.get("delayMin", 0), f"{field}.delayMin", integer=True))
    for name in _NOTIFICATION_TEXT:
        if body.get(name) is not None:
            out[name] = _text(body[name], f"{field}.{name}")
    for name in _NOTIFICATION_FLAGS:
        if name in body and not isinstance(body[name], bool):
            raise InvalidInput(f"{field}.{name} must be true or false", field=f"{field}.{name}")
        if name in body:
            out[name] = body[name]
    if "roles" in body:
        out["roles"] = [_text(r, f"{field}.roles") for r in _list(body["roles"], f"{field}.roles")]
    if out["typeName"] == "WEBHOOK" and not str(out.get("webhookUrl", "")).startswith(
        ("http://", "https://")
    ):
        raise InvalidInput(f"{field}.webhookUrl must be an http(s) URL", field=f"{field}.webhookUrl")
    return out


def parse_matcher(value: object, index: int) -> dict[str, str]:
    field = f"matchers[{index}]"
    body = _object(value, field, ("fieldName", "operator", "value"))
    return {
        "fieldName": _text(body.get("fieldName"), f"{field}.fieldName", MATCH_FIELDS),
        "operator": _text(body.get("operator"), f"{field}.operator", MATCH_OPERATORS),
        "value": _text(body.get("value"), f"{field}.value"),
    }


def parse_metric(value: object) -> dict[str, Any]:
    body = _object(value, "metricThreshold", ("metricName", "operator", "threshold", "units", "mode"))
    return {
        "metricName": _text(body.get("metricName"), "metricThreshold.metricName", (LAG_METRIC,)),
        "operator": _text(body.get("operator", "GREATER_THAN"), "metricThreshold.operator", OPERATORS),
        "threshold": _number(body.get("threshold"), "metricThreshold.threshold"),
        "units": _text(body.get("units", "SECONDS"), "metricThreshold.units", ("SECONDS",)),
        "mode": _text(body.get("mode", "AVERAGE"), "metricThreshold.mode", ("AVERAGE",)),
    }


def parse_threshold(value: object) -> dict[str, Any]:
    body = _object(value, "threshold", ("operator", "threshold", "units"))
    out = {
        "operator": _text(body.get("operator", "GREATER_THAN"), "threshold.operator", OPERATORS),
        "threshold": _number(body.get("threshold"), "threshold.threshold"),
    }
    return out | ({"units": _text(body["units"], "threshold.units")} if "units" in body else {})


def validated(body: Mapping[str, Any]) -> dict[str, Any]:
    """The stored fields of the configuration ``body`` asks for (a POST or a PUT: every field it has)."""
    event = body.get("eventTypeName")
    if not isinstance(event, str) or event not in EVENT_TYPES:
        raise InvalidInput(
            f"eventTypeName {str(event)[:40]!r} is not one of {', '.join(EVENT_TYPES)}",
            field="eventTypeName",
            error_code="INVALID_EVENT_TYPE_FOR_ALERT",
        )
    if not body.get("notifications"):
        raise InvalidInput(
            "notifications must name at least one notification",
            field="notifications",
            error_code="MISSING_NOTIFICATIONS",
        )
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", field="enabled")
    if event == METRIC and body.get("metricThreshold") is None:
        raise InvalidInput(f"{METRIC} needs a metricThreshold", field="metricThreshold")
    metric = body.get("metricThreshold")
    threshold = body.get("threshold")
    return {
        "eventTypeName": event,
        "typeName": EVENT_TYPES[event],
        "enabled": enabled,
        "notifications": [
            parse_notification(n, i) for i, n in enumerate(_list(body["notifications"], "notifications"))
        ],
        "matchers": [
            parse_matcher(m, i) for i, m in enumerate(_list(body.get("matchers") or [], "matchers"))
        ],
        "metricThreshold": parse_metric(metric) if event == METRIC and metric is not None else None,
        "threshold": parse_threshold(threshold) if threshold is not None else None,
    }


def public_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as Ops Manager shows it (``metricThreshold``/``threshold`` only when set)."""
    shown = {
        "id": doc["_id"],
        "groupId": doc["groupId"],
        "eventTypeName": doc["eventTypeName"],
        "typeName": doc["typeName"],
        "enabled": doc["enabled"],
        "matchers": list(doc["matchers"]),
        "notifications": list(doc["notifications"]),
        "created": doc["created"],
        "updated": doc["updated"],
    }
    return shown | {k: doc[k] for k in ("metricThreshold", "threshold") if doc.get(k) is not None}


def webhook_urls(configs: Sequence[Mapping[str, Any]], event_type: str, metric_name: object) -> list[str]:
    """The ``webhookUrl`` of each WEBHOOK notification of the enabled configurations of an alert's event
    type (and metric), each once."""
    urls = [
        str(n["webhookUrl"])
        for doc in configs
        if doc["enabled"]
        and doc["eventTypeName"] == event_type
        and (doc.get("metricThreshold") or {}).get("metricName") == metric_name
        for n in doc["notifications"]
        if n["typeName"] == "WEBHOOK"
    ]
    return list(dict.fromkeys(urls))


def thresholds_of(configs: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """What a project evaluates (as :data:`DEFAULTS`) given its stored configurations: the enabled ones'
    event types, a metric by its name with the lowest threshold configured; :data:`DEFAULTS` with none."""
    if not configs:
        return dict(DEFAULTS)
    out: dict[str, float | None] = {}
    for doc in configs:
        if not doc["enabled"]:
            continue
        metric = doc.get("metricThreshold")
        if metric is None:
            out[doc["eventTypeName"]] = None
            continue
        value = float(metric["threshold"])
        out[metric["metricName"]] = min(value, out.get(metric["metricName"]) or value)
    return out


class AlertConfigs:
    """A project's alert configurations: what the ``alertConfigs`` routes and the deployment alerts use."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _doc(self, group_id: str, config_id: str) -> dict[str, Any]:
        doc = self.store.get(CONFIGS, config_id)
        if doc is None or doc.get("groupId") != group_id:
            raise NotFound(
                f"No alert configuration with ID {config_id} exists in group {group_id}.",
                error_code="ALERT_CONFIG_NOT_FOUND",
            )
        return doc

    def of_group(self, group_id: str) -> list[dict[str, Any]]:
        docs = self.store.find(CONFIGS, groupId=group_id)
        return [public_view(d) for d in sorted(docs, key=lambda d: (d["created"], d["_id"]))]

    def thresholds(self, group_id: str) -> dict[str, float | None]:
        return thresholds_of(self.store.find(CONFIGS, groupId=group_id))

    def get(self, group_id: str, config_id: str) -> dict[str, Any]:
        return public_view(self._doc(group_id, config_id))

    def webhooks(self, group_id: str, event_type: str, metric_name: object) -> list[str]:
        return webhook_urls(self.store.find(CONFIGS, groupId=group_id), event_type, metric_name)

    def create(self, group_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = validated(body)
        now = iso(self.clock())
        doc = {"_id": new_id(), "groupId": group_id, "created": now, "updated": now, **fields}
        self.store.insert(CONFIGS, doc)
        log.info(
            "alert configuration %s (%s) created in project %s", doc["_id"], fields["eventTypeName"], group_id
        )
        return public_view(doc)

    def replace(self, group_id: str, config_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = validated(body)
        with self.store.tx() as t:
            doc = t.get(CONFIGS, config_id)
            if doc is None or doc.get("groupId") != group_id:
                self._doc(group_id, config_id)  # raises the 404
            assert doc is not None
            doc.update(updated=iso(self.clock()), **fields)
            t.put(CONFIGS, doc)
        return public_view(doc)

    def set_enabled(self, group_id: str, config_id: str, enabled: object) -> dict[str, Any]:
        """PATCH: Ops Manager's only change of one field, ``enabled``."""
        if not isinstance(enabled, bool):
            raise InvalidInput("enabled must be true or false", field="enabled")
        self._doc(group_id, config_id)
        doc = self.store.update(CONFIGS, config_id, {"enabled": enabled, "updated": iso(self.clock())})
        if doc is None:  # deleted meanwhile
            self._doc(group_id, config_id)
        assert doc is not None
        return public_view(doc)

    def delete(self, group_id: str, config_id: str) -> None:
        self._doc(group_id, config_id)
        self.store.delete(CONFIGS, config_id)
        log.info("alert configuration %s of project %s deleted", config_id, group_id)

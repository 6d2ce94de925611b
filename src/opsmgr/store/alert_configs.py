"""Alert configurations: Ops Manager's ``alertConfigs``, which alerts a project raises and where their
notifications go, kept in the application database (collection ``alert_configs``; the installation's
``globalAlertConfigs`` are ``store.global_alert_configs``).

A configuration is ``{id, groupId, eventTypeName, enabled, matchers, notifications, created, updated,
typeName}`` plus ``metricThreshold`` (an ``OUTSIDE_METRIC_THRESHOLD`` configuration's metric) or
``threshold`` when it has one, as Ops Manager shows it. :func:`validated` checks a body sent to create or
replace one: ``eventTypeName`` one of :data:`EVENT_TYPES` (else ``INVALID_EVENT_TYPE_FOR_ALERT``), a
non-empty ``notifications`` list (else ``MISSING_NOTIFICATIONS``), each naming a :data:`NOTIFICATION_TYPES`
``typeName`` (a ``WEBHOOK`` one its ``webhookUrl``), matchers ``{fieldName, operator, value}``
(``store.alert_rules`` applies them). The metrics are replication lag in seconds and the oplog window in
hours (``store.alert_rules.METRIC_UNITS``).

Two kinds of event types. :data:`EVALUATED` ones are decided from what agents report and the rolling
changes' records (``automation.deployment_alerts``): a project raises them only as its enabled
configurations ask (``store.alert_rules.evaluated``). The others (:data:`ROUTED`) are raised by the loops
that guard the seed's procedures (backup, rolling changes, Restoration Mode) whatever the
configurations say; a configuration of such a type says where its notifications go.

A ``webhookSecret`` is kept encrypted with ``gen.key`` and shown as :data:`SECRET_MASK`; a PUT that sends the
mask back (a GET-then-PUT round trip) keeps the stored secret of that URL. :func:`covering` gives, inside
the transaction that opens or closes an alert, the webhooks of the project's and the applicable global
configurations that cover it: a configuration is stored under ``<groupId>:<id>`` (:func:`doc_key`), so
that transaction reads its project's configurations only; one stored under its bare id by an earlier
version is moved there by the deployment alerts' first pass (:meth:`AlertConfigs.rekey_legacy`).

May import ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from opsmgr.errors import InvalidInput, NotFound
from opsmgr.store import alert_rules
from opsmgr.store.alert_rules import LAG_METRIC, METRIC, METRIC_UNITS, OPLOG_METRIC, Rule, Webhook
from opsmgr.store.crypto import is_token
from opsmgr.store.engine import Store, Txn, new_id

log = logging.getLogger(__name__)

CONFIGS = "alert_configs"
GROUPS = "groups"  # store.appdb's projects: a global configuration applies by the project's organization
# The event types decided from reports, maintenance records and Restoration Mode, and their alerts' typeName.
EVALUATED = {
    "HOST_DOWN": "HOST",
    "NO_PRIMARY": "REPLICA_SET",
    "TOO_FEW_HEALTHY_MEMBERS": "REPLICA_SET",
    "AUTOMATION_AGENT_DOWN": "AGENT",
    METRIC: "HOST_METRIC",
    "ROLLING_CHANGE_BLOCKED": "REPLICA_SET",
    "ROLLING_CHANGE_FAILED": "REPLICA_SET",
}
# The event types raised by the loops that guard a procedure, whatever the configurations say.
ROUTED = {
    "MAINTENANCE_MEMBER_FAILED": "REPLICA_SET",
    "MAINTENANCE_MAJORITY_LOST": "REPLICA_SET",
    "RESTORATION_MODE_ENTERED": "GROUP",  # closes when the mode exits
    "RESTORATION_MODE_FAILED": "GROUP",
    "RESTORATION_MODE_AGENT_REFUSED": "GROUP",
    "BACKUP_SNAPSHOT_MISSED": "BACKUP",
    "BACKUP_SNAPSHOT_FAILED": "BACKUP",
    "BACKUP_PITR_WINDOW_GAP": "BACKUP",
    "BACKUP_PITR_WINDOW_NOT_ADVANCING": "BACKUP",
    "BACKUP_AGENT_DOWN": "BACKUP",
    "BACKUP_BLOCK_CORRUPT": "BACKUP",
    "BACKUP_BLOCKSTORE_FILLING": "BACKUP",
    "OPLOG_BEHIND": "BACKUP",
    "RESYNC_REQUIRED": "BACKUP",
}
EVENT_TYPES = EVALUATED | ROUTED
NOTIFICATION_TYPES = ("GROUP", "USER", "EMAIL", "SMS", "WEBHOOK", "SLACK", "ORG")
OPERATORS = ("GREATER_THAN", "LESS_THAN")
SECRET_MASK = "******"
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
Cipher = Callable[[str], str]


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def text(value: object, field: str, allowed: tuple[str, ...] | None = None) -> str:
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


def listed(value: object, field: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise InvalidInput(f"{field} must be a list of at most {MAX_ITEMS} items", field=field)
    return value


def flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false", field=field)
    return value


def parse_notification(value: object, index: int) -> dict[str, Any]:
    field = f"notifications[{index}]"
    known = ("typeName", "intervalMin", "delayMin", *_NOTIFICATION_TEXT, *_NOTIFICATION_FLAGS, "roles")
    body = _object(value, field, known)
    out: dict[str, Any] = {"typeName": text(body.get("typeName"), f"{field}.typeName", NOTIFICATION_TYPES)}
    out["intervalMin"] = int(
        _number(body.get("intervalMin", 60), f"{field}.intervalMin", integer=True, low=5)
    )
    out["delayMin"] = int(_number(body.get("delayMin", 0), f"{field}.delayMin", integer=True))
    for name in _NOTIFICATION_TEXT:
        if body.get(name) is not None:
            out[name] = text(body[name], f"{field}.{name}")
    for name in _NOTIFICATION_FLAGS:
        if name in body:
            out[name] = flag(body[name], f"{field}.{name}")
    if "roles" in body:
        out["roles"] = [text(r, f"{field}.roles") for r in listed(body["roles"], f"{field}.roles")]
    if out["typeName"] == "WEBHOOK" and not str(out.get("webhookUrl", "")).startswith(
        ("http://", "https://")
    ):
        raise InvalidInput(f"{field}.webhookUrl must be an http(s) URL", field=f"{field}.webhookUrl")
    return out


def parse_matcher(value: object, index: int) -> dict[str, str]:
    field = f"matchers[{index}]"
    body = _object(value, field, ("fieldName", "operator", "value"))
    matcher = {
        "fieldName": text(body.get("fieldName"), f"{field}.fieldName", alert_rules.MATCH_FIELDS),
        "operator": text(body.get("operator"), f"{field}.operator", alert_rules.MATCH_OPERATORS),
        "value": text(body.get("value"), f"{field}.value"),
    }
    problem = alert_rules.pattern_problem(matcher["value"]) if matcher["operator"] == "REGEX" else None
    if problem is not None:
        raise InvalidInput(f"{field}.value: {problem}", field=f"{field}.value")
    return matcher


def parse_metric(value: object) -> dict[str, Any]:
    body = _object(value, "metricThreshold", ("metricName", "operator", "threshold", "units", "mode"))
    name = text(body.get("metricName"), "metricThreshold.metricName", (LAG_METRIC, OPLOG_METRIC))
    default_operator = "LESS_THAN" if name == OPLOG_METRIC else "GREATER_THAN"
    units = METRIC_UNITS[name]
    return {
        "metricName": name,
        "operator": text(body.get("operator", default_operator), "metricThreshold.operator", OPERATORS),
        "threshold": _number(body.get("threshold"), "metricThreshold.threshold"),
        "units": text(body.get("units", units), "metricThreshold.units", (units,)),
        "mode": text(body.get("mode", "AVERAGE"), "metricThreshold.mode", ("AVERAGE",)),
    }


def parse_threshold(value: object) -> dict[str, Any]:
    body = _object(value, "threshold", ("operator", "threshold", "units"))
    out = {
        "operator": text(body.get("operator", "GREATER_THAN"), "threshold.operator", OPERATORS),
        "threshold": _number(body.get("threshold"), "threshold.threshold"),
    }
    return out | ({"units": text(body["units"], "threshold.units")} if "units" in body else {})


def validated(body: Mapping[str, Any], *, enabled_by_default: bool = True) -> dict[str, Any]:
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
    enabled = flag(body.get("enabled", enabled_by_default), "enabled")
    if event == METRIC and body.get("metricThreshold") is None:
        raise InvalidInput(f"{METRIC} needs a metricThreshold", field="metricThreshold")
    metric = body.get("metricThreshold")
    threshold = body.get("threshold")
    return {
        "eventTypeName": event,
        "typeName": EVENT_TYPES[event],
        "enabled": enabled,
        "notifications": [
            parse_notification(n, i) for i, n in enumerate(listed(body["notifications"], "notifications"))
        ],
        "matchers": [
            parse_matcher(m, i) for i, m in enumerate(listed(body.get("matchers") or [], "matchers"))
        ],
        "metricThreshold": parse_metric(metric) if event == METRIC and metric is not None else None,
        "threshold": parse_threshold(threshold) if threshold is not None else None,
    }


def sealed(
    notifications: list[dict[str, Any]], before: Sequence[Mapping[str, Any]], encrypt: Cipher
) -> list[dict[str, Any]]:
    """The notifications as stored: each webhook secret encrypted; the mask sent back keeps the secret the
    same URL had (``before``: the stored notifications), or none when it had none."""
    kept = {n.get("webhookUrl"): n.get("webhookSecret") for n in before if n.get("webhookSecret")}
    out = []
    for note in notifications:
        secret = note.get("webhookSecret")
        if secret == SECRET_MASK:
            secret = kept.get(note.get("webhookUrl"))
        elif secret is not None:
            secret = encrypt(secret)
        out.append(
            {k: v for k, v in note.items() if k != "webhookSecret"}
            | ({"webhookSecret": secret} if secret else {})
        )
    return out


def shown_notifications(notifications: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        dict(n) | ({"webhookSecret": SECRET_MASK} if n.get("webhookSecret") else {}) for n in notifications
    ]


def doc_key(group_id: str, config_id: str) -> str:
    """A configuration's document id: its project's id first, so that an alert's transaction reads its
    project's configurations (``find_prefix``) rather than every project's."""
    return f"{group_id}:{config_id}"


def public_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as Ops Manager shows it (``metricThreshold``/``threshold`` only when set)."""
    shown = {
        "id": doc.get("id", doc["_id"]),
        "groupId": doc["groupId"],
        "eventTypeName": doc["eventTypeName"],
        "typeName": doc["typeName"],
        "enabled": doc["enabled"],
        "matchers": list(doc["matchers"]),
        "notifications": shown_notifications(doc["notifications"]),
        "created": doc["created"],
        "updated": doc["updated"],
    }
    return shown | {k: doc[k] for k in ("metricThreshold", "threshold") if doc.get(k) is not None}


def not_found(config_id: str, where: str) -> NotFound:
    return NotFound(
        f"No alert configuration with ID {config_id} exists{where}.", error_code="ALERT_CONFIG_NOT_FOUND"
    )


class AlertConfigs:
    """A project's alert configurations: what the ``alertConfigs`` routes and the deployment alerts use."""

    def __init__(
        self,
        store: Store,
        *,
        encrypt: Cipher = lambda s: s,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.encrypt = encrypt
        self.clock = clock
        self._rekeyed = False

    def _doc(self, group_id: str, config_id: str, t: Txn | None = None) -> dict[str, Any]:
        """The project's configuration ``config_id`` (stored under :func:`doc_key`, or under its bare id
        before :meth:`rekey_legacy` ran): the project is checked either way."""
        source = t if t is not None else self.store
        doc = source.get(CONFIGS, doc_key(group_id, config_id)) or source.get(CONFIGS, config_id)
        if doc is None or doc.get("groupId") != group_id:
            raise not_found(config_id, f" in group {group_id}")
        return doc

    def of_group(self, group_id: str) -> list[dict[str, Any]]:
        docs = self.store.find(CONFIGS, groupId=group_id)  # the ones not yet rekeyed too
        return [public_view(d) for d in sorted(docs, key=lambda d: (d["created"], d.get("id", d["_id"])))]

    def _sealed(self, notifications: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The notifications with each secret sealed: the version before sealing kept them as sent."""
        return [
            dict(n) | {"webhookSecret": self.encrypt(str(n["webhookSecret"]))}
            if n.get("webhookSecret") and not is_token(n["webhookSecret"])
            else dict(n)
            for n in notifications
        ]

    def rekey_legacy(self) -> int:
        """Moves the configurations stored under their bare id (before ids began with the project's) to
        :func:`doc_key`, their secrets sealed, in one transaction; returns how many. Once a process: the
        deployment alerts' job calls it on each pass, and only the first pass reads the collection."""
        if self._rekeyed:
            return 0
        moved = 0
        with self.store.tx() as t:
            for doc in [d for d in t.find(CONFIGS) if "id" not in d]:
                try:
                    rekeyed = {"_id": doc_key(doc["groupId"], doc["_id"]), "id": doc["_id"]}
                    rekeyed["notifications"] = self._sealed(doc["notifications"])
                except (KeyError, TypeError, AttributeError) as exc:  # left as it is, never read again
                    log.warning("alert configuration %s is malformed and not rekeyed: %r", doc["_id"], exc)
                    continue
                t.delete(CONFIGS, doc["_id"])
                t.insert(CONFIGS, doc | rekeyed)
                moved += 1
        self._rekeyed = True
        if moved:
            log.warning("%d alert configurations rekeyed by their project", moved)
        return moved

    def rules_by_group(self) -> dict[str, list[Rule]]:
        """What each project's deployment alerts evaluate: its own and the applicable global
        configurations' rules, from one read (a pass over every project reads each collection once)."""
        with self.store.read() as t:
            own: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for config in t.find(CONFIGS):
                own[str(config.get("groupId"))].append(config)
            globals_ = t.find(GLOBAL_CONFIGS)
            return {
                str(g["_id"]): alert_rules.evaluated(
                    own.get(str(g["_id"]), []),
                    [c for c in globals_ if applies(c, str(g["_id"]), g.get("orgId"))],
                )
                for g in t.find(GROUPS)
            }

    def get(self, group_id: str, config_id: str) -> dict[str, Any]:
        return public_view(self._doc(group_id, config_id))

    def create(self, group_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = validated(body)
        fields["notifications"] = sealed(fields["notifications"], [], self.encrypt)
        now = iso(self.clock())
        config_id = new_id()
        doc = {"_id": doc_key(group_id, config_id), "id": config_id, "groupId": group_id, "created": now}
        doc |= {"updated": now, **fields}
        self.store.insert(CONFIGS, doc)
        log.info(
            "alert configuration %s (%s) created in project %s", config_id, fields["eventTypeName"], group_id
        )
        return public_view(doc)

    def replace(self, group_id: str, config_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = validated(body)
        with self.store.tx() as t:
            doc = self._doc(group_id, config_id, t)
            fields["notifications"] = sealed(fields["notifications"], doc["notifications"], self.encrypt)
            doc.update(updated=iso(self.clock()), **fields)
            t.put(CONFIGS, doc)
        return public_view(doc)

    def set_enabled(self, group_id: str, config_id: str, enabled: object) -> dict[str, Any]:
        """PATCH: Ops Manager's only change of one field, ``enabled``."""
        enabled = flag(enabled, "enabled")
        with self.store.tx() as t:
            doc = t.update(
                CONFIGS,
                self._doc(group_id, config_id, t)["_id"],
                {"enabled": enabled, "updated": iso(self.clock())},
            )
        assert doc is not None  # read in this same transaction
        return public_view(doc)

    def delete(self, group_id: str, config_id: str) -> None:
        with self.store.tx() as t:
            t.delete(CONFIGS, self._doc(group_id, config_id, t)["_id"])
        log.info("alert configuration %s of project %s deleted", config_id, group_id)

    def open_alerts(self, group_id: str, config_id: str, alerts: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Of the project's open ``alerts``, those this configuration covers (its ``/alerts``)."""
        doc = self._doc(group_id, config_id)
        return [a for a in alerts if alert_rules.covers(doc, a)]


GLOBAL_CONFIGS = "global_alert_configs"


def applicable_globals(t: Txn, group_id: str) -> list[dict[str, Any]]:
    """The global configurations that apply to the project: for all the projects of the organizations they
    belong to, or naming it in ``groupIds``."""
    group = t.get(GROUPS, group_id)
    org = group.get("orgId") if group is not None else None
    return [c for c in t.find(GLOBAL_CONFIGS) if applies(c, group_id, org)]


def applies(config: Mapping[str, Any], group_id: str, org: object) -> bool:
    """Whether the global configuration applies to the project ``group_id`` of organization ``org``: only
    while the project is one of its organizations' (a project deleted, then adopted under its id by another
    organization, is still named in ``groupIds``)."""
    if org is None or org not in (config.get("orgIds") or ()):
        return False
    return config.get("forAllGroups") is True or group_id in (config.get("groupIds") or ())


def covering(t: Txn, alert: Mapping[str, Any]) -> list[Webhook]:
    """Where the alert's notifications go besides the installation's webhook: the webhooks of the applicable
    global and the project's configurations that cover it. A URL both name is signed with the global one's
    secret: a project owner must not re-sign, so void, its organization's alerts."""
    group_id = str(alert.get("groupId"))
    configs = applicable_globals(t, group_id) + t.find_prefix(CONFIGS, doc_key(group_id, ""))
    return alert_rules.webhooks(configs, alert)

"""What an alert configuration covers (pure): its matchers applied to an alert's subject, the rules a project
evaluates, and which configurations' notifications an alert goes to.

An alert's **subject** is what matchers compare, taken from the alert's own fields: ``HOSTNAME``, ``PORT``
and ``HOSTNAME_AND_PORT`` from ``hostnameAndPort``, ``REPLICA_SET_NAME`` from ``replicaSetName``,
``TYPE_NAME`` from ``replicaStateName`` (``PRIMARY``, ``SECONDARY``...). A configuration **covers** an alert
when it is enabled, has the alert's event type (and, for ``OUTSIDE_METRIC_THRESHOLD``, its metric) and
every matcher holds; a matcher on a field the alert does not have does not hold, since Ops Manager checks
only the entities that match all of a configuration's rules.

A :class:`Rule` is what the deployment alerts evaluate for one enabled configuration: event type, metric,
operator and threshold, matchers. A project evaluates its own configurations' rules, or
:data:`DEFAULT_RULES` while it has none (Ops Manager gives a new project a set of default configurations),
plus the rules of the global configurations that apply to it.

May import nothing of opsmgr.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

METRIC = "OUTSIDE_METRIC_THRESHOLD"
LAG_METRIC = "OPLOG_SLAVE_LAG_MASTER_TIME"  # seconds a secondary is behind its primary
OPLOG_METRIC = "OPLOG_MASTER_TIME"  # the oplog window, in hours
METRIC_UNITS = {LAG_METRIC: "SECONDS", OPLOG_METRIC: "HOURS"}
MATCH_FIELDS = ("HOSTNAME", "PORT", "HOSTNAME_AND_PORT", "REPLICA_SET_NAME", "TYPE_NAME")
MATCH_OPERATORS = ("EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH", "REGEX")
MAX_PATTERN = 200
# A quantified group that itself holds a quantifier, e.g. (a+)+: the shape that backtracks exponentially.
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")


@dataclass(frozen=True)
class Matcher:
    field: str
    operator: str
    value: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Matcher:
        return cls(str(raw["fieldName"]), str(raw["operator"]), str(raw["value"]))


@dataclass(frozen=True)
class Rule:
    """One enabled configuration as the evaluation sees it. ``threshold`` None on a metric rule: the
    evaluator's own default (the oplog window's is what the maintenance preflight needs)."""

    event_type: str
    metric: str | None = None
    operator: str = "GREATER_THAN"
    threshold: float | None = None
    matchers: tuple[Matcher, ...] = ()

    def beyond(self, value: float, default: float) -> bool:
        """Whether a metric's ``value`` is on the alerting side of the threshold."""
        limit = default if self.threshold is None else self.threshold
        return value < limit if self.operator == "LESS_THAN" else value > limit


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("HOST_DOWN"),
    Rule("NO_PRIMARY"),
    Rule("TOO_FEW_HEALTHY_MEMBERS"),
    Rule("AUTOMATION_AGENT_DOWN"),
    Rule(METRIC, LAG_METRIC, "GREATER_THAN", 60.0),
    Rule(METRIC, OPLOG_METRIC, "LESS_THAN", None),
    Rule("ROLLING_CHANGE_BLOCKED"),
    Rule("ROLLING_CHANGE_FAILED"),
)


def pattern_problem(pattern: str) -> str | None:
    """Why a REGEX matcher's value is refused: too long, not a regular expression, or nested quantifiers
    (an alert evaluation must not be stalled by one project's pattern)."""
    if len(pattern) > MAX_PATTERN:
        return f"a REGEX matcher's value is at most {MAX_PATTERN} characters"
    if _NESTED_QUANTIFIER.search(pattern):
        return "a REGEX matcher's value may not repeat a group that itself repeats"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"a REGEX matcher's value is not a regular expression: {exc}"
    return None


def subject_of(fields: Mapping[str, Any]) -> dict[str, str]:
    """What matchers see of an alert (or of a condition's details)."""
    out: dict[str, str] = {}
    where = fields.get("hostnameAndPort")
    if isinstance(where, str) and where:
        host, _, port = where.rpartition(":")
        out |= {"HOSTNAME_AND_PORT": where, "HOSTNAME": host or where}
        out |= {"PORT": port} if host else {}
    for field, name in (("REPLICA_SET_NAME", "replicaSetName"), ("TYPE_NAME", "replicaStateName")):
        value = fields.get(name)
        if isinstance(value, str) and value:
            out[field] = value
    return out


def holds(matcher: Matcher, subject: Mapping[str, str]) -> bool:
    seen = subject.get(matcher.field)
    if seen is None:
        return False
    want = matcher.value
    match matcher.operator:
        case "EQUALS":
            return seen == want
        case "NOT_EQUALS":
            return seen != want
        case "CONTAINS":
            return want in seen
        case "NOT_CONTAINS":
            return want not in seen
        case "STARTS_WITH":
            return seen.startswith(want)
        case "ENDS_WITH":
            return seen.endswith(want)
        case "REGEX":
            return re.fullmatch(want, seen) is not None
    return False


def all_hold(matchers: Iterable[Matcher], subject: Mapping[str, str]) -> bool:
    return all(holds(m, subject) for m in matchers)


def rule_of(config: Mapping[str, Any]) -> Rule:
    matchers = tuple(Matcher.from_json(m) for m in config.get("matchers") or [])
    metric = config.get("metricThreshold")
    if metric is None:
        return Rule(str(config["eventTypeName"]), matchers=matchers)
    return Rule(
        str(config["eventTypeName"]),
        str(metric["metricName"]),
        str(metric.get("operator", "GREATER_THAN")),
        float(metric["threshold"]),
        matchers,
    )


def evaluated(own: Sequence[Mapping[str, Any]], global_: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """The rules a project evaluates: its own enabled configurations' (the defaults while it has none) and
    those of the enabled global configurations that apply to it."""
    mine = [rule_of(c) for c in own if c["enabled"]] if own else list(DEFAULT_RULES)
    return mine + [rule_of(c) for c in global_ if c["enabled"]]


def covers(config: Mapping[str, Any], alert: Mapping[str, Any]) -> bool:
    """Whether the configuration's notifications are for this alert."""
    if not config["enabled"] or config["eventTypeName"] != alert.get("eventTypeName"):
        return False
    metric = (config.get("metricThreshold") or {}).get("metricName")
    if metric is not None and metric != alert.get("metricName"):
        return False
    return all_hold(rule_of(config).matchers, subject_of(alert))


Webhook = tuple[str, str | None]  # (url, the secret that signs the body, as stored)


def webhooks(configs: Iterable[Mapping[str, Any]], alert: Mapping[str, Any]) -> list[Webhook]:
    """The WEBHOOK notifications of the configurations that cover the alert, each URL once."""
    found: dict[str, str | None] = {}
    for config in configs:
        if not covers(config, alert):
            continue
        for note in config["notifications"]:
            if note["typeName"] == "WEBHOOK" and note["webhookUrl"] not in found:
                found[str(note["webhookUrl"])] = note.get("webhookSecret")
    return list(found.items())

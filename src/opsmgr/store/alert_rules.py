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

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

METRIC = "OUTSIDE_METRIC_THRESHOLD"
LAG_METRIC = "OPLOG_SLAVE_LAG_MASTER_TIME"  # seconds a secondary is behind its primary
OPLOG_METRIC = "OPLOG_MASTER_TIME"  # the oplog window, in hours
METRIC_UNITS = {LAG_METRIC: "SECONDS", OPLOG_METRIC: "HOURS"}
MATCH_FIELDS = ("HOSTNAME", "PORT", "HOSTNAME_AND_PORT", "REPLICA_SET_NAME", "TYPE_NAME")
MATCH_OPERATORS = ("EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH", "REGEX")
MAX_PATTERN = 200
MAX_REPEATS = 2  # quantifiers that repeat more than once: a failing match may cost n ** MAX_REPEATS steps
MAX_CHOICES = 16  # the product of the alternations' branch counts: the ways a failing match tries in turn
MAX_SUBJECT = 300  # a hostname has at most 253 characters: a REGEX never holds for a longer subject
_QUANTIFIER = re.compile(r"[*+?]|\{(\d*)(,(\d*))?\}")
# What follows "(" in a group that is not a plain one: (?:, (?P<name>, lookarounds, (?>, inline flags.
_EXTENSION = re.compile(r"\(\?(P<\w+>|<[=!]|[=!:>]|[aiLmsux-]*:?)")


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


def _atom_end(pattern: str, i: int) -> int:
    """Where the escape or the character class at ``i`` ends (one character for anything else)."""
    if pattern[i] == "\\":
        return i + 2
    if pattern[i] != "[":
        return i + 1
    j = i + 1 + (pattern[i + 1 : i + 2] == "^")
    j += pattern[j : j + 1] == "]"  # a "]" first in a class is one of its characters
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


def _most(quantifier: str) -> float:
    """How many times a quantifier (``*``, ``+``, ``?``, ``{m}``, ``{m,}``, ``{m,n}``) repeats at most."""
    if quantifier in ("*", "+"):
        return math.inf
    if quantifier == "?":
        return 1
    low, comma, high = quantifier[1:-1].partition(",")
    return float(high or "inf") if comma else float(low)


def _shape_problem(pattern: str) -> str | None:
    """Refuses what makes a backtracking matcher take exponential or high-polynomial time: a repeated group
    that itself repeats or alternates (``(a+)+``, ``(a|aa)+``, ``(a?){25}``), back-references, more than
    :data:`MAX_REPEATS` repeating quantifiers, alternations whose branches multiply beyond
    :data:`MAX_CHOICES` (``(a|a)(a|a)...``). A malformed pattern is left to ``re.compile``."""
    groups = [[False, 0]]  # each open group: whether it holds a quantifier or an alternation, its bars
    repeats, choices, closed, i = 0, 1, False, 0
    while i < len(pattern):
        quantifier = _QUANTIFIER.match(pattern, i)
        if quantifier is not None and (pattern[i] != "{" or quantifier.group(1) or quantifier.group(3)):
            most = _most(quantifier.group())
            if closed and most > 1:
                return "a REGEX matcher's value may not repeat a group that itself repeats or alternates"
            groups[-1][0] = True
            repeats += most > 1
            i = quantifier.end() + (pattern[quantifier.end() : quantifier.end() + 1] in ("?", "+"))
        elif pattern.startswith(("(?P=", "(?("), i) or (
            pattern[i] == "\\" and pattern[i + 1 : i + 2] in "123456789"
        ):
            return "a REGEX matcher's value may not refer back to a group"
        elif pattern[i] == "(":
            groups.append([False, 0])
            extension = _EXTENSION.match(pattern, i)
            i = extension.end() if extension is not None else i + 1
        elif pattern[i] == ")" and len(groups) > 1:
            risky, bars = groups.pop()
            closed, choices = bool(risky or bars), choices * (bars + 1)
            groups[-1][0] = groups[-1][0] or closed
            i += 1
            continue
        else:
            groups[-1][1] += pattern[i] == "|"
            groups[-1][0] = groups[-1][0] or pattern[i] == "|"
            i = _atom_end(pattern, i)
        closed = False
    if repeats > MAX_REPEATS:
        return (
            f"a REGEX matcher's value may hold at most {MAX_REPEATS} quantifiers that repeat (*, +, {{m,n}})"
        )
    if choices * (groups[0][1] + 1) > MAX_CHOICES:
        return f"a REGEX matcher's value may choose among at most {MAX_CHOICES} ways in all"
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why a REGEX matcher's value is refused: too long, a shape a backtracking matcher could take very long
    on (an alert evaluation must not be stalled by one project's pattern), not a regular expression."""
    if len(pattern) > MAX_PATTERN:
        return f"a REGEX matcher's value is at most {MAX_PATTERN} characters"
    problem = _shape_problem(pattern)
    if problem is not None:
        return problem
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"a REGEX matcher's value is not a regular expression: {exc}"
    return None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """The pattern, compiled once; None (the matcher never holds) for one :func:`pattern_problem` refuses:
    a configuration stored before its REGEX was checked must neither stall nor fail an alert's transaction."""
    problem = pattern_problem(pattern)
    if problem is None:
        return re.compile(pattern)
    log.warning("a stored REGEX matcher never holds: %s", problem)
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
            pattern = _compiled(want)
            return pattern is not None and len(seen) <= MAX_SUBJECT and pattern.fullmatch(seen) is not None
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


def _enabled_rule(config: Mapping[str, Any]) -> Rule | None:
    """The rule of an enabled configuration; None when disabled, or malformed (a document edited by hand or
    left by an older version, logged): one document must not stop every project's evaluation."""
    if config.get("enabled") is not True:
        return None
    try:
        return rule_of(config)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("alert configuration %s is malformed and ignored: %r", config.get("_id"), exc)
        return None


def evaluated(own: Sequence[Mapping[str, Any]], global_: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """The rules a project evaluates: its own enabled configurations' (the defaults while it has none) and
    those of the enabled global configurations that apply to it."""
    mine = [_enabled_rule(c) for c in own] if own else list(DEFAULT_RULES)
    return [r for r in mine + [_enabled_rule(c) for c in global_] if r is not None]


def covers(config: Mapping[str, Any], alert: Mapping[str, Any]) -> bool:
    """Whether the configuration's notifications are for this alert."""
    rule = _enabled_rule(config)
    if rule is None or rule.event_type != alert.get("eventTypeName"):
        return False
    if rule.metric is not None and rule.metric != alert.get("metricName"):
        return False
    return all_hold(rule.matchers, subject_of(alert))


Webhook = tuple[str, str | None]  # (url, the secret that signs the body, as stored)


def webhooks(configs: Iterable[Mapping[str, Any]], alert: Mapping[str, Any]) -> list[Webhook]:
    """The WEBHOOK notifications of the configurations that cover the alert, each URL once."""
    found: dict[str, str | None] = {}
    for config in configs:
        if not covers(config, alert):
            continue
        for note in config.get("notifications") or []:
            url = note.get("webhookUrl") if note.get("typeName") == "WEBHOOK" else None
            if url and url not in found:
                found[str(url)] = note.get("webhookSecret")
    return list(found.items())

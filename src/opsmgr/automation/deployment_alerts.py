"""Deployment alerts decided from what the agents report and the rolling changes' records (pure): which
conditions hold now, each named by the key its alert is kept under, so the caller opens the
ones that hold and closes the others.

The inputs (:class:`Facts`) are plain: the project's hosts as ``GET /hosts`` shows them (``stale`` true once
their agent has not reported within 3 poll intervals, ``replicaStateName``, ``replicaSetName``,
``lagSeconds``), each process's last oplog window in hours, its agents (hostname, whether their last report
is fresh) and its rolling changes (replica set, state, reason). The conditions,
with Ops Manager's event types where it has them:

- ``HOST_DOWN``: a host is unreachable (its agent's report is stale), one per host;
- ``NO_PRIMARY``: a replica set has members that report but none of them is PRIMARY;
- ``TOO_FEW_HEALTHY_MEMBERS``: fewer than a majority of a replica set's members are healthy (PRIMARY,
  SECONDARY or ARBITER on a fresh report);
- ``OUTSIDE_METRIC_THRESHOLD``: ``OPLOG_SLAVE_LAG_MASTER_TIME``, a fresh member lags its primary beyond the
  threshold's seconds; ``OPLOG_MASTER_TIME``, the largest oplog window among a replica set's fresh members
  (what a member taken out for maintenance catches up from) is beyond the threshold's hours, by default
  below what the maintenance preflight needs (``Facts.oplog_needed_h``);
- ``AUTOMATION_AGENT_DOWN``: an agent has not reported within 3 poll intervals;
- ``ROLLING_CHANGE_BLOCKED`` / ``ROLLING_CHANGE_FAILED``: a replica set's rolling change is in that state.

Each rule (``store.alert_rules``) decides its event type with its threshold; a condition is kept only when
the rule's matchers hold for it; a key raised by several rules is one condition; and it is raised once it
has held at two evaluations in a row (:func:`confirmed`). May import
``opsmgr.store.alert_rules``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from opsmgr.store.alert_rules import LAG_METRIC, METRIC, OPLOG_METRIC, Rule, all_hold, subject_of

KEY_PREFIX = "deployment:"
HEALTHY = ("PRIMARY", "SECONDARY", "ARBITER")  # an arbiter votes: it counts toward the majority
DEFAULT_LAG_S = 60.0  # a lag rule without a threshold: Ops Manager's default configuration's


@dataclass(frozen=True)
class Condition:
    """One alert that should be open: its key, event type, alert type (``typeName``) and message."""

    key: str
    event_type: str
    type_name: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangeFact:
    rs_id: str
    state: str
    reason: str | None


@dataclass(frozen=True)
class Facts:
    """What a project's deployment alerts are decided from."""

    hosts: Sequence[Mapping[str, Any]] = ()
    agents: Mapping[str, bool] = field(default_factory=dict)  # hostname -> its last report is fresh
    oplog_hours: Mapping[str, float] = field(default_factory=dict)  # process name -> oplog window
    oplog_needed_h: float = 0.0
    changes: Sequence[ChangeFact] = ()


def _label(host: Mapping[str, Any]) -> str:
    return f"{host.get('hostname')}:{host.get('port')}"


def _host_details(host: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "hostId": host["id"],
        "hostnameAndPort": _label(host),
        "replicaSetName": host.get("replicaSetName"),
        "replicaStateName": (host.get("lastReportedState") or host).get("replicaStateName"),
    }


def hosts_down(hosts: Sequence[Mapping[str, Any]]) -> list[Condition]:
    return [
        Condition(
            f"{KEY_PREFIX}HOST_DOWN:{h['id']}",
            "HOST_DOWN",
            "HOST",
            f"Host {_label(h)} is down: its agent has not reported recently",
            _host_details(h),
        )
        for h in hosts
        if h.get("stale")
    ]


def _sets(hosts: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    by_set: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for h in hosts:
        if h.get("replicaSetName"):
            by_set[str(h["replicaSetName"])].append(h)
    return dict(sorted(by_set.items()))


def no_primary(hosts: Sequence[Mapping[str, Any]]) -> list[Condition]:
    out = []
    for name, members in _sets(hosts).items():
        reporting = [m for m in members if not m.get("stale")]
        if reporting and not any(m.get("replicaStateName") == "PRIMARY" for m in reporting):
            out.append(
                Condition(
                    f"{KEY_PREFIX}NO_PRIMARY:{name}",
                    "NO_PRIMARY",
                    "REPLICA_SET",
                    f"Replica set {name} has no primary "
                    f"({len(reporting)} of {len(members)} members reporting)",
                    {"replicaSetName": name},
                )
            )
    return out


def too_few_healthy(hosts: Sequence[Mapping[str, Any]]) -> list[Condition]:
    out = []
    for name, members in _sets(hosts).items():
        healthy = sum(1 for m in members if not m.get("stale") and m.get("replicaStateName") in HEALTHY)
        majority = len(members) // 2 + 1
        if healthy < majority:
            out.append(
                Condition(
                    f"{KEY_PREFIX}TOO_FEW_HEALTHY_MEMBERS:{name}",
                    "TOO_FEW_HEALTHY_MEMBERS",
                    "REPLICA_SET",
                    f"Replica set {name} has {healthy} healthy members of {len(members)}: "
                    f"fewer than a majority ({majority})",
                    {"replicaSetName": name},
                )
            )
    return out


def lagging(hosts: Sequence[Mapping[str, Any]], rule: Rule) -> list[Condition]:
    out = []
    for h in hosts:
        lag = h.get("lagSeconds")
        if h.get("stale") or isinstance(lag, bool) or not isinstance(lag, int | float):
            continue
        if not rule.beyond(lag, DEFAULT_LAG_S):
            continue
        limit = DEFAULT_LAG_S if rule.threshold is None else rule.threshold
        out.append(
            Condition(
                f"{KEY_PREFIX}{LAG_METRIC}:{h['id']}",
                METRIC,
                "HOST_METRIC",
                f"Host {_label(h)} lags its primary by {lag:g} s (threshold {limit:g} s)",
                _host_details(h)
                | {"metricName": LAG_METRIC, "currentValue": {"number": float(lag), "units": "SECONDS"}},
            )
        )
    return out


def oplog_short(hosts: Sequence[Mapping[str, Any]], facts: Facts, rule: Rule) -> list[Condition]:
    """A replica set whose largest oplog window among its fresh members is beyond the threshold (below what
    the maintenance preflight needs, by default)."""
    out = []
    for name, members in _sets(hosts).items():
        windows = [
            (facts.oplog_hours[str(m.get("processName"))], m)
            for m in members
            if not m.get("stale") and str(m.get("processName")) in facts.oplog_hours
        ]
        if not windows:
            continue
        hours, best = max(windows, key=lambda w: w[0])
        if not rule.beyond(hours, facts.oplog_needed_h):
            continue
        limit = facts.oplog_needed_h if rule.threshold is None else rule.threshold
        out.append(
            Condition(
                f"{KEY_PREFIX}{OPLOG_METRIC}:{name}",
                METRIC,
                "HOST_METRIC",
                f"Replica set {name}'s oplog window is {hours:.2f} h (on {_label(best)}), beyond "
                f"{limit:.2f} h: a member out for maintenance could not catch up",
                {
                    "replicaSetName": name,
                    "hostnameAndPort": _label(best),
                    "metricName": OPLOG_METRIC,
                    "currentValue": {"number": round(hours, 4), "units": "HOURS"},
                },
            )
        )
    return out


def agents_down(agents: Mapping[str, bool]) -> list[Condition]:
    """``agents``: each agent's hostname -> whether its last report is fresh."""
    return [
        Condition(
            f"{KEY_PREFIX}AUTOMATION_AGENT_DOWN:{hostname}",
            "AUTOMATION_AGENT_DOWN",
            "AGENT",
            f"The automation agent on {hostname} has not reported recently",
            {"hostname": hostname, "hostnameAndPort": hostname},
        )
        for hostname, fresh in sorted(agents.items())
        if not fresh
    ]


def rolling(changes: Sequence[ChangeFact], state: str) -> list[Condition]:
    event = f"ROLLING_CHANGE_{state}"
    return [
        Condition(
            f"{KEY_PREFIX}{event}:{c.rs_id}",
            event,
            "REPLICA_SET",
            f"The rolling change of replica set {c.rs_id} is {state}: {c.reason or 'no reason given'}",
            {"replicaSetName": c.rs_id},
        )
        for c in changes
        if c.state == state
    ]


_DECIDERS: dict[str, Callable[[Facts, Rule], list[Condition]]] = {
    "HOST_DOWN": lambda f, r: hosts_down(f.hosts),
    "NO_PRIMARY": lambda f, r: no_primary(f.hosts),
    "TOO_FEW_HEALTHY_MEMBERS": lambda f, r: too_few_healthy(f.hosts),
    "AUTOMATION_AGENT_DOWN": lambda f, r: agents_down(f.agents),
    "ROLLING_CHANGE_BLOCKED": lambda f, r: rolling(f.changes, "BLOCKED"),
    "ROLLING_CHANGE_FAILED": lambda f, r: rolling(f.changes, "FAILED"),
}
_METRICS: dict[str, Callable[[Facts, Rule], list[Condition]]] = {
    LAG_METRIC: lambda f, r: lagging(f.hosts, r),
    OPLOG_METRIC: lambda f, r: oplog_short(f.hosts, f, r),
}


def conditions(facts: Facts, rules: Sequence[Rule]) -> list[Condition]:
    """Every condition that holds under one of ``rules`` whose matchers hold for it, each key once."""
    found: dict[str, Condition] = {}
    for rule in rules:
        decide = (
            _METRICS.get(rule.metric or "") if rule.event_type == METRIC else _DECIDERS.get(rule.event_type)
        )
        for condition in decide(facts, rule) if decide is not None else []:
            if condition.key not in found and all_hold(rule.matchers, subject_of(condition.details)):
                found[condition.key] = condition
    return list(found.values())


def confirmed(holding: Sequence[Condition], held_before: Set[str], opened: Sequence[str]) -> list[Condition]:
    """The conditions to raise: those already open, and those that held at the previous evaluation too. A
    condition seen once is not an alert yet: a replica set whose members are still starting (no primary
    for a second) or a fleet that restarts must not open and close a burst of alerts."""
    already = set(opened)
    return [c for c in holding if c.key in already or c.key in held_before]


def to_close(open_keys: Sequence[str], holding: Sequence[Condition]) -> list[str]:
    """The open deployment alerts' keys whose condition no longer holds (other raisers' keys left alone)."""
    held = {c.key for c in holding}
    return sorted(k for k in open_keys if k.startswith(KEY_PREFIX) and k not in held)

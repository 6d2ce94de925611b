"""Deployment alerts decided from what the agents report (pure): which conditions hold now, each named by
the key its alert is kept under, so the caller opens the ones that hold and closes the others.

The inputs are plain: the project's hosts as ``GET /hosts`` shows them (``stale`` true once their agent has
not reported within 3 poll intervals, ``replicaStateName``, ``replicaSetName``, ``lagSeconds``) and its
agents (hostname, whether their last report is fresh). The conditions, with Ops Manager's event types:

- ``HOST_DOWN``: a host is unreachable (its agent's report is stale), one per host;
- ``NO_PRIMARY``: a replica set has members that report but none of them is PRIMARY;
- ``TOO_FEW_HEALTHY_MEMBERS``: fewer than a majority of a replica set's members are healthy (PRIMARY,
  SECONDARY or ARBITER on a fresh report);
- ``OUTSIDE_METRIC_THRESHOLD`` (``OPLOG_SLAVE_LAG_MASTER_TIME``): a fresh member lags its primary by more
  than the threshold's seconds;
- ``AUTOMATION_AGENT_DOWN``: an agent has not reported within 3 poll intervals.

Only the event types in ``thresholds`` (``store.alert_configs``: what the project's enabled
configurations ask for) are decided. May import the standard library only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LAG_METRIC = "OPLOG_SLAVE_LAG_MASTER_TIME"
KEY_PREFIX = "deployment:"
HEALTHY = ("PRIMARY", "SECONDARY", "ARBITER")  # an arbiter votes: it counts toward the majority


@dataclass(frozen=True)
class Condition:
    """One alert that should be open: its key, event type, alert type (``typeName``) and message."""

    key: str
    event_type: str
    type_name: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


def _label(host: Mapping[str, Any]) -> str:
    return f"{host.get('hostname')}:{host.get('port')}"


def hosts_down(hosts: Sequence[Mapping[str, Any]]) -> list[Condition]:
    return [
        Condition(
            f"{KEY_PREFIX}HOST_DOWN:{h['id']}",
            "HOST_DOWN",
            "HOST",
            f"Host {_label(h)} is down: its agent has not reported recently",
            {"hostId": h["id"], "hostnameAndPort": _label(h), "replicaSetName": h.get("replicaSetName")},
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


def lagging(hosts: Sequence[Mapping[str, Any]], threshold_s: float) -> list[Condition]:
    out = []
    for h in hosts:
        lag = h.get("lagSeconds")
        if h.get("stale") or isinstance(lag, bool) or not isinstance(lag, int | float) or lag <= threshold_s:
            continue
        out.append(
            Condition(
                f"{KEY_PREFIX}{LAG_METRIC}:{h['id']}",
                "OUTSIDE_METRIC_THRESHOLD",
                "HOST",
                f"Host {_label(h)} lags its primary by {lag:g} s (over {threshold_s:g} s)",
                {
                    "hostId": h["id"],
                    "hostnameAndPort": _label(h),
                    "replicaSetName": h.get("replicaSetName"),
                    "metricName": LAG_METRIC,
                    "currentValue": {"number": float(lag), "units": "SECONDS"},
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
            {"hostname": hostname},
        )
        for hostname, fresh in sorted(agents.items())
        if not fresh
    ]


def conditions(
    hosts: Sequence[Mapping[str, Any]], agents: Mapping[str, bool], thresholds: Mapping[str, float | None]
) -> list[Condition]:
    """Every condition that holds, of the event types (or metric names) ``thresholds`` names."""
    out: list[Condition] = []
    if "HOST_DOWN" in thresholds:
        out += hosts_down(hosts)
    if "NO_PRIMARY" in thresholds:
        out += no_primary(hosts)
    if "TOO_FEW_HEALTHY_MEMBERS" in thresholds:
        out += too_few_healthy(hosts)
    lag = thresholds.get(LAG_METRIC)
    if lag is not None:
        out += lagging(hosts, lag)
    if "AUTOMATION_AGENT_DOWN" in thresholds:
        out += agents_down(agents)
    return out


def to_close(open_keys: Sequence[str], holding: Sequence[Condition]) -> list[str]:
    """The open deployment alerts' keys whose condition no longer holds (other raisers' keys left alone)."""
    held = {c.key for c in holding}
    return sorted(k for k in open_keys if k.startswith(KEY_PREFIX) and k not in held)

"""What the deployment page shows of one project: its replica sets (a sharded cluster's config server set
and shards named as such, and its routers in a group of their own) and standalone processes, each process
with its state, version, lag, last ping and goal state, and its agent's current plan step and status
sentence.

Built from exactly what the public API serves (``automationStatus`` and ``hosts`` of the automation
service, and the goal config), joined by process name. Pure over those three documents and the instant the
page is made (a host whose agent went silent shows "unreachable (last heard N s ago)").
May import ``opsmgr.jsontypes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from opsmgr.jsontypes import JsonObject

NO_REPORT = "no report yet"
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class ProcessRow:
    """One process as its row shows it."""

    name: str
    hostname: str
    port: str
    state: str  # PRIMARY, SECONDARY, STANDALONE, DOWN, ..., NO_REPORT or UNREACHABLE
    heard: str  # when an unreachable host's agent last reported ("last heard 12 s ago"), else ""
    version: str  # as observed ("" before a report)
    goal_version: str  # as the config asks
    lag: str
    last_ping: str
    goal_reached: bool
    goal_text: str
    step: str
    status: str
    blocked: str
    error: str
    simulated: bool
    disabled: bool
    role: str  # the member's settings in its set (priority, votes, hidden)


@dataclass(frozen=True)
class Group:
    """A replica set (or the project's processes outside any set) and its rows."""

    title: str
    rs_id: str
    rows: list[ProcessRow] = field(default_factory=list)


@dataclass(frozen=True)
class DeploymentView:
    goal_version: int
    groups: list[Group]
    reported: int  # processes with a fresh report
    at_goal: int  # processes at the goal version
    total: int


def _clock(ms: object) -> str:
    if not isinstance(ms, int | float):
        return ""
    return time.strftime("%H:%M:%S UTC", time.gmtime(ms / 1000))


def _lag(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return ""
    return f"{seconds:.0f} s" if seconds >= 1 else "< 1 s"


def _state(host: JsonObject | None) -> str:
    if host is None:
        return NO_REPORT
    if host.get("stale"):
        return UNREACHABLE
    if not host.get("running"):
        return "DOWN"
    named = host.get("replicaStateName")
    if named:
        return str(named)
    return {"STANDALONE": "STANDALONE", "SHARD_MONGOS": "MONGOS"}.get(str(host.get("typeName")), "UNKNOWN")


def _set_titles(config: JsonObject) -> dict[str, str]:
    """The title of each replica set that is part of a sharded cluster."""
    titles: dict[str, str] = {}
    for cluster in _objects(config.get("sharding")):
        name = cluster.get("name")
        titles[str(cluster.get("configServerReplica"))] = f"Config servers of {name} (replica set "
        for shard in _objects(cluster.get("shards")):
            titles[str(shard.get("rs"))] = f"Shard {shard.get('_id')} of {name} (replica set "
    return titles


def _heard(host: JsonObject | None, now_ms: int) -> str:
    ping = (host or {}).get("lastPing")
    if not (host or {}).get("stale") or not isinstance(ping, int | float):
        return ""
    return f"last heard {max(0, now_ms - ping) / 1000:.0f} s ago"


def _role(member: JsonObject | None) -> str:
    if member is None:
        return ""
    parts = [f"priority {member.get('priority', 1)}", f"votes {member.get('votes', 1)}"]
    if member.get("hidden"):
        parts.append("hidden")
    if member.get("arbiterOnly"):
        parts.append("arbiter")
    return ", ".join(parts)


def _row(
    process: JsonObject,
    goal_version: int,
    status: JsonObject | None,
    host: JsonObject | None,
    member: JsonObject | None,
    now_ms: int,
) -> ProcessRow:
    achieved = status.get("lastGoalVersionAchieved", -1) if status else -1
    reached = achieved == goal_version
    if status is None or status.get("lastReport") is None:
        goal_text = NO_REPORT
    elif reached:
        goal_text = f"goal reached (v{goal_version})"
    else:
        at = f"at v{achieved}" if isinstance(achieved, int) and achieved >= 0 else "never reached"
        goal_text = f"working toward v{goal_version} ({at})"
    step = ""
    if status and status.get("currentStep"):
        plan = status.get("plan") or []
        step = str(status["currentStep"])
        if isinstance(plan, list) and len(plan) > 1:
            step += f" (plan: {' → '.join(str(s) for s in plan)})"
    args = process.get("args2_6") or {}
    net = args.get("net") if isinstance(args, dict) else None
    port = (host or {}).get("port") or (net.get("port") if isinstance(net, dict) else None) or 27017
    return ProcessRow(
        name=str(process.get("name", "")),
        hostname=str(process.get("hostname", "")),
        port=str(port),
        state=_state(host),
        heard=_heard(host, now_ms),
        version=str((host or {}).get("version") or ""),
        goal_version=str(process.get("version", "")),
        lag=_lag((host or {}).get("lagSeconds")),
        last_ping=_clock((host or {}).get("lastPing")),
        goal_reached=reached,
        goal_text=goal_text,
        step=step,
        status=str((status or {}).get("agentStatus") or ""),
        blocked=str((status or {}).get("blockedReason") or ""),
        error=str((status or {}).get("errorText") or ""),
        simulated=bool((host or {}).get("simulated")),
        disabled=bool(process.get("disabled")),
        role=_role(member),
    )


def deployment_view(
    config: JsonObject, status: JsonObject, hosts: list[JsonObject], now_ms: int
) -> DeploymentView:
    """The page's rows: ``config`` (GET automationConfig), ``status`` (GET automationStatus) and ``hosts``
    (GET hosts, every page) of one project, at ``now_ms``."""
    goal_version = int(str(status.get("goalVersion", config.get("version", 0))))
    by_status = {str(p["name"]): p for p in _objects(status.get("processes"))}
    by_host = {str(h.get("processName")): h for h in hosts}
    processes = {str(p.get("name")): p for p in _objects(config.get("processes"))}
    groups: list[Group] = []
    placed: set[str] = set()
    titles = _set_titles(config)
    for rs in _objects(config.get("replicaSets")):
        rs_id = str(rs.get("_id"))
        title = f"{titles[rs_id]}{rs_id})" if rs_id in titles else f"Replica set {rs_id}"
        group = Group(title=title, rs_id=rs_id)
        for member in _objects(rs.get("members")):
            name = str(member.get("host"))
            if name in processes:
                placed.add(name)
                group.rows.append(
                    _row(
                        processes[name], goal_version, by_status.get(name), by_host.get(name), member, now_ms
                    )
                )
        groups.append(group)
    routers: dict[str, Group] = {}
    loose = Group(title="Processes outside any replica set", rs_id="")
    for name, process in processes.items():
        if name in placed:
            continue
        row = _row(process, goal_version, by_status.get(name), by_host.get(name), None, now_ms)
        if process.get("processType") == "mongos":
            cluster = str(process.get("cluster"))
            routers.setdefault(cluster, Group(title=f"Routers (mongos) of {cluster}", rs_id="")).rows.append(
                row
            )
        else:
            loose.rows.append(row)
    groups += routers.values()
    if loose.rows:
        groups.append(loose)
    rows = [r for g in groups for r in g.rows]
    return DeploymentView(
        goal_version=goal_version,
        groups=groups,
        reported=sum(1 for r in rows if r.state not in (NO_REPORT, UNREACHABLE)),
        at_goal=sum(1 for r in rows if r.goal_reached),
        total=len(rows),
    )


def _objects(value: object) -> list[JsonObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

"""Ops Manager's host documents (``GET /groups/{id}/hosts``): each process of a project as monitoring sees it,
built from the goal config and what the project's agents last reported.

A host's ``id`` is 32 hex digits, the shape of Ops Manager's host ids, derived from the project and the
process name, so it stays the same for as long as the process keeps its name and needs no record. What no
report carries comes from the goal config (``hidden``, ``slaveDelaySec``, ``sslEnabled``, journaling, the
authentication mechanism, the part a process plays in a sharded cluster: ``opsmgr.automation.clusters``) or is
Ops Manager's default for a monitored host (alerts on, logs and profiler off). Instants are epoch milliseconds
here (``lastPing``, ``created``): the API writes them as ISO strings at its edge, the UI as clock times.
Nothing reports a process's uptime, so ``uptimeMsec`` and ``lastRestart`` are left out, as Ops Manager leaves
out what monitoring has not seen.

Owns freshness (:func:`freshness`): a host whose agent has not reported within :data:`STALE_POLLS` of the
server's poll intervals, or not since this server started (an application database restored from a backup
brings reports that say nothing of now), is unreachable: ``replicaStateName`` ``DOWN`` (MongoDB's word for a
member that cannot be reached), not ``running``, ``stale`` true, and what its agent last said kept apart in
``lastReportedState``; ``lastPing`` stays the instant of that last report.

Owns the collection ``host_first_seen``: when each host was first listed (its ``created``), one document per
project and host id, written on first sight. May import ``opsmgr.automation.clusters``,
``opsmgr.automation.records``, ``opsmgr.automation.rules`` and ``opsmgr.store``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opsmgr.automation.clusters import Layout, Part, sharded_cluster_id
from opsmgr.automation.records import Member, Process, processes, replica_sets
from opsmgr.automation.rules import get
from opsmgr.store.engine import Store

FIRST_SEEN = "host_first_seen"
_DELAYS = ("secondaryDelaySecs", "slaveDelay")  # the member's delay, by its name since MongoDB 5.0 first
# Ops Manager's names of the mechanisms its monitoring authenticates with.
_MECHANISM_NAMES = {"MONGODB-CR": "MONGODB_CR", "MONGODB-X509": "MONGODB_X509"}
_STATE_TYPES = {
    "PRIMARY": "REPLICA_PRIMARY",
    "SECONDARY": "REPLICA_SECONDARY",
    "ARBITER": "REPLICA_ARBITER",
    "RECOVERING": "RECOVERING",
}
# Fields kept when None: readers index them (where the process is, its state, version and last report).
_ALWAYS = frozenset({"hostname", "port", "replicaSetName", "replicaStateName", "version", "lastPing"})
# A mongos has no replica set and no member state: left out, as Ops Manager leaves them out.
_ROUTER_ALWAYS = _ALWAYS - {"replicaSetName", "replicaStateName"}
# A host is unreachable once this many poll intervals pass without a report: one late report (a slow cycle,
# a retried request) is not an outage, three in a row are.
STALE_POLLS = 3
# What an unreachable host's agent last said, kept under ``lastReportedState``.
_LAST_SAID = ("replicaStateName", "running", "typeName")


class Freshness(StrEnum):
    FRESH = "fresh"
    STALE = "stale"


def freshness(
    received_at_ms: int | None, now_ms: int, poll_interval_s: float, since_ms: int = 0
) -> Freshness:
    """Whether a report received at ``received_at_ms`` still tells the state of its processes at ``now_ms``:
    it came within :data:`STALE_POLLS` poll intervals and not before ``since_ms`` (this server's start)."""
    if received_at_ms is None or received_at_ms < since_ms:
        return Freshness.STALE
    if now_ms - received_at_ms > STALE_POLLS * poll_interval_s * 1000:
        return Freshness.STALE
    return Freshness.FRESH


@dataclass(frozen=True)
class Hearing:
    """When a listing is made (``now_ms``), how often agents are told to poll, and since when reports count
    (``since_ms``: the server's start)."""

    now_ms: int
    poll_interval_s: float
    since_ms: int = 0

    def of(self, received_at_ms: object) -> Freshness:
        at = int(received_at_ms) if isinstance(received_at_ms, int | float) else None
        return freshness(at, self.now_ms, self.poll_interval_s, self.since_ms)


def host_id(group_id: str, process_name: str) -> str:
    """The host id of a process: stable, 32 hex digits, never the same for two processes."""
    return hashlib.md5(f"{group_id}:{process_name}".encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class _Goal:
    """What the goal config says of each process, read once per listing."""

    processes: dict[str, Process]
    members: dict[str, tuple[str, Member]]  # process name -> (replica set id, member)
    layout: Layout  # the sharded clusters: each replica set's part, each mongos's cluster
    auth_mechanism: str

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> _Goal:
        members = {m.host: (rs.id, m) for rs in replica_sets(config) for m in rs.members}
        procs = {p.name: p for p in processes(config)}
        return cls(procs, members, Layout.of(config), _auth_mechanism(config))


def _auth_mechanism(config: Mapping[str, Any]) -> str:
    auth = config.get("auth") or {}
    if auth.get("disabled", True):
        return "NONE"
    # As the validator reads it: the list first, the derived single mechanism only without one.
    listed = auth.get("autoAuthMechanisms") or [auth.get("autoAuthMechanism") or "SCRAM-SHA-1"]
    mechanism = listed[0]
    return _MECHANISM_NAMES.get(str(mechanism), str(mechanism))


def host_views(
    group_id: str,
    config: Mapping[str, Any],
    statuses: list[dict[str, Any]],
    *,
    created: Mapping[str, int],
    cluster_ids: Mapping[str, str],
    heard: Hearing,
) -> list[dict[str, Any]]:
    """The project's hosts, sorted by hostname and port as Ops Manager sorts them. ``created``: when each
    host id was first seen (:func:`first_seen`); ``cluster_ids``: each replica set's cluster id; ``heard``:
    which reports are fresh (the others' hosts are unreachable)."""
    goal = _Goal.of(config)
    hosts = []
    for status in statuses:
        stale = heard.of(status.get("receivedAt")) is Freshness.STALE
        for entry in status.get("processes", []):
            host = _host(group_id, goal, status, entry, cluster_ids)
            if stale:
                host = _unreachable(host)
            host["created"] = created.get(host["id"], host["lastPing"])
            kept = _ROUTER_ALWAYS if host["typeName"] == "SHARD_MONGOS" else _ALWAYS
            hosts.append({k: v for k, v in host.items() if v is not None or k in kept})
    return sorted(hosts, key=lambda h: (h["hostname"] or "", h["port"] or 0))


def _host(
    group_id: str,
    goal: _Goal,
    status: Mapping[str, Any],
    entry: Mapping[str, Any],
    cluster_ids: Mapping[str, str],
) -> dict[str, Any]:
    observed = entry.get("observed") or {}
    name = str(entry["name"])
    proc = goal.processes.get(name)
    rs_id, member = goal.members.get(name, (None, None))
    rs_name = observed.get("replicaSetName") or rs_id
    state = observed.get("replicaStateName") or ("DOWN" if not observed.get("running") else None)
    hostname = observed.get("hostname") or (proc.hostname if proc else None) or status["hostname"]
    hidden = bool(member and member.hidden)
    part = goal.layout.part(rs_name)
    router_of = goal.layout.mongos.get(name)
    return {
        "id": host_id(group_id, name),
        "groupId": group_id,
        "hostname": hostname,
        "port": observed.get("port") or (proc.port if proc else None),
        "typeName": _type_name(observed, proc, part),
        "clusterId": (
            sharded_cluster_id(group_id, router_of) if router_of else cluster_ids.get(rs_name or "")
        ),
        "replicaSetName": rs_name,
        "replicaStateName": state,
        "shardName": part.shard,
        "version": observed.get("version"),
        "ipAddress": _ip_address(hostname),
        "lastPing": status.get("receivedAt"),
        "hostEnabled": True,
        "alertsEnabled": True,
        "logsEnabled": False,
        "profilerEnabled": False,
        "deactivated": False,
        "lowUlimit": False,
        "hasStartupWarnings": False,
        "journalingEnabled": _journaling(proc),
        "hidden": hidden,
        "hiddenSecondary": hidden and state == "SECONDARY",
        "slaveDelaySec": _delay(member),
        "sslEnabled": bool(proc and tls_on(proc.args2_6)),
        "authMechanismName": goal.auth_mechanism,
        "processName": name,
        "running": bool(observed.get("running")),
        "optimeTs": observed.get("optimeTs"),
        "lagSeconds": observed.get("lagSeconds"),
        "connections": observed.get("connections"),
        "simulated": status.get("driver") == "sim",
        "stale": False,
    }


def _unreachable(host: dict[str, Any]) -> dict[str, Any]:
    # Monitoring does not know the process runs: its agent is silent. What it last said stays, apart.
    return host | {
        "replicaStateName": "DOWN",
        "running": False,
        "hiddenSecondary": False,
        "stale": True,
        "lastReportedState": {k: host[k] for k in _LAST_SAID},
    }


def _type_name(observed: Mapping[str, Any], proc: Process | None, part: Part) -> str:
    """Ops Manager's host type: a mongos's, else by the member's state and the part its replica set plays
    (a config server's ``SHARD_CONFIG_*``, a shard's ``SHARD_*``)."""
    if (proc is not None and proc.process_type == "mongos") or observed.get("mode") == "mongos":
        return "SHARD_MONGOS"
    state = observed.get("replicaStateName")
    if state in _STATE_TYPES:
        found = _STATE_TYPES[str(state)]
        if found in ("REPLICA_PRIMARY", "REPLICA_SECONDARY") and part.cluster is not None:
            return found.replace("REPLICA_", "SHARD_CONFIG_" if part.config_server else "SHARD_")
        return found
    if observed.get("mode") == "standalone":
        return "SHARD_STANDALONE" if part.shard is not None else "STANDALONE"
    return "NO_DATA"


def _ip_address(hostname: str | None) -> str | None:
    # A host named by its address has it; resolving a name here would put DNS on every listing.
    try:
        return str(ipaddress.ip_address(hostname or ""))
    except ValueError:
        return None


def _journaling(proc: Process | None) -> bool:
    if proc is None or proc.process_type != "mongod":
        return False
    return get(proc.args2_6, "storage.journal.enabled") is not False


def _delay(member: Member | None) -> int:
    rest = member.rest if member else {}
    delay = next((rest[k] for k in _DELAYS if isinstance(rest.get(k), int | float)), 0)
    return int(delay)


def tls_on(args: Mapping[str, Any]) -> bool:
    """Whether a process's ``args2_6`` turn TLS on (``net.tls``, or ``net.ssl`` before 4.2, not disabled)."""
    net = args.get("net")
    tls = net.get("tls") or net.get("ssl") if isinstance(net, Mapping) else None
    return isinstance(tls, Mapping) and tls.get("mode") not in (None, "disabled")


def reported_at(statuses: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """When the report of each process the agents report was received (epoch milliseconds)."""
    return {str(p["name"]): int(s.get("receivedAt") or 0) for s in statuses for p in s.get("processes", [])}


def first_seen(store: Store, group_id: str, reported: Mapping[str, int]) -> dict[str, int]:
    """When each host of the processes ``reported`` (name -> when its report came) was first seen, by host
    id: those never seen before are recorded now, as seen when their report came (one transaction, only
    when there are any)."""
    prefix = f"{group_id}:"
    known = {d["hostId"]: int(d["created"]) for d in store.find_prefix(FIRST_SEEN, prefix, groupId=group_id)}
    new = {hid: at for name, at in reported.items() if (hid := host_id(group_id, name)) not in known}
    if new:
        with store.tx() as t:
            for hid, at in sorted(new.items()):
                # Another request may have recorded it meanwhile: its instant stands.
                doc = t.get(FIRST_SEEN, prefix + hid) or t.put(
                    FIRST_SEEN, {"_id": prefix + hid, "groupId": group_id, "hostId": hid, "created": at}
                )
                known[hid] = int(doc["created"])
    return known

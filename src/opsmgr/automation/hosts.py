"""Ops Manager's host documents (``GET /groups/{id}/hosts``): each process of a project as monitoring sees it,
built from the goal config's processes and what the project's agents last reported.

May import ``opsmgr.automation.records``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opsmgr.automation.records import Process


def host_views(
    group_id: str, goal: Iterable[Process], statuses: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    by_name = {p.name: p for p in goal}
    hosts = []
    for status in statuses:
        for entry in status.get("processes", []):
            observed = entry.get("observed") or {}
            proc = by_name.get(entry["name"])
            port = observed.get("port") or (proc.port if proc else None)
            hostname = observed.get("hostname") or (proc.hostname if proc else None) or status["hostname"]
            hosts.append(
                {
                    "id": f"{group_id}-{entry['name']}",
                    "groupId": group_id,
                    "hostname": hostname,
                    "port": port,
                    "typeName": _type_name(observed),
                    "replicaSetName": observed.get("replicaSetName"),
                    "replicaStateName": observed.get("replicaStateName")
                    or ("DOWN" if not observed.get("running") else None),
                    "version": observed.get("version"),
                    "processName": entry["name"],
                    "running": bool(observed.get("running")),
                    "optimeTs": observed.get("optimeTs"),
                    "lagSeconds": observed.get("lagSeconds"),
                    "connections": observed.get("connections"),
                    "lastPing": status.get("receivedAt"),
                    "simulated": status.get("driver") == "sim",
                }
            )
    return sorted(hosts, key=lambda h: (h["hostname"] or "", h["port"] or 0))


def _type_name(observed: dict[str, Any]) -> str:
    state = observed.get("replicaStateName")
    if state == "PRIMARY":
        return "REPLICA_PRIMARY"
    if state == "SECONDARY":
        return "REPLICA_SECONDARY"
    if state == "ARBITER":
        return "REPLICA_ARBITER"
    if observed.get("mode") == "standalone":
        return "STANDALONE"
    return "NO_DATA"

"""How the agent sees a replica set under a rolling change: the procedure's
:class:`~opsmgr.maintenance.snapshot.RsSnapshot` of the set, read from a local member's ``replSetGetStatus``
(the primary's first) or, when no local member is in the set, from what the server relays of the other
agents' reports (the set's view), and what the local members measure (oplog window, client connections).
Pure functions over the agent's snapshot and the view; :mod:`opsmgr.agent.maintenance` acts on them.
May import ``opsmgr.drivers.base``, ``opsmgr.maintenance`` and ``opsmgr.agent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsmgr.agent.plan import LocalProcess, Snapshot
from opsmgr.drivers.base import MemberState, RunMode
from opsmgr.maintenance.rolling import RollingChange
from opsmgr.maintenance.snapshot import (
    MemberView,
    ObservedExtras,
    RsSnapshot,
    effective_window_s,
    snapshot_from_status,
)


def measure(local: list[str], snap: Snapshot) -> dict[str, dict[str, Any]]:
    """Oplog window and client connections of the local members in their set, from the snapshot."""
    out: dict[str, dict[str, Any]] = {}
    for name in local:
        lp = snap.processes.get(name)
        if lp is None or not lp.observation.running or lp.observation.mode is not RunMode.REPLSET:
            continue
        entry: dict[str, Any] = {"connections": lp.connections}
        if lp.oplog_window is not None:
            seconds = effective_window_s(lp.oplog_window)
            entry["oplogWindowSecs"] = seconds if seconds != float("inf") else None
        out[name] = entry
    return out


def set_snapshot(
    rs_id: str,
    now: float,
    view: Mapping[str, Any],
    snap: Snapshot,
    local: list[str],
    change: RollingChange,
    measured: Mapping[str, Mapping[str, Any]],
) -> tuple[RsSnapshot, bool]:
    """The set as a local member in it sees it (True), else as the server relays the agents' reports
    (False)."""
    members = view.get("members", [])
    windows = {m["name"]: m["oplogWindowSecs"] for m in members if m.get("oplogWindowSecs") is not None}
    connections = {m["name"]: m["connections"] for m in members if m.get("connections") is not None}
    for name, entry in measured.items():
        if entry.get("oplogWindowSecs") is not None:
            windows[name] = entry["oplogWindowSecs"]
        if entry.get("connections") is not None:
            connections[name] = entry["connections"]
    extras = ObservedExtras(windows, connections)
    sets = {rs_id, change.old_rs_id}
    seen: list[tuple[bool, str, LocalProcess]] = []
    for name in local:
        lp = snap.processes.get(name)
        if lp is None or lp.rs_status is None or lp.rs_config is None or lp.rs_status.set_name not in sets:
            continue
        if lp.rs_status.my_state is MemberState.REMOVED:
            continue
        seen.append((lp.rs_status.my_state is not MemberState.PRIMARY, name, lp))
    if seen:
        _, _, lp = min(seen, key=lambda s: (s[0], s[1]))
        assert lp.rs_status is not None and lp.rs_config is not None
        names = view.get("names", {})
        return snapshot_from_status(rs_id, now, lp.rs_status, lp.rs_config, names, extras), True
    return _relayed(rs_id, now, members, extras), False


def _relayed(rs_id: str, now: float, members: list[dict[str, Any]], extras: ObservedExtras) -> RsSnapshot:
    """The set from the members the server relays (the other agents' reports)."""
    views = []
    for m in members:
        state = MemberState(m["state"]) if m.get("state") in MemberState.__members__.values() else None
        views.append(
            MemberView(
                name=m["name"],
                state=state or MemberState.UNKNOWN,
                health=bool(m.get("health")),
                votes=int(m.get("votes", 1)),
                priority=float(m.get("priority", 1)),
                arbiter=bool(m.get("arbiterOnly")),
                hidden=bool(m.get("hidden")),
                optime=int(m.get("optimeTs") or 0),
                oplog_window_s=extras.oplog_window_s.get(m["name"]),
                connections=extras.connections.get(m["name"]),
            )
        )
    return RsSnapshot(rs_id, now, tuple(views))

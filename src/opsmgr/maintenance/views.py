"""What is shown of a project's rolling changes: to its agents, and to operators through the public API.

:meth:`MaintenanceViews.agent_view` is what an agent of a replica set needs on each cycle (the change, the
progress, the lease, the knobs of :class:`~opsmgr.maintenance.snapshot.Policy` the server sets for every agent
of the set, and what the other agents report of their members); :meth:`~MaintenanceViews.status_views` are
the ``maintenance`` entries of ``automationStatus``; :meth:`~MaintenanceViews.changes` the history of
``GET /groups/{id}/maintenance`` (in :func:`in_listing_order`); :meth:`~MaintenanceViews.active_hosts` the
hosts whose agents take part in a change (the work list names them); :meth:`~MaintenanceViews.arbiter_hosts`
the temporary arbiters as ``GET /hosts`` lists them. May import ``opsmgr.errors``, ``opsmgr.store``,
``opsmgr.timestamps`` and ``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsmgr.maintenance import changes
from opsmgr.maintenance.changes import HISTORY, active, history, lease_state, replica_set
from opsmgr.maintenance.leases import LEASES, lease_view
from opsmgr.maintenance.members import SetsPart
from opsmgr.maintenance.moves import Progress
from opsmgr.maintenance.report import ChangeState, ChangeStatus, Event, change_view, queued_view, status_view
from opsmgr.maintenance.rolling import MaintenanceOptions, RollingChange, maintenance_options
from opsmgr.maintenance.watch import arbiter_host, arbiter_present
from opsmgr.maintenance.wire import options_to_json, policy_to_json
from opsmgr.timestamps import epoch_ms


class MaintenanceViews(SetsPart):
    """Read-only views of the change documents of a project's replica sets."""

    def active_doc(self, group_id: str, rs_id: str) -> dict[str, Any] | None:
        doc = self.store.get(LEASES, changes.doc_id(group_id, rs_id))
        return doc if doc is not None and active(doc) else None

    def agent_view(self, group_id: str, rs_id: str) -> dict[str, Any]:
        """What an agent of ``rs_id`` needs on each cycle; ``active`` False when no change is under way."""
        doc = self.store.get(LEASES, changes.doc_id(group_id, rs_id))
        if doc is None or not active(doc):
            return {"replicaSet": rs_id, "active": False, "state": changes.state(doc)}
        goal = self.members.goal(group_id)
        rs = replica_set(goal, rs_id)
        options = maintenance_options(rs) if rs is not None else MaintenanceOptions()
        now = self.clock()
        return {
            "replicaSet": rs_id,
            "active": True,
            "changeId": doc["changeId"],
            "goalVersion": doc.get("goalVersion"),
            "owner": changes.owner(doc),
            "change": doc["change"],
            "progress": doc["progress"],
            "status": doc.get("status"),
            "lease": {**lease_view(lease_state(doc), now), "raw": doc.get("lease")},
            "options": options_to_json(options),
            "policy": policy_to_json(self.policy),
            "names": self.members.names(goal, doc),
            "members": self.members.members(group_id, goal, doc),
            "now": now,
        }

    def status_views(self, group_id: str) -> list[dict[str, Any]]:
        """The ``maintenance`` entries of ``automationStatus``: the latest change of each replica set."""
        now = self.clock()
        out = []
        for doc in sorted(self.store.find(LEASES, groupId=group_id), key=lambda d: d["rsId"]):
            if not doc.get("changeId"):
                continue
            view = status_view(
                RollingChange.from_json(doc["change"]),
                Progress.from_json(doc["progress"]),
                ChangeStatus.from_json(doc["rsId"], doc.get("status") or {}),
                lease=lease_view(lease_state(doc), now),
                events=[Event.from_json(e) for e in doc.get("events", [])],
            )
            out.append({"changeId": doc["changeId"], "goalVersion": doc.get("goalVersion"), **view})
        return out

    def changes(self, group_id: str) -> list[dict[str, Any]]:
        """``GET /groups/{id}/maintenance``: every rolling change, the ones under way first, newest first."""
        current = [d for d in self.store.find(LEASES, groupId=group_id) if d.get("changeId")]
        ids = {d["changeId"] for d in current}
        past = [d for d in self.store.find(HISTORY, groupId=group_id) if d["_id"] not in ids]
        views = [change_view(history(d)) for d in current] + [change_view(d) for d in past]
        views += [queued_view(d["rsId"], d["queued"], changes.purpose(d)) for d in current if d.get("queued")]
        return in_listing_order(views)

    def arbiter_hosts(self, group_id: str, cluster_ids: Mapping[str, str]) -> list[dict[str, Any]]:
        """The temporary arbiters of the project's rolling changes while they exist, as ``GET /hosts`` lists
        hosts (no agent reports them: they are in no automation config); ``cluster_ids``: each replica
        set's cluster id."""
        out = []
        goal: Mapping[str, Any] | None = None
        for doc in self.store.find(LEASES, groupId=group_id):
            progress = Progress.from_json(doc.get("progress") or {})
            if not active(doc) or not arbiter_present(progress):
                continue
            goal = goal if goal is not None else self.members.goal(group_id)
            rs = replica_set(goal, doc["rsId"])
            spec = maintenance_options(rs).temporary_arbiter if rs is not None else None
            if spec is None:
                continue
            host = arbiter_host(group_id, doc["rsId"], doc["changeId"], spec.hostname, spec.port, progress)
            out.append({**host, "clusterId": cluster_ids.get(doc["rsId"])})
        return out

    def active_sets(self, group_id: str) -> list[str]:
        return sorted(d["rsId"] for d in self.store.find(LEASES, groupId=group_id) if active(d))

    def active_hosts(self, group_id: str) -> dict[str, frozenset[str]]:
        """Per replica set under a rolling change, the hosts (lower-cased) whose agents take part: of its
        members in the goal config and in the config the change started from (members leaving), and of the
        temporary arbiter."""
        docs = [d for d in self.store.find(LEASES, groupId=group_id) if active(d)]
        if not docs:
            return {}
        goal = self.members.goal(group_id)
        return {
            d["rsId"]: frozenset(host.rsplit(":", 1)[0].lower() for host in self.members.names(goal, d))
            for d in docs
        }


def in_listing_order(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``GET /groups/{id}/maintenance``'s order: the changes under way first, newest first."""
    newest_first = sorted(views, key=lambda v: epoch_ms(v["created"] or "1970-01-01"), reverse=True)
    return sorted(newest_first, key=lambda v: v["state"] == ChangeState.DONE.value)

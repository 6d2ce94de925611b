"""The server's side of rolling maintenance: which rolling changes are under way, what agents need to carry
them out, and what operators see of them.

:class:`MaintenanceService` is the façade the server holds; each of its operations is one part's, and the
parts share the change documents of ``maintenance.changes`` (one per replica set in the application
database's ``maintenance_leases`` collection, with the lease and the shared progress; changes that ended are
copied to ``maintenance_changes`` for the history):

- ``registration.Registrar``: :meth:`register` runs inside the transaction of an automation config PUT (a hook
  of ``AutomationService.put_config``) and registers one rolling change per replica set that needs a roll,
  recomputing one under way from the config it started from;
- ``grants.LeaseDesk``: agents take the set's lease with :meth:`acquire` (health from the agents' reported
  status, through ``members.MemberReports``), :meth:`renew` and :meth:`release` it;
- ``recorder.Recorder``: agents report each move carried out with :meth:`record` (the server applies
  ``procedure.record`` itself, so agents never overwrite each other's progress) and their decisions with
  :meth:`report`, which keeps the status, the events and the ``MAINTENANCE_MEMBER_FAILED`` alert, and on Done
  produces the :class:`~opsmgr.maintenance.report.RollingReport`;
- ``index_steps.IndexSteps``: a supervised unique index build's member step is a one-member rolling change
  owned by the build, registered with the set's lease by :meth:`acquire_for`, one change per set at a time;
  a step that ends DONE is handed to the ``on_step_done`` listeners (the build records its outcome);
- ``views.MaintenanceViews``: :meth:`agent_view` for the agents, :meth:`status_views`, :meth:`changes` and
  :meth:`change` for operators, :meth:`arbiter_hosts` (the temporary arbiters, for ``GET /hosts``);
- ``watcher.MajorityWatch``: :meth:`watch_majority` (part of the periodic :meth:`settle_alerts`) keeps the
  spells a set under a change lost its majority and the ``MAINTENANCE_MAJORITY_LOST`` alert;
- ``clusters.ClusterDesk``: a sharded cluster's change over its sets' (``maintenance.sharded``), registered
  with them; the agents' routes name it ``cluster:<name>`` (:meth:`agent_view`, :meth:`record`), a set's view
  says whether it waits for its turn (and its lease is refused meanwhile), and :meth:`changes` lists it.

The knobs the agents follow (:class:`~opsmgr.maintenance.snapshot.Policy`) come from the server, so one
setting governs every agent of a set. May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.alerts``,
``opsmgr.timestamps`` and ``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opsmgr.alerts import AlertService
from opsmgr.errors import NotFound
from opsmgr.maintenance.clusters import ClusterDesk
from opsmgr.maintenance.grants import LeaseDesk
from opsmgr.maintenance.index_steps import IndexSteps
from opsmgr.maintenance.leases import Deny, Grant
from opsmgr.maintenance.members import MemberReports
from opsmgr.maintenance.recorder import Recorder
from opsmgr.maintenance.registration import Registrar
from opsmgr.maintenance.sharded import ShardedPolicy, layout_of_set
from opsmgr.maintenance.snapshot import Policy
from opsmgr.maintenance.views import MaintenanceViews, in_listing_order
from opsmgr.maintenance.watcher import MajorityWatch
from opsmgr.maintenance.wire import cluster_name
from opsmgr.store.engine import Store, Txn


class MaintenanceService:
    """Rolling changes of a project's replica sets, kept in the application database.

    ``goal`` returns a project's goal automation config (secrets in the clear), ``statuses`` the status
    documents its agents last reported; ``encrypt``/``decrypt`` protect the secrets of the config a change
    started from, as the automation config's own are; ``sharded``: how sharded clusters roll.
    """

    def __init__(
        self,
        store: Store,
        alerts: AlertService,
        *,
        goal: Callable[[str], dict[str, Any]],
        statuses: Callable[[str], list[dict[str, Any]]],
        encrypt: Callable[[str], str],
        decrypt: Callable[[str], str],
        policy: Policy = Policy(),
        sharded: ShardedPolicy = ShardedPolicy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.goal = goal
        members = MemberReports(goal=goal, statuses=statuses, clock=clock)
        registrar = Registrar(
            encrypt=encrypt, decrypt=decrypt, alert_window_s=policy.alert_window_s, clock=clock
        )
        desk = LeaseDesk(store, members, policy=policy, clock=clock)
        steps = IndexSteps(store, members, policy=policy, clock=clock)
        recorder = Recorder(store, alerts, members, steps, clock=clock)
        views = MaintenanceViews(store, members, policy=policy, clock=clock)
        watch = MajorityWatch(store, alerts, members, policy=policy, clock=clock)
        self.clusters = ClusterDesk(
            store, members, encrypt=encrypt, decrypt=decrypt, policy=sharded, clock=clock
        )
        self._registrar, self._desk, self._recorder, self._views = registrar, desk, recorder, views
        self.on_step_done = steps.listeners
        # the lease
        self.renew = desk.renew
        self.release = desk.release
        self.state_of_lease = desk.state_of_lease
        # unique index builds' member steps
        self.acquire_for = steps.acquire_for
        self.withdraw = steps.withdraw
        # what agents decide
        self.report = recorder.report
        self._settle, self.watch_majority = recorder.settle_alerts, watch.tick
        # views
        self.active_doc = views.active_doc
        self.status_views = views.status_views
        self.active_sets = views.active_sets
        self.arbiter_hosts = views.arbiter_hosts

    def register(
        self, t: Txn, group_id: str, old: Mapping[str, Any], new: Mapping[str, Any], version: int
    ) -> list[str]:
        """The rolling changes of a config PUT (in its transaction ``t``): the replica sets', then the
        sharded clusters' over them; returns the sets and clusters registered or recomputed."""
        touched = self._registrar.register(t, group_id, old, new, version)
        return touched + self.clusters.register(t, group_id, old, new, version)

    def acquire(
        self,
        group_id: str,
        rs_id: str,
        member: str,
        *,
        change_id: str | None = None,
        move: Mapping[str, Any] | None = None,
        seq: int | None = None,
        refuse: str | None = None,
    ) -> Grant | Deny:
        """The set's lease (``grants.LeaseDesk.acquire``), refused while the set waits for its turn in its
        sharded cluster's change."""
        turn = self.clusters.gate(group_id, rs_id)
        if refuse is None and turn is not None:
            refuse = turn["waitingFor"]
        return self._desk.acquire(
            group_id, rs_id, member, change_id=change_id, move=move, seq=seq, refuse=refuse
        )

    def agent_view(self, group_id: str, rs_id: str) -> dict[str, Any]:
        """A set's view for its agents, with its cluster change's turn (``cluster``); a cluster's
        (``cluster:<name>``) for its mongos agents."""
        name = cluster_name(rs_id)
        if name is not None:
            return self.clusters.view(group_id, name)
        view = self._views.agent_view(group_id, rs_id)
        if view.get("active"):
            view["cluster"] = self.clusters.gate(group_id, rs_id)
        return view

    def record(
        self,
        group_id: str,
        rs_id: str,
        change_id: str,
        move: Mapping[str, Any],
        *,
        seq: int | None = None,
        at: float | None = None,
        connections: int | None = None,
        refused: str | None = None,
    ) -> dict[str, Any]:
        """A move carried out: a set's (``recorder.Recorder.record``) or a cluster's."""
        name = cluster_name(rs_id)
        if name is not None:
            return self.clusters.record(group_id, name, change_id, move, at)
        return self._recorder.record(
            group_id, rs_id, change_id, move, seq=seq, at=at, connections=connections, refused=refused
        )

    def changes(self, group_id: str) -> list[dict[str, Any]]:
        """``GET /groups/{id}/maintenance``: the replica sets' changes (``type`` ``REPLICA_SET``, with the
        ``cluster`` the set is a part of, None for a set of its own) and the sharded clusters'
        (``SHARDED_CLUSTER``), the ones under way first, newest first."""
        goal = self.goal(group_id)
        views = []
        for view in self._views.changes(group_id):
            layout = layout_of_set(goal, str(view["replicaSet"]))
            cluster = layout.name if layout is not None else None
            views.append({**view, "type": "REPLICA_SET", "cluster": cluster})
        views += self.clusters.records(group_id)
        return in_listing_order(views)

    def change(self, group_id: str, change_id: str) -> dict[str, Any]:
        for view in self.changes(group_id):
            if view["id"] == change_id:
                return view
        raise NotFound(f"no rolling change {change_id} in project {group_id}")

    def active_hosts(self, group_id: str) -> dict[str, frozenset[str]]:
        """Per replica set under a change, and per sharded cluster (``cluster:<name>``: its mongos), the
        hosts whose agents take part (the work list names them)."""
        return {**self._views.active_hosts(group_id), **self.clusters.active_hosts(group_id)}

    def settle_alerts(self) -> int:
        """The periodic work on maintenance alerts: the member-failed alerts of changes that ended without a
        decision closing them, and the majority-lost watch. Returns how many alerts opened or closed."""
        return self._settle() + self.watch_majority()

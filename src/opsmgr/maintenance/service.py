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
  spells a set under a change lost its majority and the ``MAINTENANCE_MAJORITY_LOST`` alert.

The knobs the agents follow (:class:`~opsmgr.maintenance.snapshot.Policy`) come from the server, so one
setting governs every agent of a set. May import ``opsmgr.store``, ``opsmgr.alerts`` and
``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opsmgr.alerts import AlertService
from opsmgr.maintenance.grants import LeaseDesk
from opsmgr.maintenance.index_steps import IndexSteps
from opsmgr.maintenance.members import MemberReports
from opsmgr.maintenance.recorder import Recorder
from opsmgr.maintenance.registration import Registrar
from opsmgr.maintenance.snapshot import Policy
from opsmgr.maintenance.views import MaintenanceViews
from opsmgr.maintenance.watcher import MajorityWatch
from opsmgr.store.engine import Store


class MaintenanceService:
    """Rolling changes of a project's replica sets, kept in the application database.

    ``goal`` returns a project's goal automation config (secrets in the clear), ``statuses`` the status
    documents its agents last reported; ``encrypt``/``decrypt`` protect the secrets of the config a change
    started from, as the automation config's own are.
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        members = MemberReports(goal=goal, statuses=statuses, clock=clock)
        registrar = Registrar(
            encrypt=encrypt, decrypt=decrypt, alert_window_s=policy.alert_window_s, clock=clock
        )
        desk = LeaseDesk(store, members, policy=policy, clock=clock)
        steps = IndexSteps(store, members, policy=policy, clock=clock)
        recorder = Recorder(store, alerts, members, steps, clock=clock)
        views = MaintenanceViews(store, members, policy=policy, clock=clock)
        watch = MajorityWatch(store, alerts, members, policy=policy, clock=clock)
        self.on_step_done = steps.listeners
        # config changes
        self.register = registrar.register
        # the lease
        self.acquire = desk.acquire
        self.renew = desk.renew
        self.release = desk.release
        self.state_of_lease = desk.state_of_lease
        # unique index builds' member steps
        self.acquire_for = steps.acquire_for
        self.withdraw = steps.withdraw
        # what agents carry out and decide
        self.record = recorder.record
        self.report = recorder.report
        self._settle, self.watch_majority = recorder.settle_alerts, watch.tick
        # views
        self.agent_view = views.agent_view
        self.active_doc = views.active_doc
        self.status_views = views.status_views
        self.changes = views.changes
        self.change = views.change
        self.active_sets = views.active_sets
        self.active_hosts = views.active_hosts
        self.arbiter_hosts = views.arbiter_hosts

    def settle_alerts(self) -> int:
        """The periodic work on maintenance alerts: the member-failed alerts of changes that ended without a
        decision closing them, and the majority-lost watch. Returns how many alerts opened or closed."""
        return self._settle() + self.watch_majority()

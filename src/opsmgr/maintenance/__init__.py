"""Rolling maintenance of replica sets: which config changes need a rolling restart, the procedure that
carries one out one member at a time without losing the majority, the preflight checks that block it with a
stated reason, the per-replica-set maintenance lease the server grants, the supervised unique index build,
and the figures of each rolling change.

Every decision here is a pure function over plain values; only ``leases.LeaseService``, ``builds`` and
``service.MaintenanceService`` (the server's side: changes registered by config PUTs, the agents' view,
leases, progress, status, alerts, reports) touch the store. May import ``opsmgr.errors``,
``opsmgr.automation.config`` (pure accessors), ``opsmgr.drivers.base`` (types only), ``opsmgr.store`` and
``opsmgr.alerts`` (``service``). Never the web framework, the agent or the simulator.
"""

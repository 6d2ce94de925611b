"""Rolling maintenance of replica sets: which config changes need a rolling restart, the procedure that
carries one out one member at a time without losing the majority (``procedure`` decides, over the moves and
progress of ``moves``), the preflight checks that block it with a stated reason, the per-replica-set
maintenance lease the server grants, the supervised unique index build, and the figures of each rolling
change.

Every decision here is a pure function over plain values; only ``leases.LeaseService``, ``builds``,
``index_service`` and ``service.MaintenanceService`` touch the store. The service is the server's side, a
façade over its parts: ``changes`` (the change document each part moves), ``registration`` (changes
registered by config PUTs), ``grants`` (the lease), ``recorder`` (progress, decisions, status, alerts,
reports), ``index_steps`` (a unique index build's member steps), ``members`` and ``views`` (what agents and
operators see), ``watch`` and ``watcher`` (kept warnings, majority lost, the temporary arbiter's host), and
``clusters``: a sharded cluster's change over its sets' (the balancer, config servers first, the shards in
turn, the mongos last), whose decisions are ``sharded``'s.
May import ``opsmgr.errors``, ``opsmgr.automation.config`` (pure accessors), ``opsmgr.automation.rules``
(modes, host names), ``opsmgr.automation.secrets`` (gen.key on started configs), ``opsmgr.automation.records``
(processes and replica sets), ``opsmgr.automation.hosts`` (host ids, for the temporary arbiter's host),
``opsmgr.automation.protocol`` (the work-changed topic), ``opsmgr.automation.service`` (its version conflict,
for ``index_service``), ``opsmgr.drivers.base`` (types only), ``opsmgr.store``, ``opsmgr.timestamps`` (the
views' instants) and ``opsmgr.alerts`` (``recorder``). Never the web framework, the agent or the simulator.
"""

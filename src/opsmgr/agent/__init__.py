"""The agent: one per host, keeping its processes in the goal state the server hands out (automation),
shipping backups and loading restores, and carrying out rolling maintenance, over the narrow driver interface.

Never the server's code, and no store but the backing agent's, opened lazily. May import ``opsmgr.errors``,
``opsmgr.logs``, ``opsmgr.tls``, ``opsmgr.conf``, ``opsmgr.properties``, ``opsmgr.automation.config``,
``opsmgr.automation.rules``, ``opsmgr.automation.secrets``,
``opsmgr.automation.protocol``, the pure ``opsmgr.maintenance.procedure``, ``opsmgr.maintenance.moves``,
``opsmgr.maintenance.report``,
``opsmgr.maintenance.rolling``, ``opsmgr.maintenance.snapshot``, ``opsmgr.maintenance.unique_index`` and
``opsmgr.maintenance.wire``, ``opsmgr.backup.wire``, ``opsmgr.backup.crashpoints``, the restore of backing
databases' ``opsmgr.backup.store_restore``, ``opsmgr.backup.store_replace``,
``opsmgr.backup.restore_download`` and ``opsmgr.restoration.record``, ``opsmgr.drivers``, ``opsmgr.sim`` and
``opsmgr.store``.
"""

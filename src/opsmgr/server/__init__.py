"""The server: the public API, the agent API and the UI over HTTP, their settings and start-up, on top of the
domain packages; handlers stay thin.

May import ``opsmgr.jsontypes``, ``opsmgr`` (its version), ``opsmgr.errors``, ``opsmgr.logs``, ``opsmgr.tls``,
``opsmgr.conf``, ``opsmgr.properties``, ``opsmgr.strictjson``, ``opsmgr.alerts``, ``opsmgr.automation``,
``opsmgr.backup``, ``opsmgr.maintenance``, ``opsmgr.restoration``, ``opsmgr.store``, ``opsmgr.timestamps`` and
``opsmgr.command`` (to run the command line as a child); never the agent, the drivers, the simulator or the
command line's code.
"""

"""The ``opsmgr`` command line: argument parsing and output, each command delegating to the package that owns
the work; the public API commands are thin clients over HTTP.

May import ``opsmgr`` (its version), ``opsmgr.command``, ``opsmgr.errors``, ``opsmgr.conf``,
``opsmgr.properties``, ``opsmgr.tls``, ``opsmgr.agent``, ``opsmgr.automation.templates``, ``opsmgr.backup``,
``opsmgr.restoration.record``, ``opsmgr.restoration.mode``, ``opsmgr.restoration.adopt``, ``opsmgr.server``
(its boot and settings), ``opsmgr.ui`` (what a server serves beside its API), ``opsmgr.store``,
``opsmgr.durable_file`` (downloads), ``opsmgr.sim`` (the demo's application writing to its simulated replica
set) and ``opsmgr.timestamps``.
"""

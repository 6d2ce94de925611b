"""Restoration Mode: detection, isolation and reconciliation of agents after the application
database is rolled back.

May import ``opsmgr.errors``, ``opsmgr.alerts``, ``opsmgr.automation``, ``opsmgr.store`` and
``opsmgr.timestamps``; never the web framework.
"""

"""Restoration Mode: detection, isolation and reconciliation of agents after the application
database is rolled back.

May import ``opsmgr.errors``, ``opsmgr.alerts``, ``opsmgr.automation`` and ``opsmgr.store``; never the web
framework.
"""

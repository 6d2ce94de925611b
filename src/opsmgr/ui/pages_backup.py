"""Continuous Backup: deployments with backup state, start and stop, schedule and retention, snapshots, the
PITR window as a timeline, Take snapshot now.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.server``, ``opsmgr.ui.web`` and
``opsmgr.ui.project``.
"""

from __future__ import annotations

from fastapi import APIRouter

from opsmgr.ui.web import PageRoute

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

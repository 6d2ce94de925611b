"""Rolling maintenance, live: each replica set's current change, its members' steps, the step-down, blocks,
warnings, the lease, and the finished changes' figures.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.server``, ``opsmgr.ui.web`` and
``opsmgr.ui.project``.
"""

from __future__ import annotations

from fastapi import APIRouter

from opsmgr.ui.web import PageRoute

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

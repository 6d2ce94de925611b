"""The backing databases, on a secondary: the primary's three stores side by side, the point all three restore
to together, the restore commands, restore history.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.server``, ``opsmgr.ui.web`` and
``opsmgr.ui.project``.
"""

from __future__ import annotations

from fastapi import APIRouter

from opsmgr.ui.web import PageRoute

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

"""The restore wizard in the seed's words (Snapshot, Point in Time, Oplog timestamp; Choose Cluster to Restore
to or Download; confirm) and the restore job page with live progress.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.server``, ``opsmgr.ui.web`` and
``opsmgr.ui.project``.
"""

from __future__ import annotations

from fastapi import APIRouter

from opsmgr.ui.web import PageRoute

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

"""The public API's hosts: ``GET /groups/{id}/hosts`` in Ops Manager's shape.

May import ``opsmgr.jsontypes``, ``opsmgr.server.auth``, ``opsmgr.server.deps``, ``opsmgr.server.paging`` and
``opsmgr.server.public_api``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectReader
from opsmgr.server.deps import Automation
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX

router = APIRouter(prefix=PREFIX, tags=["public"])


@router.get("/groups/{group_id}/hosts")
def list_hosts(
    request: Request, caller: ProjectReader, automation: Automation, page: int = Page, per: int = PerPage
) -> JsonObject:
    return paginated(request, automation.hosts(caller.group_id), page, per)

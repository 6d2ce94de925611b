"""``/groups/{id}/maintenanceWindows``: Ops Manager's maintenance windows, which turn a project's alert
notifications of the named alert types off for a while (``store.maintenance_windows``). ``GET`` lists the
windows whose end is in the future (``results``, ``totalCount``, ``links``) and ``GET /{mwId}`` reads one, for
any role on the project; ``POST`` creates one (201), ``PATCH /{mwId}`` changes the fields given (200,
the window) and ``DELETE /{mwId}`` deletes one (204), for Project Owner. A window that has ended is as
missing (404), as in Ops Manager.

May import ``opsmgr.jsontypes``, ``opsmgr.store.maintenance_windows``, ``opsmgr.server.auth``,
``opsmgr.server.bodies``, ``opsmgr.server.deps``, ``opsmgr.server.paging`` and ``opsmgr.server.public_api``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectOwner, ProjectReader
from opsmgr.server.bodies import Array, Echo, SentBody, Text
from opsmgr.server.deps import ServicesDep
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.store.maintenance_windows import MAX_DESCRIPTION, AlertType, MaintenanceWindows

router = APIRouter(prefix=PREFIX, tags=["maintenanceWindows"])

_TYPES = ", ".join(t.value for t in AlertType)


async def _windows(services: ServicesDep) -> MaintenanceWindows:
    return services.maintenance_windows


Windows = Annotated[MaintenanceWindows, Depends(_windows)]


class WindowBody(SentBody):
    """POST (all of alertTypeNames, startDate, endDate) or PATCH (at least one field) of a window."""

    alertTypeNames: Array = Field(None, description=f"Alert types silenced: {_TYPES}.")
    startDate: Text = Field(None, description="ISO 8601 date and time (UTC without an offset).")
    endDate: Text = Field(None, description="ISO 8601 date and time after startDate, in the future.")
    description: Text = Field(None, description=f"At most {MAX_DESCRIPTION} characters.")
    id: Echo = None
    groupId: Echo = None
    created: Echo = None
    updated: Echo = None
    links: Echo = None


@router.get("/groups/{group_id}/maintenanceWindows")
def list_windows(
    request: Request, caller: ProjectReader, windows: Windows, page: int = Page, per: int = PerPage
) -> JsonObject:
    return paginated(request, windows.of_group(caller.group_id), page, per)


@router.post("/groups/{group_id}/maintenanceWindows", status_code=201)
def create_window(caller: ProjectOwner, windows: Windows, body: WindowBody) -> JsonObject:
    return windows.create(caller.group_id, body.as_sent())


@router.get("/groups/{group_id}/maintenanceWindows/{window_id}")
def get_window(caller: ProjectReader, windows: Windows, window_id: str) -> JsonObject:
    return windows.get(caller.group_id, window_id)


@router.patch("/groups/{group_id}/maintenanceWindows/{window_id}")
def update_window(caller: ProjectOwner, windows: Windows, window_id: str, body: WindowBody) -> JsonObject:
    return windows.update(caller.group_id, window_id, body.as_sent())


@router.delete("/groups/{group_id}/maintenanceWindows/{window_id}", status_code=204)
def delete_window(caller: ProjectOwner, windows: Windows, window_id: str) -> None:
    windows.delete(caller.group_id, window_id)

"""Restoration Mode in the UI: the project banner and the installation-wide banner as live fragments, and the
banner's buttons, Retry and Force exit, for Project Owners (the API's calls, roles and messages).

May import ``opsmgr.errors``, ``opsmgr.server``, ``opsmgr.store``, ``opsmgr.ui.web`` and
``opsmgr.ui.project``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from opsmgr.server.deps import ServicesDep
from opsmgr.store.appdb import Role
from opsmgr.ui.project import project_page
from opsmgr.ui.web import (
    ChangerDep,
    Confirmation,
    PageRoute,
    ViewerDep,
    fragment,
    live,
    require_confirmed,
    restoration_banner,
)

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


@router.get("/projects/{group_id}/restoration/banner")
def project_banner(request: Request, services: ServicesDep, viewer: ViewerDep, group_id: str) -> Response:
    def html() -> str:
        project = project_page(services, viewer, group_id)
        return fragment("_restoration_banner.html", {**project.context(), "csrf": viewer.csrf})

    return live(request, html)


@router.get("/restoration/banner")
def installation_banner(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    def html() -> str:
        return fragment("_installation_banner.html", {"modes": restoration_banner(services, viewer)})

    return live(request, html)


@router.post("/projects/{group_id}/restoration/retry")
def retry(services: ServicesDep, viewer: ChangerDep, group_id: str) -> Response:
    project = project_page(services, viewer, group_id, Role.GROUP_OWNER)
    services.restoration.retry(project.id)
    return RedirectResponse(f"/ui/projects/{project.id}/deployment", status_code=303)


@router.post("/projects/{group_id}/restoration/exit")
def force_exit(
    services: ServicesDep,
    viewer: ChangerDep,
    group_id: str,
    confirm: Confirmation = "",
) -> Response:
    project = project_page(services, viewer, group_id, Role.GROUP_OWNER)
    require_confirmed(confirm, "that you have read the warning and want to force Restoration Mode to exit")
    services.restoration.force_exit(project.id)
    return RedirectResponse(f"/ui/projects/{project.id}/deployment", status_code=303)

"""The deployment of a project, live (its replica sets, processes, agents' plan steps), and the edit -> review
-> deploy path of its automation config.

The page reads what ``GET automationConfig``, ``automationStatus`` and ``hosts`` read, with their role
(Project Read Only); the review and the deploy need Project Automation Admin, as ``PUT automationConfig``
does, and the deploy is that PUT's own call (``Deployments.put_config``, with the version the edit was based
on): Restoration Mode's guard, the validator and the version check refuse with the API's messages.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.server``, ``opsmgr.ui.web``,
``opsmgr.ui.project``, ``opsmgr.ui.deployment_view`` and ``opsmgr.ui.deployment_edit``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from opsmgr.errors import Conflict, InvalidInput, OpsmgrError
from opsmgr.jsontypes import JsonObject
from opsmgr.server.deps import ServicesDep
from opsmgr.server.services import Services
from opsmgr.store.appdb import Role
from opsmgr.ui.deployment_edit import (
    COMMON_OPTIONS,
    PROCESS_OPTIONS,
    config_from_form,
    form_fields,
    parse_json,
    review,
)
from opsmgr.ui.deployment_view import deployment_view
from opsmgr.ui.project import ProjectPage, project_page
from opsmgr.ui.web import (
    ChangerDep,
    PageRoute,
    Viewer,
    ViewerDep,
    fragment,
    live,
    posted_form,
    render,
)

log = logging.getLogger("opsmgr.ui")
router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

# Characters of the review's config: the request body's limit (``server.app.MAX_BODY_BYTES``, the API PUT's
# too) is what bounds it, so that any config the API takes, the review deploys.
MAX_CONFIG = 8 * 1024 * 1024


async def _posted(request: Request) -> dict[str, str]:
    """Every text field of the posted form (the edit form's fields are named after the config's processes)."""
    form = await posted_form(request)
    return {k: v for k, v in form.items() if isinstance(v, str)}


PostedDep = Annotated[dict[str, str], Depends(_posted)]


def _table(services: Services, group_id: str) -> JsonObject:
    return {
        "view": deployment_view(
            services.automation.config(group_id),
            services.automation.automation_status(group_id),
            services.automation.hosts(group_id),
            int(time.time() * 1000),
        ),
        "group_id": group_id,
    }


def _edit_blocked(project: ProjectPage) -> str:
    """Why this viewer cannot change the deployment ("" when they can)."""
    if not project.may_automate:
        return f"Changing the deployment needs the {Role.GROUP_AUTOMATION_ADMIN.value} role."
    return project.change_refused


@router.get("/projects/{group_id}/deployment")
def deployment(
    request: Request, services: ServicesDep, viewer: ViewerDep, group_id: str, deployed: int | None = None
) -> Response:
    project = project_page(services, viewer, group_id)
    context = {
        **project.context(),
        **_table(services, group_id),
        "blocked": _edit_blocked(project),
        "deployed": deployed,
    }
    return render(request, "deployment.html", context, viewer=viewer)


@router.get("/projects/{group_id}/deployment/live")
def deployment_live(request: Request, services: ServicesDep, viewer: ViewerDep, group_id: str) -> Response:
    project_page(services, viewer, group_id)

    def table() -> str:
        project_page(services, viewer, group_id)  # the role may be gone since the stream began
        return fragment("_deployment_table.html", _table(services, group_id))

    return live(request, table)


def _edit_page(
    request: Request,
    services: Services,
    viewer: Viewer,
    project: ProjectPage,
    *,
    posted: Mapping[str, str] | None = None,
    error: OpsmgrError | None = None,
) -> Response:
    config = services.automation.config(project.id)
    context = {
        **project.context(),
        "title": f"Edit deployment · {project.group['name']}",
        "fields": form_fields(config),
        "process_options": PROCESS_OPTIONS,
        "common_options": COMMON_OPTIONS,
        "posted": dict(posted or {}),
        "blocked": _edit_blocked(project),
        "error": error.detail if error else "",
    }
    return render(
        request, "deployment_edit.html", context, viewer=viewer, status=error.http_status if error else 200
    )


@router.get("/projects/{group_id}/deployment/edit")
def edit(request: Request, services: ServicesDep, viewer: ViewerDep, group_id: str) -> Response:
    project = project_page(services, viewer, group_id)
    return _edit_page(request, services, viewer, project)


def _base_version(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(
            f"base_version must be the config version the edit started from, not {text[:40]!r}"
        ) from None


@router.post("/projects/{group_id}/deployment/review")
def review_page(
    request: Request, services: ServicesDep, viewer: ChangerDep, posted: PostedDep, group_id: str
) -> Response:
    project = project_page(services, viewer, group_id, Role.GROUP_AUTOMATION_ADMIN)
    services.deployments.guard(group_id)
    base = _base_version(posted.get("base_version", ""))
    current = services.automation.config(group_id)
    if current["version"] != base:
        stale = Conflict(
            f"The automation config changed since this form was opened (version {base}, now "
            f"{current['version']}): here it is as it is now; make the change again."
        )
        return _edit_page(request, services, viewer, project, error=stale)
    try:
        body = config_from_form(current, posted)
        found = review(current, body)
    except OpsmgrError as exc:  # the form's own problem or the API's refusal, shown on the form
        return _edit_page(request, services, viewer, project, posted=posted, error=exc)
    return _review_page(request, viewer, project, body, base, found)


def _review_page(
    request: Request,
    viewer: Viewer,
    project: ProjectPage,
    body: JsonObject,
    base: int,
    found: object,
    *,
    error: OpsmgrError | None = None,
) -> Response:
    context = {
        **project.context(),
        "title": f"Review deployment change · {project.group['name']}",
        "review": found,
        "config_json": json.dumps(body, separators=(",", ":")),
        "base_version": base,
        "blocked": _edit_blocked(project),
        "error": error.detail if error else "",
    }
    return render(
        request, "deployment_review.html", context, viewer=viewer, status=error.http_status if error else 200
    )


@router.post("/projects/{group_id}/deployment/deploy")
def deploy(
    request: Request,
    services: ServicesDep,
    viewer: ChangerDep,
    group_id: str,
    config: Annotated[str, Form(max_length=MAX_CONFIG)],
    base_version: Annotated[str, Form(max_length=20)],
) -> Response:
    project = project_page(services, viewer, group_id, Role.GROUP_AUTOMATION_ADMIN)
    body = parse_json(config, "The config to deploy")
    base = _base_version(base_version)
    try:
        done = services.deployments.put_config(group_id, body, expected_version=base)
    except OpsmgrError as exc:
        log.info("UI deploy of project %s refused: %s", group_id, exc.detail)
        try:
            found: object = review(services.automation.config(group_id), body)
        except OpsmgrError:
            found = None
        return _review_page(request, viewer, project, body, base, found, error=exc)
    log.info("UI deploy of project %s by %s: version %s", group_id, viewer.user.username, done["version"])
    return RedirectResponse(f"/ui/projects/{group_id}/deployment?deployed={done['version']}", status_code=303)

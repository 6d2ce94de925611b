"""The UI's front door: log in, log out, and the organizations and projects page (create a project).

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.server.deps``, ``opsmgr.ui.web``,
``opsmgr.ui.project`` and ``opsmgr.ui.throttle``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from opsmgr.errors import Forbidden, NotFound, OpsmgrError
from opsmgr.server.deps import AppDBDep, ServicesDep
from opsmgr.store.appdb import Role
from opsmgr.ui.project import project_links
from opsmgr.ui.throttle import LoginThrottle
from opsmgr.ui.web import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ChangerDep,
    PageRoute,
    ViewerDep,
    render,
    same_token,
)

log = logging.getLogger("opsmgr.ui")
router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


class TooManyLogins(OpsmgrError):
    http_status = 429
    error_code = "TOO_MANY_LOGIN_ATTEMPTS"


def _safe_next(target: str | None) -> str:
    """Only a path of this server's UI: a login link cannot send the user elsewhere."""
    if not target:
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui/") or "\\" in target:
        return "/ui/"
    return target


def _throttle(request: Request) -> LoginThrottle:
    found = request.app.state.login_throttle
    assert isinstance(found, LoginThrottle)
    return found


def _login_page(request: Request, next_url: str, *, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"next": next_url, "login_csrf": token, "error": error, "title": "Log in"},
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, _safe_next(next))


@router.post("/login")
def login(
    request: Request,
    services: ServicesDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/ui/",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not same_token(csrf_token, expected):
        raise Forbidden(
            "The login form's CSRF token is missing or wrong: reload the page and try again.",
            error_code="CSRF_TOKEN_INVALID",
        )
    address = request.client.host if request.client else "unknown"
    throttle = _throttle(request)
    wait = throttle.begin(username, address)
    if wait > 0:
        raise TooManyLogins(f"Too many failed logins: try again in {wait:.0f} s.")
    user = services.users.authenticate(username, password)
    if user is None:
        log.warning("failed UI login for %r from %s", username, address)
        return _login_page(request, _safe_next(next), error="Wrong username or password.", status=401)
    throttle.succeeded(username, address)
    session = services.users.open_session(user)
    log.info("UI login: %s from %s", user.username, address)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
        max_age=int(session.expires - session.created),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
def logout(services: ServicesDep, viewer: ChangerDep) -> Response:
    services.users.close_session(viewer.session.token)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(request: Request, appdb: AppDBDep, viewer: ViewerDep) -> Response:
    principal = viewer.principal
    orgs = []
    readable = [g for g in appdb.groups() if principal.can_see_group(g)]
    for org in appdb.orgs():
        org_id = str(org["_id"])
        if not principal.can_see_org(org_id):
            continue
        projects = [g for g in readable if g["orgId"] == org_id]
        orgs.append(
            {
                "org": org,
                "projects": [{"group": g, "links": project_links(str(g["_id"]))} for g in projects],
                "may_create": Role.ORG_OWNER in principal.org_roles(org_id),
            }
        )
    return render(request, "home.html", {"orgs": orgs, "title": "Organizations and projects"}, viewer=viewer)


@router.post("/orgs/{org_id}/projects")
def create_project(
    request: Request,
    appdb: AppDBDep,
    viewer: ChangerDep,
    org_id: str,
    name: Annotated[str, Form(max_length=64)],
) -> Response:
    """POST /groups' call; the page shows the project's first agent API key, this once (as the API's
    answer carries it)."""
    group, agent_key = appdb.create_group_as(viewer.principal, name, org_id)
    context = {"group": group, "agent_key": agent_key, "title": "Project created"}
    return render(request, "project_created.html", context, viewer=viewer, status=201)


# Included after every other page: a path of the UI that nothing answers is the UI's own 404 page.
fallback = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


@fallback.api_route("/{rest:path}", methods=["GET", "POST"])
def no_such_page(request: Request, rest: str) -> Response:
    raise NotFound(f"There is no {request.method} /ui/{rest[:120]} in the web UI.", error_code="NO_SUCH_PAGE")

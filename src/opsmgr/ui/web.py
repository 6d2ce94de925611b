"""What every page of the web UI stands on: who is logged in, CSRF, rendering, errors and live fragments.

Owns the session cookie, the CSRF token (an HMAC of the session token under the server's secret: nothing to
store, different for every session), the login throttle's place in the services, the route class that turns
every refusal into a page with the API's own message and status (never a traceback), the template
environment, and :func:`live`, which serves a live region's fragment (``ui.stream`` sends a page's regions
down one event stream).

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.restoration.mode``,
``opsmgr.server.deps``, ``opsmgr.server.services`` and ``opsmgr.ui.throttle``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from opsmgr.errors import Forbidden, InvalidInput, OpsmgrError
from opsmgr.jsontypes import JsonObject
from opsmgr.restoration.mode import ModeState
from opsmgr.server.deps import ServicesDep, services_of
from opsmgr.server.services import Services
from opsmgr.store.appdb import Principal, Role
from opsmgr.store.users import Session, User

log = logging.getLogger("opsmgr.ui")

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
SESSION_COOKIE = "opsmgr_session"
LOGIN_CSRF_COOKIE = "opsmgr_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Fields of a posted form (Starlette's default is 1,000): the deployment edit form has about five per process,
# and a project of several hundred processes is edited too; the request body's limit bounds the form anyway.
MAX_FORM_FIELDS = 20_000


# Every page: scripts and styles of this server only (the pages have no inline script; inline style attributes
# place the PITR timeline's ranges), never inside another site's frame, no referrer to other sites.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class LoginRequired(OpsmgrError):
    http_status = 401
    error_code = "LOGIN_REQUIRED"


@dataclass(frozen=True)
class Viewer:
    """The logged-in user of a request: who they are, what they may do, and their CSRF token."""

    user: User
    session: Session
    principal: Principal
    csrf: str

    def project_roles(self, group: JsonObject) -> set[Role]:
        return self.principal.group_roles(group)

    def may(self, group: JsonObject, role: Role) -> bool:
        return role in self.principal.group_roles(group)


def csrf_for(services: Services, session_token: str) -> str:
    return hmac.new(
        services.config.digest_secret, b"csrf:" + session_token.encode(), hashlib.sha256
    ).hexdigest()


def _viewer(request: Request, services: ServicesDep) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE, "")
    session = services.users.session(token) if token else None
    if session is None:
        raise LoginRequired("Log in to see this page.")
    viewer = Viewer(session.user, session, session.user.principal(), csrf_for(services, token))
    request.state.viewer = viewer  # for the error page's navigation, should the route refuse
    return viewer


def same_token(sent: str, expected: str) -> bool:
    """Whether a CSRF token sent is the one expected, in constant time; any text may be sent (compare_digest
    refuses a str that is not ASCII with a TypeError)."""
    return hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), expected.encode())


async def posted_form(request: Request) -> FormData:
    """The request's form, parsed once with this UI's limits (Starlette keeps the first parse: every reader of
    the form, the CSRF check first, must ask through here)."""
    return await request.form(max_fields=MAX_FORM_FIELDS)


async def _form_token(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await posted_form(request)
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def _changer(request: Request, viewer: Annotated[Viewer, Depends(_viewer)]) -> Viewer:
    """A logged-in user whose request carries the session's CSRF token (every state-changing route)."""
    if not same_token(await _form_token(request), viewer.csrf):
        raise Forbidden(
            "The form's CSRF token is missing or wrong: reload the page and try again.",
            error_code="CSRF_TOKEN_INVALID",
        )
    return viewer


ViewerDep = Annotated[Viewer, Depends(_viewer)]
# Use on every POST: the user, once the CSRF token checks out.
ChangerDep = Annotated[Viewer, Depends(_changer)]


Confirmation = Annotated[str, Form(max_length=8)]


def require_confirmed(confirm: str, what: str) -> None:
    """A dangerous button's form carries a ticked box (``confirm=yes``); without it, a 400 saying ``what``."""
    if confirm != "yes":
        raise InvalidInput(f"Tick the box to confirm {what}.", field="confirm")


def render(
    request: Request,
    template: str,
    context: Mapping[str, object],
    *,
    viewer: Viewer | None = None,
    status: int = 200,
) -> HTMLResponse:
    services = services_of(request)
    base: dict[str, object] = {
        "viewer": viewer,
        "csrf": viewer.csrf if viewer else "",
        "modes": restoration_banner(services, viewer) if viewer else [],
        "simulated": True,
    }
    response = templates.TemplateResponse(request, template, {**base, **context}, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def restoration_banner(services: Services, viewer: Viewer) -> list[JsonObject]:
    """Every project in Restoration Mode (or armed) that ``viewer`` may read, for the installation-wide
    banner: GET restorationMode's role, so no user learns another organization's project names, ids or
    states."""
    found: list[JsonObject] = []
    for group in services.appdb.groups():
        if not viewer.may(group, Role.GROUP_READ_ONLY):
            continue
        group_id = str(group["_id"])
        if services.restoration.state(group_id) is not ModeState.INACTIVE:
            found.append({"name": group["name"], **services.restoration.view(group_id)})
    return found


def error_page(request: Request, exc: OpsmgrError) -> Response:
    if isinstance(exc, LoginRequired):
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
        exc = Forbidden("Your session has ended: log in again.", error_code="LOGIN_REQUIRED")
    viewer = getattr(request.state, "viewer", None)
    return render(
        request,
        "error.html",
        {"detail": exc.detail, "error_code": exc.error_code, "status": exc.http_status},
        viewer=viewer if isinstance(viewer, Viewer) else None,
        status=exc.http_status,
    )


class PageRoute(APIRoute):
    """A UI route: a refusal (the API's exception, with the API's message) becomes a page, not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[object, object, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except OpsmgrError as exc:
                response = error_page(request, exc)
            except HTTPException as exc:  # the form could not be parsed (too many fields or files)
                if exc.status_code >= 500:
                    raise
                response = error_page(request, _Invalid(f"The form was refused: {exc.detail}"))
                response.status_code = exc.status_code
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
                detail = f"Invalid {where or 'form'}: {first.get('msg', 'malformed request')}"
                response = error_page(request, _Invalid(detail))
            response.headers.update(SECURITY_HEADERS)
            return response

        return page


class _Invalid(OpsmgrError):
    http_status = 400
    error_code = "INVALID_ATTRIBUTE"


def live(request: Request, fragment: Callable[[], str]) -> Response:
    """A live region's fragment route: ``fragment`` rendered, never cached. The page's one event stream
    (``ui.stream``) asks these routes again four times a second and sends what changed."""
    return HTMLResponse(fragment(), headers={"Cache-Control": "no-store"})


def fragment(template: str, context: Mapping[str, object]) -> str:
    """A fragment (a template without the base layout) as HTML, for :func:`live`."""
    return templates.env.get_template(template).render(context)

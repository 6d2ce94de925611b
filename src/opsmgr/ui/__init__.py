"""The web UI, served by ``opsmgr server`` itself: server-rendered pages (Jinja2) over the very services the
public API uses, with user accounts, sessions and CSRF protection; its CSS and JavaScript are files of this
package (no CDN, no build step). :func:`install` adds it to an application ``server.app`` built.

Package may import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.strictjson``, ``opsmgr.store``,
``opsmgr.automation``, ``opsmgr.backup``, ``opsmgr.maintenance``, ``opsmgr.restoration``, ``opsmgr.alerts``
and ``opsmgr.server``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from opsmgr.ui.throttle import LoginThrottle
from opsmgr.ui.web import HERE


def install(app: FastAPI) -> None:
    from opsmgr.ui import (
        pages_admin,
        pages_alerts,
        pages_backing,
        pages_backup,
        pages_deployment,
        pages_home,
        pages_maintenance,
        pages_restoration,
        pages_restore,
        stream,
    )

    app.state.login_throttle = LoginThrottle()
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    for pages in (
        pages_home,
        pages_deployment,
        pages_maintenance,
        pages_backup,
        pages_restore,
        pages_backing,
        pages_alerts,
        pages_admin,
        pages_restoration,
        stream,
    ):
        app.include_router(pages.router)
    app.include_router(pages_home.fallback)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

"""Admin: the server's backing stores and their health, periodic jobs, version, and the secondary it reports
to.

What it shows is what the operability routes check (``/health/ready``'s write probe of each backing
database, the periodic jobs of ``services.jobs``), the secondaries this server watches
(``server.secondary_watch``) and the settings of ``services.config`` an operator asks about, Restoration Mode
first. It is for a user holding ORG_OWNER on some organization (the installation's owners, as Ops Manager's
Admin section is for its global owners); anyone else gets 403. Nothing secret is shown: a store's URI without
its password (nor any query parameter naming one), a webhook by its host only, never the server's key.

May import ``opsmgr.errors``, ``opsmgr.backup.secondaries``, ``opsmgr.store``,
``opsmgr.server``, ``opsmgr.ui.web`` and ``opsmgr.ui.project``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from opsmgr.backup.secondaries import GLOBAL_GROUP_ID, alert_key, secondaries
from opsmgr.errors import Forbidden
from opsmgr.server.deps import ServicesDep
from opsmgr.server.ops_api import Readiness, version
from opsmgr.server.services import Services
from opsmgr.store.appdb import Role
from opsmgr.store.engine import Store
from opsmgr.ui.web import PageRoute, Viewer, ViewerDep, render

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

# Query parameters of a database URI that can carry a secret (libpq's password, sslpassword, passfile...).
_SECRET_PARAM = re.compile(r"pass|secret|key|token", re.IGNORECASE)
_SQLITE_FILES = ("", "-wal", "-shm")


def require_admin(viewer: Viewer) -> None:
    """The Admin page's rule: ORG_OWNER on some organization."""
    principal = viewer.principal
    if not any(r.get("orgId") and r.get("roleName") == Role.ORG_OWNER.value for r in principal.roles):
        raise Forbidden(
            f"{principal.kind} {principal.public_key} holds ORG_OWNER on no organization: the Admin page "
            "is for Organization Owners"
        )


def redacted_url(url: str) -> str:
    """A store's URI without its password or any query parameter that may hold a secret."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return "(unparsable URI)"
    query = {k: ("***" if _SECRET_PARAM.search(k) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def _size_bytes(store: Store) -> int | None:
    """The database's size on disk: SQLite's files, or PostgreSQL's own figure (None if it will not say)."""
    try:
        if store.dialect == "sqlite":
            database = sa.engine.make_url(store.url).database or ""
            files = [Path(database + suffix) for suffix in _SQLITE_FILES]
            return sum(f.stat().st_size for f in files if f.exists())
        with store.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())
    except (OSError, sa.exc.SQLAlchemyError):
        return None


def _stores(request: Request, services: Services) -> list[dict[str, object]]:
    readiness = request.app.state.readiness
    assert isinstance(readiness, Readiness)
    problems = readiness.problems()  # the very check of /health/ready: each store takes a write
    named = zip(("appdb", "snapshotStore", "oplogStore"), services.stores.all(), strict=True)
    out: list[dict[str, object]] = []
    for name, store in named:
        with store.read() as t:
            documents = t.count_all()
        out.append(
            {
                "name": name,
                "label": store.name,
                "engine": "PostgreSQL" if store.dialect == "postgresql" else "SQLite",
                "url": redacted_url(store.url),
                "size": _size_bytes(store),
                "documents": documents,
                "problem": problems.get(name),
            }
        )
    return out


def _webhook(url: str | None) -> str | None:
    """The webhook's scheme and host only: its path or query often carries a token."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


def _secondaries(services: Services) -> list[dict[str, object]]:
    return [
        {
            "url": d["url"],
            "groupId": d.get("groupId"),
            "clusterId": d.get("clusterId"),
            "attachedAt": d.get("attachedAt"),
            "caFile": d.get("caFile"),
            "unreachable": services.alerts.is_open(GLOBAL_GROUP_ID, alert_key(str(d["url"]))),
        }
        for d in secondaries(services.stores.app)
    ]


def _when(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _job(view: dict[str, object]) -> dict[str, object]:
    return view | {"lastRunText": _when(view.get("lastRun"))}


@router.get("/admin")
def admin(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require_admin(viewer)
    config = services.config
    stores = _stores(request, services)
    context = {
        "title": "Admin",
        "version": version()["version"],  # what /api/public/v1.0/version answers
        "stores": stores,
        "ready": all(s["problem"] is None for s in stores),
        "jobs": [_job(j) for j in services.jobs.views()],
        "secondaries": _secondaries(services),
        "settings": {
            "Restoration Mode (mms.restorationMode.enabled)": "enabled"
            if config.restoration_mode_enabled
            else "disabled",
            "Central URL": config.central_url,
            "Agent poll interval": f"{config.agent_poll_interval_s:g} s",
            "Alert webhook": _webhook(config.alert_webhook_url) or "none",
            "Block compression": str(config.block_compression or "none"),
            "Blockstore": sa.engine.make_url(config.blockstore_uri).render_as_string(hide_password=True)
            if config.blockstore_uri
            else str(config.blockstore_path),
        },
    }
    return render(request, "admin.html", context, viewer=viewer)

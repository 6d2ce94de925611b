"""``GET /groups/{id}/alerts`` (optionally ``?status=OPEN|CLOSED``) and ``GET /groups/{id}/alerts/{alertId}``,
in Ops Manager's shapes, for Project Read Only and above; ``GET /globalAlerts[?status]`` and
``GET /globalAlerts/{alertId}``: alerts about the installation rather than a project (e.g.
``BACKUP_SECONDARY_UNREACHABLE``, kept under the reserved project id ``GLOBAL_GROUP_ID`` and shown with
``groupId: null``), for keys holding ORG_OWNER or ORG_READ_ONLY on an organization; and
:func:`webhook_poster`, the HTTP side of the webhook delivery that ``opsmgr.alerts`` drives from the server's
periodic work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Query, Request

from opsmgr.alerts import AlertStatus
from opsmgr.backup.secondaries import GLOBAL_GROUP_ID
from opsmgr.errors import Forbidden
from opsmgr.server.auth import public_principal
from opsmgr.server.public_api import PREFIX, Page, PerPage, group_for, paginated
from opsmgr.store.appdb import Principal, Role

router = APIRouter(prefix=PREFIX, tags=["alerts"])

WEBHOOK_TIMEOUT_S = 10.0


@router.get("/groups/{group_id}/alerts")
def list_alerts(
    request: Request,
    group_id: str,
    principal: Principal = Depends(public_principal),
    status: AlertStatus | None = Query(None),
    page: int = Page,
    per: int = PerPage,
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    return paginated(request, request.app.state.ctx.alerts.of_group(group_id, status), page, per)


@router.get("/groups/{group_id}/alerts/{alert_id}")
def get_alert(
    request: Request, group_id: str, alert_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    return dict(request.app.state.ctx.alerts.get(group_id, alert_id))


def _global_reader(principal: Principal) -> None:
    held = {r.get("roleName") for r in principal.roles if r.get("orgId")}
    if not held & {Role.ORG_OWNER.value, Role.ORG_READ_ONLY.value}:
        raise Forbidden(f"API key {principal.public_key} lacks ORG_OWNER or ORG_READ_ONLY for global alerts")


def _global_view(alert: dict[str, Any]) -> dict[str, Any]:
    return alert | {"groupId": None}


@router.get("/globalAlerts")
def list_global_alerts(
    request: Request,
    principal: Principal = Depends(public_principal),
    status: AlertStatus | None = Query(None),
    page: int = Page,
    per: int = PerPage,
) -> dict[str, Any]:
    _global_reader(principal)
    alerts = request.app.state.ctx.alerts.of_group(GLOBAL_GROUP_ID, status)
    return paginated(request, [_global_view(a) for a in alerts], page, per)


@router.get("/globalAlerts/{alert_id}")
def get_global_alert(
    request: Request, alert_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    _global_reader(principal)
    return _global_view(request.app.state.ctx.alerts.get(GLOBAL_GROUP_ID, alert_id))


def webhook_poster(url: str) -> Callable[[dict[str, Any]], None]:
    """POSTs one alert as JSON; any answer but 2xx is a failure the outbox retries."""

    def post(payload: dict[str, Any]) -> None:
        response = httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S)
        response.raise_for_status()

    return post

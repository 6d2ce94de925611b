"""``GET /groups/{id}/alerts`` (optionally ``?status=OPEN|CLOSED``) and ``GET /groups/{id}/alerts/{alertId}``,
in Ops Manager's shapes, for Project Read Only and above; ``PATCH /groups/{id}/alerts/{alertId}`` with
``{acknowledgedUntil, acknowledgementComment}`` acknowledges an open alert (Project Owner, as Atlas documents
the same route; a past or malformed date is 400); ``GET /globalAlerts[?status]`` and
``GET /globalAlerts/{alertId}``: alerts about the installation rather than a project (e.g.
``BACKUP_SECONDARY_UNREACHABLE``, kept under the reserved project id ``GLOBAL_GROUP_ID`` and shown with
``groupId: null``), for keys holding ORG_OWNER or ORG_READ_ONLY on an organization, ``PATCH
/globalAlerts/{alertId}`` to acknowledge one, for keys holding ORG_OWNER on an organization; and
:func:`webhook_poster`, the HTTP side of the webhook delivery that ``opsmgr.alerts`` drives from the server's
periodic work.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.alerts``, ``opsmgr.backup.secondaries``,
``opsmgr.store.appdb``, ``opsmgr.server.auth``, ``opsmgr.server.bodies``, ``opsmgr.server.deps`` and
``opsmgr.server.paging``, ``opsmgr.server.public_api``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

import httpx
from fastapi import APIRouter, Depends, Query, Request
from pydantic import ConfigDict, Field

from opsmgr.alerts import AlertStatus, Delivery
from opsmgr.backup.secondaries import GLOBAL_GROUP_ID
from opsmgr.errors import Forbidden
from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectOwner, ProjectReader, public_principal
from opsmgr.server.bodies import SentBody, Text
from opsmgr.server.deps import Alerts
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.store.appdb import Principal, Role

router = APIRouter(prefix=PREFIX, tags=["alerts"])

WEBHOOK_TIMEOUT_S = 10.0


@router.get("/groups/{group_id}/alerts")
def list_alerts(
    request: Request,
    caller: ProjectReader,
    alerts: Alerts,
    status: AlertStatus | None = Query(None),
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    found = alerts.of_group(caller.group_id, status)
    return paginated(request, [_project_view(request, a) for a in found], page, per)


@router.get("/groups/{group_id}/alerts/{alert_id}")
def get_alert(request: Request, caller: ProjectReader, alerts: Alerts, alert_id: str) -> JsonObject:
    return _project_view(request, alerts.get(caller.group_id, alert_id))


def _linked(request: Request, alert: JsonObject, path: str) -> JsonObject:
    return alert | {"links": [{"href": str(request.base_url).rstrip("/") + PREFIX + path, "rel": "self"}]}


def _project_view(request: Request, alert: JsonObject) -> JsonObject:
    return _linked(request, alert, f"/groups/{alert['groupId']}/alerts/{alert['id']}")


def _global_view(request: Request, alert: JsonObject) -> JsonObject:
    """An installation-wide alert belongs to no project: it has no ``groupId``."""
    shown = {k: v for k, v in alert.items() if k != "groupId"}
    return _linked(request, shown, f"/globalAlerts/{alert['id']}")


class AcknowledgeBody(SentBody):
    """PATCH /groups/{groupId}/alerts/{alertId} and /globalAlerts/{alertId}: acknowledge an open alert."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"required": ["acknowledgedUntil"]})
    acknowledgedUntil: Text = Field(
        None, description="ISO 8601 date and time (UTC without an offset), future."
    )
    acknowledgementComment: Text = Field(None, description="Why, at most 200 characters.")


@router.patch("/groups/{group_id}/alerts/{alert_id}")
def acknowledge_alert(
    request: Request, caller: ProjectOwner, alerts: Alerts, alert_id: str, body: AcknowledgeBody
) -> JsonObject:
    sent = body.as_sent()
    until, comment = sent.get("acknowledgedUntil"), sent.get("acknowledgementComment")
    acked = alerts.acknowledge(caller.group_id, alert_id, until, comment, caller.principal.public_key)
    return _project_view(request, acked)


def global_reader(principal: Principal) -> None:
    """Who may read the global alerts: a holder of ORG_OWNER or ORG_READ_ONLY on some organization."""
    held = {r.get("roleName") for r in principal.roles if r.get("orgId")}
    if not held & {Role.ORG_OWNER.value, Role.ORG_READ_ONLY.value}:
        raise Forbidden(
            f"{principal.kind} {principal.public_key} lacks ORG_OWNER or ORG_READ_ONLY for global alerts"
        )


def global_owner(principal: Principal) -> None:
    """Who may acknowledge a global alert: a holder of ORG_OWNER on some organization."""
    if not any(r.get("orgId") and r.get("roleName") == Role.ORG_OWNER.value for r in principal.roles):
        raise Forbidden(
            f"{principal.kind} {principal.public_key} lacks ORG_OWNER to acknowledge global alerts"
        )


@router.get("/globalAlerts")
def list_global_alerts(
    request: Request,
    alerts: Alerts,
    principal: Principal = Depends(public_principal),
    status: AlertStatus | None = Query(None),
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    global_reader(principal)
    found = alerts.of_group(GLOBAL_GROUP_ID, status)
    return paginated(request, [_global_view(request, a) for a in found], page, per)


@router.get("/globalAlerts/{alert_id}")
def get_global_alert(
    request: Request, alerts: Alerts, alert_id: str, principal: Principal = Depends(public_principal)
) -> JsonObject:
    global_reader(principal)
    return _global_view(request, alerts.get(GLOBAL_GROUP_ID, alert_id))


@router.patch("/globalAlerts/{alert_id}")
def acknowledge_global_alert(
    request: Request,
    alerts: Alerts,
    alert_id: str,
    body: AcknowledgeBody,
    principal: Principal = Depends(public_principal),
) -> JsonObject:
    global_owner(principal)
    sent = body.as_sent()
    until, comment = sent.get("acknowledgedUntil"), sent.get("acknowledgementComment")
    acked = alerts.acknowledge(GLOBAL_GROUP_ID, alert_id, until, comment, principal.public_key)
    return _global_view(request, acked)


def webhook_poster(decrypt: Callable[[str], str]) -> Callable[[Delivery], None]:
    """POSTs one alert as JSON with Ops Manager's headers: ``X-MMS-Event`` (``alert.open`` or
    ``alert.close``) and, when its configuration has a secret, ``X-MMS-Signature``, the base64 HMAC-SHA-1
    of the body under that secret. Any answer but 2xx is a failure the outbox retries."""

    def post(delivery: Delivery) -> None:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        opened = delivery.payload.get("notification") == AlertStatus.OPEN.value
        headers = {
            "Content-Type": "application/json",
            "X-MMS-Event": "alert.open" if opened else "alert.close",
        }
        if delivery.secret:
            digest = hmac.new(decrypt(delivery.secret).encode(), body, hashlib.sha1).digest()
            headers["X-MMS-Signature"] = base64.b64encode(digest).decode()
        response = httpx.post(delivery.url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_S)
        response.raise_for_status()

    return post

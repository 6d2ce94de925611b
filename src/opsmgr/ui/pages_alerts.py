"""Alerts, open and closed, per project and installation-wide; acknowledge.

The project page reads what ``GET /groups/{id}/alerts`` reads (Project Read Only) and acknowledges through
the service call of ``PATCH /groups/{id}/alerts/{alertId}`` (Project Owner); the installation-wide page is
``/globalAlerts`` with its role rules (read: ORG_OWNER or ORG_READ_ONLY on some organization; acknowledge:
ORG_OWNER). The date a user picks has no offset: it is read as UTC, as the API reads one without.

May import ``opsmgr.errors``, ``opsmgr.alerts``, ``opsmgr.backup.secondaries``, ``opsmgr.store``,
``opsmgr.server``, ``opsmgr.ui.web`` and ``opsmgr.ui.project``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from opsmgr.alerts import MAX_ACK_COMMENT, AlertStatus, is_acknowledged
from opsmgr.backup.secondaries import GLOBAL_GROUP_ID
from opsmgr.server.alerts_api import global_owner, global_reader
from opsmgr.server.deps import ServicesDep
from opsmgr.store.appdb import Principal, Role
from opsmgr.ui.project import project_page
from opsmgr.ui.web import ChangerDep, PageRoute, ViewerDep, render

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

FILTERS = (("", "All"), ("OPEN", "Open"), ("CLOSED", "Closed"))
Until = Annotated[str, Form(max_length=64)]
Comment = Annotated[str, Form(max_length=MAX_ACK_COMMENT)]


def _rows(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each alert with whether its acknowledgement holds now and the details its raiser added."""
    now = time.time()
    shown = {"id", "groupId", "eventTypeName", "status", "created", "updated", "resolved", "message"}
    acks = {"acknowledgedUntil", "acknowledgementComment", "acknowledgingUsername"}
    return [
        {
            "alert": a,
            "acknowledged": is_acknowledged(a, now),
            "details": {k: v for k, v in a.items() if k not in shown | acks},
        }
        for a in alerts
    ]


def _may_own_globally(principal: Principal) -> bool:
    return any(r.get("orgId") and r.get("roleName") == Role.ORG_OWNER.value for r in principal.roles)


@router.get("/projects/{group_id}/alerts")
def project_alerts(
    request: Request,
    services: ServicesDep,
    viewer: ViewerDep,
    group_id: str,
    status: AlertStatus | None = None,
) -> Response:
    project = project_page(services, viewer, group_id)
    rows = _rows(services.alerts.of_group(project.id, status))
    context = {
        **project.context(),
        "title": f"Alerts · {project.group['name']}",
        "heading": f"Alerts of {project.group['name']}",
        "rows": rows,
        "status": status.value if status else "",
        "filters": FILTERS,
        "base": f"/ui/projects/{project.id}/alerts",
        "may_ack": project.may_own,
        "ack_role": "Project Owner",
        "max_comment": MAX_ACK_COMMENT,
    }
    return render(request, "alerts.html", context, viewer=viewer)


@router.post("/projects/{group_id}/alerts/{alert_id}/acknowledge")
def acknowledge_project_alert(
    services: ServicesDep,
    viewer: ChangerDep,
    group_id: str,
    alert_id: str,
    acknowledged_until: Until,
    comment: Comment = "",
) -> Response:
    project = project_page(services, viewer, group_id, Role.GROUP_OWNER)
    services.alerts.acknowledge(
        project.id, alert_id, acknowledged_until, comment or None, viewer.user.username
    )
    return RedirectResponse(f"/ui/projects/{project.id}/alerts#alert-{alert_id}", status_code=303)


@router.get("/alerts")
def global_alerts(
    request: Request, services: ServicesDep, viewer: ViewerDep, status: AlertStatus | None = None
) -> Response:
    global_reader(viewer.principal)
    found = [a | {"groupId": None} for a in services.alerts.of_group(GLOBAL_GROUP_ID, status)]
    context = {
        "title": "Global alerts",
        "heading": "Global alerts (the installation)",
        "rows": _rows(found),
        "status": status.value if status else "",
        "filters": FILTERS,
        "base": "/ui/alerts",
        "may_ack": _may_own_globally(viewer.principal),
        "ack_role": "Organization Owner",
        "max_comment": MAX_ACK_COMMENT,
    }
    return render(request, "alerts.html", context, viewer=viewer)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge_global_alert(
    services: ServicesDep, viewer: ChangerDep, alert_id: str, acknowledged_until: Until, comment: Comment = ""
) -> Response:
    global_owner(viewer.principal)
    services.alerts.acknowledge(
        GLOBAL_GROUP_ID, alert_id, acknowledged_until, comment or None, viewer.user.username
    )
    return RedirectResponse(f"/ui/alerts#alert-{alert_id}", status_code=303)

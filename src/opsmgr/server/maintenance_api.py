"""Rolling maintenance over HTTP: the agents' routes under ``/agents/api/automation/maintenance/v1`` (project
agent API key, HTTP Basic, as the other agent routes) and the public ``/groups/{id}/maintenance`` routes.

Agent routes, per replica set: ``GET`` the view (change, progress, lease, the other members as their agents
report them), ``POST /lease`` to acquire (optionally recording the ``AcquireMaintenanceLease`` move in the
same transaction), ``PUT /lease`` to renew, ``DELETE /lease`` to release (a denial is 409 with the reason),
``POST /progress`` for a move carried out (with ``refused``: the member's words when it refused a unique
index build's index), ``POST /events`` for decisions, primary sightings and the
measurements the preflight checks need. Handlers are thin: ``maintenance.service`` decides.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.maintenance.leases``,
``opsmgr.restoration.service``, ``opsmgr.store.appdb``, ``opsmgr.server.agent_api``, ``opsmgr.server.auth``,
``opsmgr.server.bounds``, ``opsmgr.server.deps`` and ``opsmgr.server.paging``, ``opsmgr.server.public_api``.
"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request

from opsmgr.errors import Conflict, InvalidInput
from opsmgr.jsontypes import JsonObject
from opsmgr.maintenance.leases import Deny, Grant
from opsmgr.restoration.service import RestorationService
from opsmgr.server.agent_api import Hostname
from opsmgr.server.auth import ProjectAutomationAdmin, ProjectReader, agent_group
from opsmgr.server.bounds import CONNECTIONS, EPOCH_SECONDS, SEQUENCE, bounded
from opsmgr.server.deps import Maintenance, ServicesDep
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX

agent_router = APIRouter(prefix="/agents/api/automation/maintenance/v1/{group_id}/{rs_id}", tags=["agents"])
router = APIRouter(prefix=PREFIX, tags=["maintenance"])


def text(body: JsonObject, name: str) -> str:
    """``body[name]``: a string of 1 to 255 characters (a member, a change id)."""
    value = body.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise InvalidInput(f"{name} must be a string of 1 to 255 characters", field=name)
    return value


def _optional_text(body: JsonObject, name: str) -> str | None:
    return None if body.get(name) is None else text(body, name)


def _object(body: JsonObject, name: str) -> JsonObject | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise InvalidInput(f"{name} must be an object", field=name)
    return value


def restoration_refusal(restoration: RestorationService, group_id: str) -> str | None:
    """Why no member of the project may go down for maintenance now: Restoration Mode (or None)."""
    if restoration.is_active(group_id):
        return f"project {group_id} is in Restoration Mode: no member goes down for maintenance meanwhile"
    return None


def lease_answer(decision: Grant | Deny) -> JsonObject:
    """A grant's lease; a denial is 409 with the reason."""
    if isinstance(decision, Deny):
        raise Conflict(decision.reason, error_code="MAINTENANCE_LEASE_DENIED", reason=decision.reason)
    return {"granted": True, "renewed": decision.renewed, **decision.lease.to_json()}


@agent_router.get("")
def agent_view(
    maintenance: Maintenance, rs_id: str, group_id: str = Depends(agent_group), hostname: str = Hostname
) -> JsonObject:
    return dict(maintenance.agent_view(group_id, rs_id))


@agent_router.post("/lease")
def acquire_lease(
    services: ServicesDep,
    rs_id: str,
    group_id: str = Depends(agent_group),
    body: JsonObject = Body(...),
) -> JsonObject:
    decision = services.maintenance.acquire(
        group_id,
        rs_id,
        text(body, "member"),
        change_id=_optional_text(body, "changeId"),
        move=_object(body, "move"),
        seq=bounded(body, "seq", SEQUENCE),
        refuse=restoration_refusal(services.restoration, group_id),
    )
    return lease_answer(decision)


@agent_router.put("/lease")
def renew_lease(
    maintenance: Maintenance,
    rs_id: str,
    group_id: str = Depends(agent_group),
    body: JsonObject = Body(...),
) -> JsonObject:
    return lease_answer(maintenance.renew(group_id, rs_id, text(body, "member")))


@agent_router.delete("/lease")
def release_lease(
    maintenance: Maintenance,
    rs_id: str,
    group_id: str = Depends(agent_group),
    member: str = Query(..., min_length=1, max_length=255),
) -> JsonObject:
    if not maintenance.release(group_id, rs_id, member):
        raise Conflict(
            f"{member} does not hold the maintenance lease of {rs_id}", error_code="MAINTENANCE_LEASE_DENIED"
        )
    return {"released": True}


@agent_router.post("/progress")
def record_progress(
    maintenance: Maintenance,
    rs_id: str,
    group_id: str = Depends(agent_group),
    body: JsonObject = Body(...),
) -> JsonObject:
    move = _object(body, "move")
    if move is None:
        raise InvalidInput("move is required", field="move")
    seq, at = bounded(body, "seq", SEQUENCE), bounded(body, "at", EPOCH_SECONDS)
    connections = bounded(body, "connections", CONNECTIONS)
    refused = body.get("refused")
    if refused is not None and not isinstance(refused, str):
        raise InvalidInput("refused must be a string: the member's refusal of the index", field="refused")
    progress = maintenance.record(
        group_id,
        rs_id,
        text(body, "changeId"),
        move,
        seq=seq,
        at=at,
        connections=connections,
        refused=refused,
    )
    return {"progress": progress}


@agent_router.post("/events")
def report_events(
    maintenance: Maintenance,
    rs_id: str,
    group_id: str = Depends(agent_group),
    body: JsonObject = Body(...),
) -> JsonObject:
    events = body.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise InvalidInput("events must be a list of objects", field="events")
    extras = _object(body, "extras") or {}
    if not all(isinstance(v, dict) for v in extras.values()):
        raise InvalidInput("extras must map process names to objects", field="extras")
    status = maintenance.report(
        group_id,
        rs_id,
        text(body, "changeId"),
        decision=_object(body, "decision"),
        events=events,
        extras=extras,
        from_primary=body.get("primary") is True,
    )
    return {"status": status}


# --- public -------------------------------------------------------------------------------------------------


@router.get("/groups/{group_id}/maintenance")
def list_changes(
    request: Request, caller: ProjectReader, maintenance: Maintenance, page: int = Page, per: int = PerPage
) -> JsonObject:
    """Every rolling change of the project: state, reason, progress and, when done, its figures."""
    return paginated(request, maintenance.changes(caller.group_id), page, per)


@router.get("/groups/{group_id}/maintenance/{change_id}")
def get_change(caller: ProjectReader, maintenance: Maintenance, change_id: str) -> JsonObject:
    return dict(maintenance.change(caller.group_id, change_id))


@router.delete("/groups/{group_id}/maintenance/replicaSets/{rs_id}/lease")
def force_release_lease(caller: ProjectAutomationAdmin, services: ServicesDep, rs_id: str) -> JsonObject:
    """Take the maintenance lease back from its holder (an operator who knows its member will not return,
    e.g. its host is gone). The procedure still waits for the member's health before the next goes down."""
    services.deployments.release_lease(caller.group_id, rs_id)
    return {"released": True}

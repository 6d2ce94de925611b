"""The supervised unique index build over HTTP: the public routes under
``/groups/{id}/uniqueIndexBuilds`` (Project Owner or Project Automation Admin to start, confirm and cancel;
Project Read Only to read) and the agents' routes under ``/agents/api/automation/indexBuilds/v1/{id}`` (the
active builds, the events of what agents watch and carry out, and ``POST .../{buildId}/step``: the member
whose turn it is goes out of its set as a one-member rolling change under the replica set's maintenance
lease, carried out through the maintenance routes; a denial is 409 with the reason). Thin: the work is
``opsmgr.maintenance.index_service``; starting and confirming are deployment changes, refused (409) in
Restoration Mode, as is a member step.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request

from opsmgr.automation.protocol import INDEX_BUILDS_PATH
from opsmgr.maintenance.index_service import IndexBuildService
from opsmgr.server.agent_api import Hostname
from opsmgr.server.auth import agent_group, public_principal
from opsmgr.server.bounds import POSITION, bounded
from opsmgr.server.maintenance_api import lease_answer, restoration_refusal, text
from opsmgr.server.public_api import PREFIX, group_for, unpaged
from opsmgr.store.appdb import Principal, Role

router = APIRouter(prefix=PREFIX, tags=["uniqueIndexBuilds"])
agent_router = APIRouter(tags=["agents"])


def _service(request: Request) -> IndexBuildService:
    return service_of(request.app.state.ctx)


def service_of(ctx: Any) -> IndexBuildService:
    def write_goal(group_id: str, config: dict[str, Any], version: int) -> None:
        ctx.automation.put_config(group_id, config, allow_unique_indexes=True, expected_version=version)

    return IndexBuildService(
        ctx.stores.app,
        goal=ctx.automation.config,
        statuses=ctx.automation.agent_statuses,
        write_goal=write_goal,
        maintenance=ctx.maintenance,
    )


def _writer(request: Request, principal: Principal, group_id: str) -> str:
    """Project Owner or Project Automation Admin; returns who is calling, for the build's record."""
    group_for(request, principal, group_id, Role.GROUP_AUTOMATION_ADMIN)
    return principal.public_key


@router.post("/groups/{group_id}/uniqueIndexBuilds", status_code=201)
def create_build(
    request: Request,
    group_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    """Start a build of ``{rsName, dbName, collectionName, key: [[field, 1]...], options,
    lockPrimaryWrites}``; it waits for the operator to confirm that writes to the collection are stopped."""
    _writer(request, principal, group_id)
    request.app.state.ctx.guard_deployment_change(group_id)
    return _service(request).create(group_id, body)


@router.get("/groups/{group_id}/uniqueIndexBuilds")
def list_builds(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    return unpaged(_service(request).of_group(group_id), request)


@router.get("/groups/{group_id}/uniqueIndexBuilds/{build_id}")
def get_build(
    request: Request, group_id: str, build_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    return _service(request).get(group_id, build_id)


@router.post("/groups/{group_id}/uniqueIndexBuilds/{build_id}/confirm")
def confirm_build(
    request: Request,
    group_id: str,
    build_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    """``{"writesStopped": true, "operator": "..."}``: writes to the collection are stopped; build."""
    caller = _writer(request, principal, group_id)
    request.app.state.ctx.guard_deployment_change(group_id)
    return _service(request).confirm(group_id, build_id, body, caller)


@router.delete("/groups/{group_id}/uniqueIndexBuilds/{build_id}")
def cancel_build(
    request: Request, group_id: str, build_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """Cancel: the agents unlock the primary if it is held and drop the index wherever it may be."""
    caller = _writer(request, principal, group_id)
    return _service(request).cancel(group_id, build_id, caller)


@agent_router.get(INDEX_BUILDS_PATH.format(group="{group_id}"))
def agent_builds(
    request: Request, group_id: str = Depends(agent_group), hostname: str = Hostname
) -> dict[str, Any]:
    return {"builds": _service(request).for_agent(group_id)}


@agent_router.post(INDEX_BUILDS_PATH.format(group="{group_id}") + "/{build_id}/events")
def agent_event(
    request: Request,
    build_id: str,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    body: dict[str, Any] = Body(...),
) -> dict[str, Any]:
    records = body.get("records")
    for i, record in enumerate(records if isinstance(records, list) else []):
        if isinstance(record, dict):
            bounded(record, "ts", POSITION, f"records[{i}].ts")
    return _service(request).on_event(group_id, build_id, hostname, body)


@agent_router.post(INDEX_BUILDS_PATH.format(group="{group_id}") + "/{build_id}/step")
def take_step(
    request: Request,
    build_id: str,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    body: dict[str, Any] = Body(...),
) -> dict[str, Any]:
    """``{"member": ...}``: the lease granted with the step, and the step (its rolling change's id)."""
    refuse = restoration_refusal(request.app.state.ctx, group_id)
    service = _service(request)
    answer = lease_answer(service.take_step(group_id, build_id, text(body, "member"), refuse=refuse))
    return {**answer, "step": service.get(group_id, build_id)["step"]}

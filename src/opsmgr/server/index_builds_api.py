"""The supervised unique index build over HTTP: the public routes under
``/groups/{id}/uniqueIndexBuilds`` (Project Owner or Project Automation Admin to start, confirm and cancel;
Project Read Only to read) and the agents' routes under ``/agents/api/automation/indexBuilds/v1/{id}`` (the
active builds, the events of what agents watch and carry out, and ``POST .../{buildId}/step``: the member
whose turn it is goes out of its set as a one-member rolling change under the replica set's maintenance
lease, carried out through the maintenance routes; a denial is 409 with the reason). Thin: the work is
``opsmgr.maintenance.index_service``; starting and confirming are deployment changes, refused (409) in
Restoration Mode, as is a member step.

May import ``opsmgr.jsontypes``, ``opsmgr.automation.protocol``, ``opsmgr.maintenance.index_service``,
``opsmgr.store.appdb``, ``opsmgr.server.agent_api``, ``opsmgr.server.auth``, ``opsmgr.server.bodies``,
``opsmgr.server.bounds``, ``opsmgr.server.deps``, ``opsmgr.server.maintenance_api`` and
``opsmgr.server.paging``, ``opsmgr.server.public_api`` and ``opsmgr.timestamps``.
"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Request

from opsmgr.automation.protocol import INDEX_BUILDS_PATH
from opsmgr.jsontypes import JsonObject
from opsmgr.server.agent_api import Hostname
from opsmgr.server.auth import ProjectAutomationAdmin, ProjectReader, agent_group
from opsmgr.server.bodies import ConfirmBuildBody, UniqueIndexBuildBody
from opsmgr.server.bounds import POSITION, bounded
from opsmgr.server.deps import IndexBuilds, ServicesDep
from opsmgr.server.maintenance_api import lease_answer, restoration_refusal, text
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.timestamps import iso_utc_or_none

router = APIRouter(prefix=PREFIX, tags=["uniqueIndexBuilds"])
agent_router = APIRouter(tags=["agents"])


def public_view(build: JsonObject) -> JsonObject:
    """A build as the public API shows it: its instants (epoch milliseconds in the record, which the agents
    read) as ISO-8601 strings, the way Ops Manager writes every instant of its resources."""
    activity = build.get("activity")
    return {
        **build,
        "created": iso_utc_or_none(build.get("created")),
        "updated": iso_utc_or_none(build.get("updated")),
        "activity": {**activity, "at": iso_utc_or_none(activity.get("at"))} if activity else activity,
    }


@router.post("/groups/{group_id}/uniqueIndexBuilds", status_code=201)
def create_build(
    caller: ProjectAutomationAdmin, services: ServicesDep, body: UniqueIndexBuildBody
) -> JsonObject:
    """Start a build of ``{rsName, dbName, collectionName, key: [[field, 1]...], options,
    lockPrimaryWrites}``; it waits for the operator to confirm that writes to the collection are stopped.
    Project Owner or Project Automation Admin."""
    services.deployments.guard(caller.group_id)
    return public_view(services.index_builds.create(caller.group_id, body.as_sent()))


@router.get("/groups/{group_id}/uniqueIndexBuilds")
def list_builds(
    request: Request, caller: ProjectReader, builds: IndexBuilds, page: int = Page, per: int = PerPage
) -> JsonObject:
    return paginated(request, [public_view(b) for b in builds.of_group(caller.group_id)], page, per)


@router.get("/groups/{group_id}/uniqueIndexBuilds/{build_id}")
def get_build(caller: ProjectReader, builds: IndexBuilds, build_id: str) -> JsonObject:
    return public_view(builds.get(caller.group_id, build_id))


@router.post("/groups/{group_id}/uniqueIndexBuilds/{build_id}/confirm")
def confirm_build(
    caller: ProjectAutomationAdmin, services: ServicesDep, build_id: str, body: ConfirmBuildBody
) -> JsonObject:
    """``{"writesStopped": true, "operator": "..."}``: writes to the collection are stopped; build."""
    services.deployments.guard(caller.group_id)
    sent = body.as_sent()
    return public_view(
        services.index_builds.confirm(caller.group_id, build_id, sent, caller.principal.public_key)
    )


@router.delete("/groups/{group_id}/uniqueIndexBuilds/{build_id}")
def cancel_build(caller: ProjectAutomationAdmin, builds: IndexBuilds, build_id: str) -> JsonObject:
    """Cancel: the agents unlock the primary if it is held and drop the index wherever it may be."""
    return public_view(builds.cancel(caller.group_id, build_id, caller.principal.public_key))


@agent_router.get(INDEX_BUILDS_PATH.format(group="{group_id}"))
def agent_builds(
    builds: IndexBuilds, group_id: str = Depends(agent_group), hostname: str = Hostname
) -> JsonObject:
    return {"builds": builds.for_agent(group_id)}


@agent_router.post(INDEX_BUILDS_PATH.format(group="{group_id}") + "/{build_id}/events")
def agent_event(
    builds: IndexBuilds,
    build_id: str,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    body: JsonObject = Body(...),
) -> JsonObject:
    records = body.get("records")
    for i, record in enumerate(records if isinstance(records, list) else []):
        if isinstance(record, dict):
            bounded(record, "ts", POSITION, f"records[{i}].ts")
    return builds.on_event(group_id, build_id, hostname, body)


@agent_router.post(INDEX_BUILDS_PATH.format(group="{group_id}") + "/{build_id}/step")
def take_step(
    services: ServicesDep,
    build_id: str,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    body: JsonObject = Body(...),
) -> JsonObject:
    """``{"member": ...}``: the lease granted with the step, and the step (its rolling change's id)."""
    refuse = restoration_refusal(services.restoration, group_id)
    service = services.index_builds
    answer = lease_answer(service.take_step(group_id, build_id, text(body, "member"), refuse=refuse))
    return {**answer, "step": service.get(group_id, build_id)["step"]}

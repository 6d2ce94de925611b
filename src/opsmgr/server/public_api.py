"""The public REST API under ``/api/public/v1.0`` in Ops Manager's JSON shapes: organizations, projects
(groups), programmatic API keys, agent API keys, automation config and status.

Handlers are thin: authenticate, check the role, call the domain service, shape the answer.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.automation.service``,
``opsmgr.automation.hosts`` (what "recently heard" means), ``opsmgr.store.appdb``, ``opsmgr.server.auth``,
``opsmgr.server.bodies``, ``opsmgr.server.deps``, ``opsmgr.server.etags``, ``opsmgr.server.paging`` and
``opsmgr.timestamps``.
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from opsmgr.automation.hosts import Freshness
from opsmgr.automation.service import AutomationService, ConfigVersionConflict, with_defaults
from opsmgr.errors import Forbidden, InvalidInput, NotFound, PreconditionFailed
from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import (
    OrgOwner,
    OrgReader,
    ProjectAutomationAdmin,
    ProjectOwner,
    ProjectReader,
    public_principal,
)
from opsmgr.server.bodies import AutomationConfigBody
from opsmgr.server.deps import AppDBDep, Automation, ServicesDep
from opsmgr.server.etags import etag, parse_if_match
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.store.appdb import GROUP_ROLES, ORG_ROLES, Principal, Role, parse_roles
from opsmgr.timestamps import epoch_ms

PREFIX = "/api/public/v1.0"
router = APIRouter(prefix=PREFIX, tags=["public"])


# More role names than there are roles is never a list a client meant.
MAX_ROLES = 16


class NameBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=64)


class GroupBody(NameBody):
    orgId: str | None = None


class ApiKeyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    desc: str = Field(min_length=1, max_length=250)
    roles: list[str] = Field(min_length=1, max_length=MAX_ROLES)


class RolesBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    roles: list[str] = Field(min_length=1, max_length=MAX_ROLES)


class AgentKeyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    desc: str = Field(default="", max_length=250)


def org_view(org: JsonObject) -> JsonObject:
    return {"id": org["_id"], "name": org["name"], "isDeleted": False, "links": []}


def group_view(group: JsonObject, automation: AutomationService) -> JsonObject:
    """A project as Ops Manager shows it, with the counts its deployment gives (hosts by replica state, config
    servers and mongos by type, replica sets, shards, agents reporting)."""
    group_id = str(group["_id"])
    config = automation.config(group_id)
    hosts = automation.hosts(group_id)
    states = Counter(h.get("replicaStateName") for h in hosts)
    types = Counter(h.get("typeName") for h in hosts)
    heard = automation.hearing()
    statuses = automation.agent_statuses(group_id)
    return {
        "id": group["_id"],
        "name": group["name"],
        "orgId": group["orgId"],
        "created": group.get("created"),
        "activeAgentCount": sum(1 for s in statuses if heard.of(s.get("receivedAt")) is Freshness.FRESH),
        "hostCounts": {
            "arbiter": states["ARBITER"],
            "config": types["SHARD_CONFIG_PRIMARY"] + types["SHARD_CONFIG_SECONDARY"],
            "primary": states["PRIMARY"],
            "secondary": states["SECONDARY"],
            "mongos": types["SHARD_MONGOS"],
            "master": 0,
            "slave": 0,
        },
        "replicaSetCount": len(config.get("replicaSets") or []),
        "shardCount": sum(len(c.get("shards") or []) for c in config.get("sharding") or []),
        "publicApiEnabled": True,
        "tags": [],
        "links": [],
    }


def groups_page(
    request: Request, groups: list[JsonObject], automation: AutomationService, page: int, per: int
) -> JsonObject:
    """A page of projects, each project's counts read for the page's projects only."""
    listed = paginated(request, groups, page, per)
    return listed | {"results": [group_view(g, automation) for g in listed["results"]]}


def api_key_view(key: JsonObject, private: str | None = None) -> JsonObject:
    view = {
        "id": key["_id"],
        "desc": key.get("desc", ""),
        "publicKey": key["publicKey"],
        "privateKey": private if private is not None else "********-****-****-" + "*" * 12,
        "roles": key.get("roles", []),
        "links": [],
    }
    return view


def agent_key_view(key: JsonObject, plain: str | None = None) -> JsonObject:
    return {
        "_id": key["_id"],
        "id": key["_id"],
        "desc": key.get("desc", ""),
        "key": plain if plain is not None else key["maskedKey"],
        # Stored as an ISO string; this one field Ops Manager sends as epoch milliseconds.
        "createdTime": epoch_ms(key["createdTime"]) if key.get("createdTime") else None,
        "createdBy": key.get("createdBy"),
    }


# Organizations.


@router.get("/orgs")
def list_orgs(
    request: Request,
    appdb: AppDBDep,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
    name: str | None = Query(None, max_length=64, description="Only the organization of this name."),
) -> JsonObject:
    orgs = [
        org_view(o)
        for o in appdb.orgs()
        if principal.can_see_org(o["_id"]) and (name is None or o["name"] == name)
    ]
    return paginated(request, orgs, page, per)


@router.post("/orgs", status_code=201)
def create_org(
    appdb: AppDBDep, body: NameBody, principal: Principal = Depends(public_principal)
) -> JsonObject:
    # Creating an organization is for keys that already own one, as a global owner would.
    if not any(r.get("roleName") == Role.ORG_OWNER.value for r in principal.roles):
        raise Forbidden("Creating an organization needs an ORG_OWNER API key.")
    org = appdb.create_org(body.name)
    appdb.add_roles(principal.key_id, [{"orgId": org["_id"], "roleName": Role.ORG_OWNER.value}])
    return org_view(org)


@router.get("/orgs/{org_id}")
def get_org(caller: OrgReader) -> JsonObject:
    return org_view(caller.org)


@router.get("/orgs/{org_id}/groups")
def list_org_groups(
    request: Request,
    org_id: str,
    appdb: AppDBDep,
    automation: Automation,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    appdb.org(org_id)
    groups = [g for g in appdb.groups() if g["orgId"] == org_id and principal.can_see_group(g)]
    return groups_page(request, groups, automation, page, per)


@router.get("/orgs/{org_id}/apiKeys")
def list_org_keys(
    request: Request, caller: OrgOwner, appdb: AppDBDep, page: int = Page, per: int = PerPage
) -> JsonObject:
    keys = [api_key_view(k) for k in appdb.org_api_keys(caller.org_id)]
    return paginated(request, keys, page, per)


@router.post("/orgs/{org_id}/apiKeys", status_code=201)
def create_org_key(caller: OrgOwner, appdb: AppDBDep, body: ApiKeyBody) -> JsonObject:
    roles = parse_roles(body.roles, ORG_ROLES)
    key, private = appdb.create_api_key(
        body.desc, [{"orgId": caller.org_id, "roleName": r.value} for r in roles]
    )
    return api_key_view(key, private)


@router.get("/orgs/{org_id}/apiKeys/{key_id}")
def get_org_key(caller: OrgOwner, appdb: AppDBDep, key_id: str) -> JsonObject:
    return api_key_view(appdb.org_api_key(caller.org_id, key_id))


@router.delete("/orgs/{org_id}/apiKeys/{key_id}", status_code=204)
def delete_org_key(caller: OrgOwner, appdb: AppDBDep, key_id: str) -> None:
    appdb.delete_org_api_key(caller.org_id, key_id)


# Projects.


@router.get("/groups")
def list_groups(
    request: Request,
    appdb: AppDBDep,
    automation: Automation,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    groups = [g for g in appdb.groups() if principal.can_see_group(g)]
    return groups_page(request, groups, automation, page, per)


# Before every /groups/{group_id}/... route of the application: a project may be named like one of them.
@router.get("/groups/byName/{group_name}")
def get_group_by_name(
    group_name: str, appdb: AppDBDep, automation: Automation, principal: Principal = Depends(public_principal)
) -> JsonObject:
    """The project of this name that the key may read (Ops Manager's "get one project by name")."""
    for group in appdb.groups():
        if group["name"] == group_name and principal.can_see_group(group):
            return group_view(group, automation)
    raise NotFound(f"No group with name {group_name[:64]!r} exists.", error_code="GROUP_NAME_NOT_FOUND")


@router.post("/groups", status_code=201)
def create_group(
    appdb: AppDBDep,
    automation: Automation,
    body: GroupBody,
    principal: Principal = Depends(public_principal),
) -> JsonObject:
    org_id = body.orgId
    if org_id is None:
        owned = [r["orgId"] for r in principal.roles if r.get("roleName") == "ORG_OWNER" and "orgId" in r]
        if len(owned) != 1:
            raise InvalidInput(
                "orgId is required when the API key owns no single organization", field="orgId"
            )
        org_id = owned[0]
    group, agent_key = appdb.create_group_as(principal, body.name, org_id)
    return {**group_view(group, automation), "agentApiKey": agent_key}


@router.get("/groups/{group_id}")
def get_group(caller: ProjectReader, automation: Automation) -> JsonObject:
    return group_view(caller.group, automation)


@router.delete("/groups/{group_id}", status_code=202)
def delete_group(caller: ProjectOwner, appdb: AppDBDep) -> JsonObject:
    appdb.delete_group(caller.group_id)
    return {}


@router.get("/groups/{group_id}/apiKeys")
def list_group_keys(
    request: Request, caller: ProjectOwner, appdb: AppDBDep, page: int = Page, per: int = PerPage
) -> JsonObject:
    keys = [api_key_view(k) for k in appdb.project_api_keys(caller.group_id)]
    return paginated(request, keys, page, per)


@router.post("/groups/{group_id}/apiKeys", status_code=201)
def create_group_key(caller: ProjectOwner, appdb: AppDBDep, body: ApiKeyBody) -> JsonObject:
    roles = parse_roles(body.roles, GROUP_ROLES)
    key, private = appdb.create_api_key(
        body.desc, [{"groupId": caller.group_id, "roleName": r.value} for r in roles]
    )
    return api_key_view(key, private)


@router.patch("/groups/{group_id}/apiKeys/{key_id}")
def assign_group_key(caller: ProjectOwner, appdb: AppDBDep, key_id: str, body: RolesBody) -> JsonObject:
    """Assigns a key of the project's organization to the project with ``roles`` (Ops Manager's "assign an
    organization API key to a project"); a key of another organization is as missing (404)."""
    roles = parse_roles(body.roles, GROUP_ROLES)
    return api_key_view(appdb.assign_api_key(caller.group, key_id, roles))


@router.delete("/groups/{group_id}/apiKeys/{key_id}", status_code=204)
def unassign_group_key(caller: ProjectOwner, appdb: AppDBDep, key_id: str) -> None:
    appdb.unassign_api_key(caller.group_id, key_id)


# Agent API keys.


@router.get("/groups/{group_id}/agentapikeys")
def list_agent_keys(caller: ProjectOwner, appdb: AppDBDep) -> list[JsonObject]:
    return [agent_key_view(k) for k in appdb.agent_keys(caller.group_id)]


@router.post("/groups/{group_id}/agentapikeys", status_code=201)
def create_agent_key(
    caller: ProjectOwner, appdb: AppDBDep, body: AgentKeyBody = Body(default_factory=AgentKeyBody)
) -> JsonObject:
    key, plain = appdb.create_agent_key(caller.group_id, body.desc)
    return agent_key_view(key, plain)


@router.delete("/groups/{group_id}/agentapikeys/{key_id}", status_code=204)
def delete_agent_key(caller: ProjectOwner, appdb: AppDBDep, key_id: str) -> None:
    appdb.delete_agent_key(caller.group_id, key_id)


# Automation.


@router.get("/groups/{group_id}/automationConfig")
def get_automation_config(caller: ProjectReader, automation: Automation, response: Response) -> JsonObject:
    """The goal config with every default Ops Manager shows, so that a typed client can put it back as it
    read it; its ``ETag`` is its version, for a later conditional PUT (``If-Match``)."""
    config = automation.config(caller.group_id)
    response.headers["ETag"] = etag(config["version"])
    return with_defaults(config)


@router.put("/groups/{group_id}/automationConfig")
def put_automation_config(
    caller: ProjectAutomationAdmin,
    services: ServicesDep,
    response: Response,
    body: AutomationConfigBody,
    if_match: str | None = Header(
        None,
        description='Apply only if the config is still at this version (its ETag, "7"), else 412; '
        "without it the later modification wins, as in Ops Manager.",
    ),
) -> JsonObject:
    group_id = caller.group_id
    expected: int | None = None
    if if_match is not None and not (condition := parse_if_match(if_match)).any_version:
        expected = services.automation.version(group_id)
        if not condition.matches(expected):
            raise _stale_config(group_id, if_match, expected)
    try:
        config = services.deployments.put_config(group_id, body.as_sent(), expected_version=expected)
    except ConfigVersionConflict as exc:  # changed between the check above and the write
        raise _stale_config(group_id, if_match or "", exc.parameters["version"]) from None
    response.headers["ETag"] = etag(config["version"])
    return with_defaults(config)


def _stale_config(group_id: str, if_match: str, current: int) -> PreconditionFailed:
    return PreconditionFailed(
        f"If-Match {if_match[:100]} does not match the automation config of project {group_id}, now at "
        f"version {current} (ETag {etag(current)}): read it again and reapply the change",
        error_code="AUTOMATION_CONFIG_VERSION_MISMATCH",
        version=current,
    )


@router.get("/groups/{group_id}/automationStatus")
def get_automation_status(caller: ProjectReader, automation: Automation) -> JsonObject:
    status: JsonObject = automation.automation_status(caller.group_id)
    return status

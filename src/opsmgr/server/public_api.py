"""The public REST API under ``/api/public/v1.0`` in Ops Manager's JSON shapes: organizations, projects
(groups), programmatic API keys, agent API keys, automation config and status, hosts.

Handlers are thin: authenticate, check the role, call the domain service, shape the answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from opsmgr.automation.service import ConfigVersionConflict
from opsmgr.errors import InvalidInput, PreconditionFailed
from opsmgr.server.auth import public_principal
from opsmgr.server.etags import etag, parse_if_match
from opsmgr.store.appdb import GROUP_ROLES, ORG_ROLES, Principal, Role, check_id, parse_roles

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


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def _links(request: Request) -> list[dict[str, str]]:
    return [{"href": str(request.url), "rel": "self"}]


def paginated(
    request: Request, items: list[dict[str, Any]], page_num: int, items_per_page: int
) -> dict[str, Any]:
    start = (page_num - 1) * items_per_page
    return {
        "results": items[start : start + items_per_page],
        "totalCount": len(items),
        "links": _links(request),
    }


def unpaged(items: list[dict[str, Any]], request: Request | None = None) -> dict[str, Any]:
    """A whole list in the shape of a page (``links``: the self link when ``request`` is given)."""
    return {"results": items, "totalCount": len(items), "links": _links(request) if request else []}


Page = Query(1, ge=1, le=100_000, alias="pageNum")
PerPage = Query(100, ge=1, le=500, alias="itemsPerPage")


def org_view(org: dict[str, Any]) -> dict[str, Any]:
    return {"id": org["_id"], "name": org["name"], "isDeleted": False, "links": []}


def group_view(group: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": group["_id"],
        "name": group["name"],
        "orgId": group["orgId"],
        "created": group.get("created"),
        "activeAgentCount": group.get("activeAgentCount", 0),
        "links": [],
    }


def api_key_view(key: dict[str, Any], private: str | None = None) -> dict[str, Any]:
    view = {
        "id": key["_id"],
        "desc": key.get("desc", ""),
        "publicKey": key["publicKey"],
        "privateKey": private if private is not None else "********-****-****-" + "*" * 12,
        "roles": key.get("roles", []),
        "links": [],
    }
    return view


def agent_key_view(key: dict[str, Any], plain: str | None = None) -> dict[str, Any]:
    return {
        "_id": key["_id"],
        "id": key["_id"],
        "desc": key.get("desc", ""),
        "key": plain if plain is not None else key["maskedKey"],
        "createdTime": key.get("createdTime"),
        "createdBy": key.get("createdBy"),
    }


def group_for(request: Request, principal: Principal, group_id: str, role: Role) -> dict[str, Any]:
    group: dict[str, Any] = _ctx(request).appdb.group(group_id)
    principal.require_group(group, role)
    return group


# Organizations.


@router.get("/orgs")
def list_orgs(
    request: Request, principal: Principal = Depends(public_principal), page: int = Page, per: int = PerPage
) -> dict[str, Any]:
    orgs = [org_view(o) for o in _ctx(request).appdb.orgs() if principal.can_see_org(o["_id"])]
    return paginated(request, orgs, page, per)


@router.post("/orgs", status_code=201)
def create_org(
    request: Request, body: NameBody, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    # Creating an organization is for keys that already own one, as a global owner would.
    if not any(r.get("roleName") == Role.ORG_OWNER.value for r in principal.roles):
        from opsmgr.errors import Forbidden

        raise Forbidden("Creating an organization needs an ORG_OWNER API key.")
    ctx = _ctx(request)
    org = ctx.appdb.create_org(body.name)
    ctx.appdb.add_roles(principal.key_id, [{"orgId": org["_id"], "roleName": Role.ORG_OWNER.value}])
    return org_view(org)


@router.get("/orgs/{org_id}")
def get_org(
    request: Request, org_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    org = _ctx(request).appdb.org(org_id)
    principal.require_org(org_id, Role.ORG_READ_ONLY)
    return org_view(org)


@router.get("/orgs/{org_id}/groups")
def list_org_groups(
    request: Request,
    org_id: str,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> dict[str, Any]:
    ctx = _ctx(request)
    ctx.appdb.org(org_id)
    groups = [
        group_view(g) for g in ctx.appdb.groups() if g["orgId"] == org_id and principal.can_see_group(g)
    ]
    return paginated(request, groups, page, per)


@router.get("/orgs/{org_id}/apiKeys")
def list_org_keys(
    request: Request,
    org_id: str,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> dict[str, Any]:
    ctx = _ctx(request)
    ctx.appdb.org(org_id)
    principal.require_org(org_id, Role.ORG_OWNER)
    keys = [api_key_view(k) for k in ctx.appdb.org_api_keys(org_id)]
    return paginated(request, keys, page, per)


@router.post("/orgs/{org_id}/apiKeys", status_code=201)
def create_org_key(
    request: Request, org_id: str, body: ApiKeyBody, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    ctx = _ctx(request)
    ctx.appdb.org(org_id)
    principal.require_org(org_id, Role.ORG_OWNER)
    roles = parse_roles(body.roles, ORG_ROLES)
    key, private = ctx.appdb.create_api_key(
        body.desc, [{"orgId": org_id, "roleName": r.value} for r in roles]
    )
    return api_key_view(key, private)


@router.get("/orgs/{org_id}/apiKeys/{key_id}")
def get_org_key(
    request: Request, org_id: str, key_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    ctx = _ctx(request)
    ctx.appdb.org(org_id)
    principal.require_org(org_id, Role.ORG_OWNER)
    return api_key_view(ctx.appdb.org_api_key(org_id, key_id))


@router.delete("/orgs/{org_id}/apiKeys/{key_id}", status_code=204)
def delete_org_key(
    request: Request, org_id: str, key_id: str, principal: Principal = Depends(public_principal)
) -> None:
    ctx = _ctx(request)
    ctx.appdb.org(org_id)
    principal.require_org(org_id, Role.ORG_OWNER)
    ctx.appdb.delete_org_api_key(org_id, key_id)


# Projects.


@router.get("/groups")
def list_groups(
    request: Request, principal: Principal = Depends(public_principal), page: int = Page, per: int = PerPage
) -> dict[str, Any]:
    groups = [group_view(g) for g in _ctx(request).appdb.groups() if principal.can_see_group(g)]
    return paginated(request, groups, page, per)


@router.post("/groups", status_code=201)
def create_group(
    request: Request, body: GroupBody, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    ctx = _ctx(request)
    org_id = body.orgId
    if org_id is None:
        owned = [r["orgId"] for r in principal.roles if r.get("roleName") == "ORG_OWNER" and "orgId" in r]
        if len(owned) != 1:
            raise InvalidInput(
                "orgId is required when the API key owns no single organization", field="orgId"
            )
        org_id = owned[0]
    check_id(org_id, "orgId")
    ctx.appdb.org(org_id)
    principal.require_org(org_id, Role.ORG_OWNER)
    return group_view(ctx.appdb.create_group(body.name, org_id))


@router.get("/groups/{group_id}")
def get_group(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    return group_view(group_for(request, principal, group_id, Role.GROUP_READ_ONLY))


@router.delete("/groups/{group_id}", status_code=202)
def delete_group(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    _ctx(request).appdb.delete_group(group_id)
    return {}


@router.get("/groups/{group_id}/apiKeys")
def list_group_keys(
    request: Request,
    group_id: str,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    keys = [api_key_view(k) for k in _ctx(request).appdb.project_api_keys(group_id)]
    return paginated(request, keys, page, per)


@router.post("/groups/{group_id}/apiKeys", status_code=201)
def create_group_key(
    request: Request, group_id: str, body: ApiKeyBody, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    roles = parse_roles(body.roles, GROUP_ROLES)
    key, private = _ctx(request).appdb.create_api_key(
        body.desc, [{"groupId": group_id, "roleName": r.value} for r in roles]
    )
    return api_key_view(key, private)


@router.patch("/groups/{group_id}/apiKeys/{key_id}")
def assign_group_key(
    request: Request,
    group_id: str,
    key_id: str,
    body: RolesBody,
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    """Assigns a key of the project's organization to the project with ``roles`` (Ops Manager's "assign an
    organization API key to a project"); a key of another organization is as missing (404)."""
    group = group_for(request, principal, group_id, Role.GROUP_OWNER)
    roles = parse_roles(body.roles, GROUP_ROLES)
    return api_key_view(_ctx(request).appdb.assign_api_key(group, key_id, roles))


@router.delete("/groups/{group_id}/apiKeys/{key_id}", status_code=204)
def unassign_group_key(
    request: Request, group_id: str, key_id: str, principal: Principal = Depends(public_principal)
) -> None:
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    _ctx(request).appdb.unassign_api_key(group_id, key_id)


# Agent API keys.


@router.get("/groups/{group_id}/agentapikeys")
def list_agent_keys(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> list[dict[str, Any]]:
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    return [agent_key_view(k) for k in _ctx(request).appdb.agent_keys(group_id)]


@router.post("/groups/{group_id}/agentapikeys", status_code=201)
def create_agent_key(
    request: Request,
    group_id: str,
    body: AgentKeyBody = Body(default_factory=AgentKeyBody),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    key, plain = _ctx(request).appdb.create_agent_key(group_id, body.desc)
    return agent_key_view(key, plain)


@router.delete("/groups/{group_id}/agentapikeys/{key_id}", status_code=204)
def delete_agent_key(
    request: Request, group_id: str, key_id: str, principal: Principal = Depends(public_principal)
) -> None:
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    _ctx(request).appdb.delete_agent_key(group_id, key_id)


# Automation.


@router.get("/groups/{group_id}/automationConfig")
def get_automation_config(
    request: Request, group_id: str, response: Response, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """The goal config; its ``ETag`` is its version, for a later conditional PUT (``If-Match``)."""
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    config: dict[str, Any] = _ctx(request).automation.config(group_id)
    response.headers["ETag"] = etag(config["version"])
    return config


@router.put("/groups/{group_id}/automationConfig")
def put_automation_config(
    request: Request,
    group_id: str,
    response: Response,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
    if_match: str | None = Header(
        None,
        description='Apply only if the config is still at this version (its ETag, "7"), else 412; '
        "without it the later modification wins, as in Ops Manager.",
    ),
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_AUTOMATION_ADMIN)
    ctx = _ctx(request)
    expected: int | None = None
    if if_match is not None and not (condition := parse_if_match(if_match)).any_version:
        expected = ctx.automation.version(group_id)
        if not condition.matches(expected):
            raise _stale_config(group_id, if_match, expected)
    try:
        config: dict[str, Any] = ctx.put_automation_config(group_id, body, expected_version=expected)
    except ConfigVersionConflict as exc:  # changed between the check above and the write
        raise _stale_config(group_id, if_match or "", exc.parameters["version"]) from None
    response.headers["ETag"] = etag(config["version"])
    return config


def _stale_config(group_id: str, if_match: str, current: int) -> PreconditionFailed:
    return PreconditionFailed(
        f"If-Match {if_match[:100]} does not match the automation config of project {group_id}, now at "
        f"version {current} (ETag {etag(current)}): read it again and reapply the change",
        error_code="AUTOMATION_CONFIG_VERSION_MISMATCH",
        version=current,
    )


@router.get("/groups/{group_id}/automationStatus")
def get_automation_status(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    status: dict[str, Any] = _ctx(request).automation.automation_status(group_id)
    return status


@router.get("/groups/{group_id}/hosts")
def list_hosts(
    request: Request,
    group_id: str,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    return paginated(request, _ctx(request).automation.hosts(group_id), page, per)

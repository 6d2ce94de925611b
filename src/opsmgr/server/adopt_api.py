"""``POST /api/public/v1.0/orgs/{orgId}/adoptedGroups``: adopt a project lost with both installations from
its agents (``restoration.adopt``), for an Organization Owner. opsmgr-only: Ops Manager has no such route.

The body is ``{groupId, agentApiKey, hosts, name?}``: the ``mmsGroupId`` and ``mmsApiKey`` of a host's
``automation-agent.config`` and the deployment's hosts, the only ones whose agents may speak for the project.
The answer (201) is the project as ``GET /groups/{id}`` shows it, with ``adoptedHosts`` and its Restoration
Mode state (ARMED until its agents are heard). A malformed id, key or host is 400, an id or name already in
use 409, a caller without Organization Owner 403.

May import ``opsmgr.jsontypes``, ``opsmgr.restoration.adopt``, ``opsmgr.server.auth``, ``opsmgr.server.deps``
and ``opsmgr.server.public_api``.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from opsmgr.jsontypes import JsonObject
from opsmgr.restoration.adopt import MAX_HOSTS, adopt, parse_request
from opsmgr.server.auth import OrgOwner
from opsmgr.server.deps import Automation, Restoration, ServicesDep
from opsmgr.server.public_api import PREFIX, group_view

router = APIRouter(prefix=PREFIX, tags=["adoption"])


class AdoptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groupId: str = Field(max_length=24)
    agentApiKey: str = Field(max_length=128)
    hosts: list[str] = Field(max_length=MAX_HOSTS)
    name: str | None = Field(default=None, max_length=64)


@router.post("/orgs/{org_id}/adoptedGroups", status_code=201)
def adopt_group(
    caller: OrgOwner,
    body: AdoptBody,
    services: ServicesDep,
    automation: Automation,
    restoration: Restoration,
) -> JsonObject:
    """Recreate the project with its id and agent key; its configuration is then taken from its agents."""
    request = parse_request(body.groupId, body.agentApiKey, body.name, body.hosts)
    group = adopt(services.stores.app, request, caller.org_id, restoration_enabled=restoration.enabled)
    view = restoration.view(request.group_id)
    return {
        **group_view(group, automation),
        "adoptedHosts": list(request.hosts),
        "restorationMode": {"state": view["state"], "awaitingHosts": view["awaitingHosts"]},
    }

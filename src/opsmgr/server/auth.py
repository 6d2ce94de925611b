"""Who is calling: programmatic API keys over HTTP Digest for the public API, project agent API keys over
HTTP Basic for the agent API.

Owns the FastAPI dependencies that authenticate a request and the short-lived cache of agent key digests
that keeps the agent poll path off the database. Role checks themselves live in ``store.appdb.Principal``.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store.appdb``, ``opsmgr.server.deps`` and
``opsmgr.server.services`` (the agent key cache's entry).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from opsmgr.errors import Unauthorized
from opsmgr.jsontypes import JsonObject
from opsmgr.server.deps import AppDBDep, services_of
from opsmgr.server.services import ALL_AGENT_KEYS
from opsmgr.store.appdb import AppDB, Principal, Role, agent_key_matches


def public_principal(request: Request) -> Principal:
    """FastAPI dependency: the API key behind valid Digest credentials, or a 401 carrying fresh challenges."""
    appdb, digest = (services := services_of(request)).appdb, services.digest
    # Clients sign the request target as sent, before any percent-decoding.
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    uri = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    keys: dict[str, JsonObject] = {}

    def private_key(username: str) -> str | None:
        key = appdb.api_key_by_public(username)
        if key is None:
            return None
        keys[username] = key
        return str(appdb.private_key(key))

    username = digest.verify(
        request.method, uri, request.headers.get("authorization"), password_for=private_key
    )
    return Principal(keys[username])


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return user, password


async def agent_group(request: Request, group_id: str) -> str:
    """FastAPI dependency for the agent API: the project id, once its agent API key checks out."""
    services = services_of(request)
    creds = _basic(request.headers.get("authorization"))
    if creds is None or creds[0] != group_id:
        raise Unauthorized("Agent requests must carry HTTP Basic credentials: mmsGroupId and mmsApiKey.")
    cache = services.caches.agent_keys
    table = cache.peek(ALL_AGENT_KEYS)
    if table is None:
        table = await run_in_threadpool(
            cache.get, ALL_AGENT_KEYS, lambda _all: services.appdb.agent_key_hashes_by_group()
        )
    if not agent_key_matches(creds[1], table.get(group_id, frozenset())):
        raise Unauthorized(f"Invalid agent API key for project {group_id}.")
    return group_id


@dataclass(frozen=True)
class ProjectCaller:
    """A caller whose API key holds the role a route asks for on the project, and the project."""

    principal: Principal
    group: JsonObject

    @property
    def group_id(self) -> str:
        return str(self.group["_id"])


def _project_role(role: Role) -> Callable[[str, AppDB, Principal], ProjectCaller]:
    def check(
        group_id: str, appdb: AppDBDep, principal: Principal = Depends(public_principal)
    ) -> ProjectCaller:
        group = appdb.group(group_id)
        principal.require_group(group, role)
        return ProjectCaller(principal, group)

    return check


# The role checks of the project routes, one dependency each (Project Owner holds them all).
ProjectReader = Annotated[ProjectCaller, Depends(_project_role(Role.GROUP_READ_ONLY))]
ProjectOwner = Annotated[ProjectCaller, Depends(_project_role(Role.GROUP_OWNER))]
ProjectBackupAdmin = Annotated[ProjectCaller, Depends(_project_role(Role.GROUP_BACKUP_ADMIN))]
ProjectAutomationAdmin = Annotated[ProjectCaller, Depends(_project_role(Role.GROUP_AUTOMATION_ADMIN))]


@dataclass(frozen=True)
class OrgCaller:
    """A caller whose API key holds the role a route asks for on the organization, and the organization."""

    principal: Principal
    org: JsonObject

    @property
    def org_id(self) -> str:
        return str(self.org["_id"])


def _org_role(role: Role) -> Callable[[str, AppDB, Principal], OrgCaller]:
    def check(org_id: str, appdb: AppDBDep, principal: Principal = Depends(public_principal)) -> OrgCaller:
        org = appdb.org(org_id)
        principal.require_org(org_id, role)
        return OrgCaller(principal, org)

    return check


OrgReader = Annotated[OrgCaller, Depends(_org_role(Role.ORG_READ_ONLY))]
OrgOwner = Annotated[OrgCaller, Depends(_org_role(Role.ORG_OWNER))]

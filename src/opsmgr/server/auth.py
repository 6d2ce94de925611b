"""Who is calling: programmatic API keys over HTTP Digest for the public API, project agent API keys over
HTTP Basic for the agent API.

Owns the FastAPI dependencies that authenticate a request and the short-lived cache of agent key digests
that keeps the agent poll path off the database. Role checks themselves live in ``store.appdb.Principal``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from opsmgr.errors import Unauthorized
from opsmgr.store.appdb import Principal, agent_key_matches


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def public_principal(request: Request) -> Principal:
    """FastAPI dependency: the API key behind valid Digest credentials, or a 401 carrying fresh challenges."""
    ctx = _ctx(request)
    # Clients sign the request target as sent, before any percent-decoding.
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    uri = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    keys: dict[str, dict[str, Any]] = {}

    def private_key(username: str) -> str | None:
        key = ctx.appdb.api_key_by_public(username)
        if key is None:
            return None
        keys[username] = key
        return str(ctx.appdb.private_key(key))

    username = ctx.digest.verify(
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
    ctx = _ctx(request)
    creds = _basic(request.headers.get("authorization"))
    if creds is None or creds[0] != group_id:
        raise Unauthorized("Agent requests must carry HTTP Basic credentials: mmsGroupId and mmsApiKey.")
    hashes = ctx.agent_keys.peek(group_id)
    if hashes is None:
        hashes = await run_in_threadpool(ctx.agent_keys.get, group_id, ctx.appdb.agent_key_hashes)
    if not agent_key_matches(creds[1], hashes):
        raise Unauthorized(f"Invalid agent API key for project {group_id}.")
    return group_id

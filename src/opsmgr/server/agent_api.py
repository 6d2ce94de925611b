"""The agent API: automation config polls and status reports, authenticated with the project's agent API
key (HTTP Basic: mmsGroupId / mmsApiKey, as ``automation-agent.config`` holds them).

The poll is the server's hottest path: it answers 304 "unchanged" unless the agent's held version ``cv`` is
older than the project's goal version.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.automation.status``, ``opsmgr.server.auth``,
``opsmgr.server.deps`` and ``opsmgr.server.work``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import re
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from opsmgr.automation.status import MAX_VERSION, StatusReport
from opsmgr.errors import InvalidInput
from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import agent_group
from opsmgr.server.deps import Restoration, ServicesDep, services_of
from opsmgr.server.work import with_work

router = APIRouter(prefix="/agents/api/automation", tags=["agents"])

Hostname = Query(..., min_length=1, max_length=255)
# Uploads come in a burst (every project restored at once completes its collection within a poll or two) and
# each waits for the store's write lock a few times: enough threads that one project's wait does not hold the
# next one's exit, few enough not to crowd out the status reports.
_UPLOAD_THREADS = ThreadPoolExecutor(8, thread_name_prefix="restoration-upload")
_CV = re.compile(r"-1|0|[1-9][0-9]{0,18}")


_POLL_PARAMETERS = [
    {
        "name": "hostname",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "The polling agent's host.",
    },
    {
        "name": "cv",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": -1, "maximum": 2**62, "default": -1},
        "description": "The automation config version the agent holds.",
    },
]


def _poll_params(request: Request) -> tuple[str, int]:
    # Parsed by hand rather than by FastAPI's parameter machinery: this is the hottest route in the server.
    query = request.query_params
    hostname = query.get("hostname", "")
    if not 1 <= len(hostname) <= 255:
        raise InvalidInput("hostname is required (1 to 255 characters)", field="hostname")
    raw_cv = query.get("cv", "-1")
    # int() would take "1_0", " 5", "+5" and non-ASCII digits: a version is written in ASCII digits only.
    if not _CV.fullmatch(raw_cv):
        raise InvalidInput(
            f"cv must be -1 or a whole number in ASCII digits, not {raw_cv[:40]!r}", field="cv"
        )
    cv = int(raw_cv)
    if not -1 <= cv <= MAX_VERSION:
        raise InvalidInput("cv must be between -1 and 2^62", field="cv")
    return hostname, cv


@router.get(
    "/conf/v1/{group_id}",
    response_model=None,
    openapi_extra={"parameters": _POLL_PARAMETERS},
    responses={200: {"description": "The goal automation config"}, 304: {"description": "Unchanged"}},
)
async def poll_config(request: Request, group_id: str) -> Response:
    polls = services_of(request).polls
    await agent_group(request, group_id)
    hostname, cv = _poll_params(request)
    # Most polls are answered from the version cache without touching the database or leaving the loop.
    if polls.unchanged(group_id, cv):
        return Response(status_code=304)
    config = await run_in_threadpool(polls.config_for, group_id, hostname, cv)
    if config is None:
        return Response(status_code=304)
    return JSONResponse(config)


@router.get("/noop", include_in_schema=False)
async def noop() -> Response:
    """Answers exactly what an unchanged poll answers, doing nothing: the poll benchmark's baseline."""
    return Response(status_code=304)


@router.post("/status/v1/{group_id}")
def report_status(
    services: ServicesDep,
    body: StatusReport,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
) -> JsonObject:
    """An agent's report; kept (bounded to what the server reads) only for hosts of the project. The
    answer carries the host's work when it changed."""
    answer = services.polls.record_status(group_id, hostname, body)
    return with_work(services, group_id, hostname, body.workVersion, answer)


@router.post("/restoration/v1/{group_id}/config")
async def upload_config(
    restoration: Restoration,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    body: JsonObject = Body(...),
) -> JsonObject:
    """Restoration Mode: the agent asked for it uploads the config it holds, with its secrets redacted.

    Run on threads of its own: the one upload that ends a project's mode would otherwise queue behind every
    status report in the shared worker pool, and after a restore every agent of the installation reports at
    once (measured at 1,000 agents: 4.3 s median in that queue)."""
    call = functools.partial(contextvars.copy_context().run, restoration.on_upload, group_id, hostname, body)
    return dict(await asyncio.get_running_loop().run_in_executor(_UPLOAD_THREADS, call))

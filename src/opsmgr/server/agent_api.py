"""The agent API: automation config polls and status reports, authenticated with the project's agent API
key (HTTP Basic: mmsGroupId / mmsApiKey, as ``automation-agent.config`` holds them).

The poll is the server's hottest path: it answers 304 "unchanged" unless the agent's held version ``cv`` is
older than the project's goal version.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from opsmgr.server.auth import agent_group

router = APIRouter(prefix="/agents/api/automation", tags=["agents"])

Hostname = Query(..., min_length=1, max_length=255)


@router.get("/conf/v1/{group_id}", response_model=None)
async def poll_config(
    request: Request,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    cv: int = Query(-1, ge=-1, le=2**62),
) -> Response:
    ctx: Any = request.app.state.ctx
    # Most polls are answered from the version cache without touching the database or leaving the loop.
    if ctx.unchanged_for_agent(group_id, cv):
        return Response(status_code=304)
    config = await run_in_threadpool(ctx.config_for_agent, group_id, hostname, cv)
    if config is None:
        return Response(status_code=304)
    return JSONResponse(config)


@router.get("/noop", include_in_schema=False)
async def noop() -> Response:
    """Answers exactly what an unchanged poll answers, doing nothing: the poll benchmark's baseline."""
    return Response(status_code=304)


@router.post("/status/v1/{group_id}")
def report_status(
    request: Request,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    body: dict[str, Any] = Body(...),
) -> dict[str, Any]:
    ctx: Any = request.app.state.ctx
    return dict(ctx.record_agent_status(group_id, hostname, body))

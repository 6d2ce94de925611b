"""The agent side of backup, under ``/agents/api/backup/v1/{groupId}`` with the project's agent API key
(HTTP Basic, as the automation routes): what a host must back up and restore (``jobs``), initial syncs,
slice uploads (the daemon's ingest makes a partial upload invisible), the acknowledged position, gap reports,
and automated restores (documents to load, progress reports).

May import ``opsmgr.errors``, ``opsmgr.automation.protocol``, ``opsmgr.backup.daemon``,
``opsmgr.server.auth``, ``opsmgr.server.backup_api``, ``opsmgr.server.bounds`` and ``opsmgr.server.work``.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse

from opsmgr.backup.daemon import Source
from opsmgr.errors import InvalidInput, NotFound
from opsmgr.server import backup_api
from opsmgr.server.auth import agent_group
from opsmgr.server.bounds import GapReport, PositionParam, SyncFinish, SyncStart, within

router = APIRouter(prefix="/agents/api/backup/v1/{group_id}", tags=["agents"])
Hostname = Query(..., min_length=1, max_length=255)


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def _source(ctx: Any, group_id: str, source_id: str) -> Source:
    if not source_id.isalnum() or (src := ctx.backup.source(source_id)).groupId != group_id:
        raise NotFound(f"no backup source {source_id} in project {group_id}", sourceId=source_id)
    return cast(Source, src)


def _source_id(ctx: Any, group_id: str, source_id: str) -> str:
    return _source(ctx, group_id, source_id).id


def backed_up(ctx: Any, group_id: str, members: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """The project's backed-up replica sets, each with its members' process names (``members``: the config's
    replica sets); the agent whose process is PRIMARY ships each."""
    return [
        {
            "sourceId": s.source_id,
            "clusterId": s.cluster_id,
            "replicaSetName": s.name,
            "members": list(members.get(s.name, ())),
        }
        for s in backup_api.clusters_of(ctx).started_sources(group_id)
    ]


def loading(ctx: Any, group_id: str, processes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The automated restores into the project still loading, each with the processes (as the goal config
    runs them) that have not loaded yet."""
    return [
        {"jobId": job.job_id, "processes": [processes[n] for n in job.pending if n in processes]}
        for job in backup_api.restores_of(ctx).loading(group_id)
    ]


@router.get("/jobs")
def jobs(request: Request, group_id: str = Depends(agent_group), hostname: str = Hostname) -> dict[str, Any]:
    """What this host backs up and restores: its share of the work its status answers carry."""
    from opsmgr.server.work import project_work

    return dict(project_work(_ctx(request), group_id).for_host(hostname)["backup"])


@router.get("/sources/{source_id}/acknowledged")
def acknowledged(
    request: Request,
    source_id: str,
    group_id: str = Depends(agent_group),
    source_last: PositionParam | None = Query(None, alias="sourceLast"),
) -> dict[str, Any]:
    """Where to resume; ``sourceLast`` (the newest entry of the source's oplog the agent sees) feeds the
    backup lag alert, and every call counts as the agent's contact with the daemon."""
    ctx = _ctx(request)
    src = _source(ctx, group_id, source_id)
    sid = src.id
    if source_last is not None:
        within(src.position_kind, source_last, "sourceLast")
    ctx.backup.note_agent(sid, source_last)
    return dict(ctx.backup.acknowledged(sid).to_json())


@router.post("/sources/{source_id}/sync")
def start_sync(
    request: Request, source_id: str, body: SyncStart, group_id: str = Depends(agent_group)
) -> dict[str, Any]:
    ctx = _ctx(request)
    src = _source(ctx, group_id, source_id)
    return {"syncId": ctx.backup.start_sync(src.id, within(src.position_kind, body.position, "position"))}


def _docs(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    docs = body.get("docs")
    if not isinstance(docs, list) or not all(
        isinstance(d, list) and len(d) == 2 and isinstance(d[0], str) and isinstance(d[1], dict) for d in docs
    ):
        raise InvalidInput("docs must be a list of [namespace, document] pairs", field="docs")
    return [(d[0], d[1]) for d in docs]


@router.post("/sources/{source_id}/sync/{sync_id}/documents")
def sync_documents(
    request: Request,
    source_id: str,
    sync_id: str,
    group_id: str = Depends(agent_group),
    body: dict[str, Any] = Body(...),
) -> dict[str, Any]:
    ctx = _ctx(request)
    sid = _source_id(ctx, group_id, source_id)
    return {"loaded": ctx.backup.sync_documents(sid, sync_id, _docs(body))}


@router.post("/sources/{source_id}/sync/{sync_id}/finish")
def finish_sync(
    request: Request,
    source_id: str,
    sync_id: str,
    body: SyncFinish,
    group_id: str = Depends(agent_group),
) -> dict[str, Any]:
    ctx = _ctx(request)
    src = _source(ctx, group_id, source_id)
    min_valid = within(src.position_kind, body.minValid, "minValid")
    return dict(ctx.backup.finish_sync(src.id, sync_id, min_valid).to_json())


@router.post("/sources/{source_id}/slices")
async def upload_slice(
    request: Request, source_id: str, group_id: str = Depends(agent_group)
) -> dict[str, Any]:
    """A slice in ``backup.slices`` wire format; the answer carries the acknowledged tip."""
    from starlette.concurrency import run_in_threadpool

    ctx = _ctx(request)
    data = await request.body()
    sid = await run_in_threadpool(_source_id, ctx, group_id, source_id)
    ctx.backup.note_agent(sid)
    result = await run_in_threadpool(ctx.backup.ingest_slice_bytes, sid, data)
    return dict(result.to_json())


@router.post("/sources/{source_id}/gap")
def report_gap(
    request: Request, source_id: str, body: GapReport, group_id: str = Depends(agent_group)
) -> dict[str, Any]:
    ctx = _ctx(request)
    src = _source(ctx, group_id, source_id)
    first = body.firstAvailable
    if first is not None:
        within(src.position_kind, first, "firstAvailable")
    ctx.backup.note_agent(src.id)
    ctx.backup.report_gap(src.id, first, body.detail[:500])
    return dict(ctx.backup.acknowledged(src.id).to_json())


@router.get("/restores/{job_id}/documents")
def restore_documents(
    request: Request, job_id: str, group_id: str = Depends(agent_group)
) -> StreamingResponse:
    """The restored documents as JSON lines; the job is RUNNING from the first download on."""
    restores = backup_api.restores_of(_ctx(request))
    resolved = restores.open_for_loading(group_id, job_id)  # refuses (409) before the response starts
    return backup_api.stream(restores, resolved, job_id)


@router.post("/restores/{job_id}/progress")
def restore_progress(
    request: Request,
    job_id: str,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    body: dict[str, Any] = Body(...),
) -> dict[str, Any]:
    """An agent restored (``DONE``) or failed to restore (``FAILED``) its processes of the target; the job is
    FINISHED when every process of the target is done, and the target's processes are enabled again."""
    restores = backup_api.restores_of(_ctx(request))
    job = restores.report(
        group_id, job_id, hostname, body.get("processes"), body.get("state"), body.get("detail", "")
    )
    return {"statusName": job["statusName"], "pending": job.get("pending", [])}

"""The agent side of backup, under ``/agents/api/backup/v1/{groupId}`` with the project's agent API key
(HTTP Basic, as the automation routes): what a host must back up and restore (``jobs``), initial syncs,
slice uploads (the daemon's ingest makes a partial upload invisible), the acknowledged position, gap reports,
and automated restores (documents to load, progress reports).

May import ``opsmgr.errors``, ``opsmgr.jsontypes``, ``opsmgr.backup.daemon``, ``opsmgr.server.auth``,
``opsmgr.server.backup_api``, ``opsmgr.server.bounds``, ``opsmgr.server.deps`` and ``opsmgr.server.work``.
"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.errors import InvalidInput, NotFound
from opsmgr.jsontypes import JsonObject
from opsmgr.server import backup_api
from opsmgr.server.auth import agent_group
from opsmgr.server.bounds import GapReport, PositionParam, SyncFinish, SyncStart, within
from opsmgr.server.deps import Backup, Restores, ServicesDep, services_of
from opsmgr.server.work import project_work

router = APIRouter(prefix="/agents/api/backup/v1/{group_id}", tags=["agents"])
Hostname = Query(..., min_length=1, max_length=255)


def _source(backup: BackupDaemon, group_id: str, source_id: str) -> Source:
    if not source_id.isalnum() or (src := backup.source(source_id)).groupId != group_id:
        raise NotFound(f"no backup source {source_id} in project {group_id}", sourceId=source_id)
    return src


def _source_id(backup: BackupDaemon, group_id: str, source_id: str) -> str:
    return _source(backup, group_id, source_id).id


@router.get("/jobs")
def jobs(services: ServicesDep, group_id: str = Depends(agent_group), hostname: str = Hostname) -> JsonObject:
    """What this host backs up and restores: its share of the work its status answers carry."""
    return dict(project_work(services, group_id).for_host(hostname)["backup"])


@router.get("/sources/{source_id}/acknowledged")
def acknowledged(
    backup: Backup,
    source_id: str,
    group_id: str = Depends(agent_group),
    source_last: PositionParam | None = Query(None, alias="sourceLast"),
) -> JsonObject:
    """Where to resume; ``sourceLast`` (the newest entry of the source's oplog the agent sees) feeds the
    backup lag alert, and every call counts as the agent's contact with the daemon."""
    src = _source(backup, group_id, source_id)
    if source_last is not None:
        within(src.position_kind, source_last, "sourceLast")
    backup.note_agent(src.id, source_last)
    return dict(backup.acknowledged(src.id).to_json())


@router.post("/sources/{source_id}/sync")
def start_sync(
    backup: Backup, source_id: str, body: SyncStart, group_id: str = Depends(agent_group)
) -> JsonObject:
    src = _source(backup, group_id, source_id)
    return {"syncId": backup.start_sync(src.id, within(src.position_kind, body.position, "position"))}


def _docs(body: JsonObject) -> list[tuple[str, JsonObject]]:
    docs = body.get("docs")
    if not isinstance(docs, list) or not all(
        isinstance(d, list) and len(d) == 2 and isinstance(d[0], str) and isinstance(d[1], dict) for d in docs
    ):
        raise InvalidInput("docs must be a list of [namespace, document] pairs", field="docs")
    return [(d[0], d[1]) for d in docs]


@router.post("/sources/{source_id}/sync/{sync_id}/documents")
def sync_documents(
    backup: Backup,
    source_id: str,
    sync_id: str,
    group_id: str = Depends(agent_group),
    body: JsonObject = Body(...),
) -> JsonObject:
    sid = _source_id(backup, group_id, source_id)
    return {"loaded": backup.sync_documents(sid, sync_id, _docs(body))}


@router.post("/sources/{source_id}/sync/{sync_id}/finish")
def finish_sync(
    backup: Backup, source_id: str, sync_id: str, body: SyncFinish, group_id: str = Depends(agent_group)
) -> JsonObject:
    src = _source(backup, group_id, source_id)
    min_valid = within(src.position_kind, body.minValid, "minValid")
    return dict(backup.finish_sync(src.id, sync_id, min_valid).to_json())


@router.post("/sources/{source_id}/slices")
async def upload_slice(request: Request, source_id: str, group_id: str = Depends(agent_group)) -> JsonObject:
    """A slice in ``backup.slices`` wire format; the answer carries the acknowledged tip."""
    # The hottest backup route takes no sync dependency (each would cost a trip through the thread pool).
    backup = services_of(request).backup
    data = await request.body()
    sid = await run_in_threadpool(_source_id, backup, group_id, source_id)
    backup.note_agent(sid)
    result = await run_in_threadpool(backup.ingest_slice_bytes, sid, data)
    return dict(result.to_json())


@router.post("/sources/{source_id}/gap")
def report_gap(
    backup: Backup, source_id: str, body: GapReport, group_id: str = Depends(agent_group)
) -> JsonObject:
    src = _source(backup, group_id, source_id)
    first = body.firstAvailable
    if first is not None:
        within(src.position_kind, first, "firstAvailable")
    backup.note_agent(src.id)
    backup.report_gap(src.id, first, body.detail[:500])
    return dict(backup.acknowledged(src.id).to_json())


@router.get("/restores/{job_id}/documents")
def restore_documents(
    restores: Restores,
    job_id: str,
    group_id: str = Depends(agent_group),
    replica_set: str | None = Query(None, alias="replicaSet", max_length=64),
) -> StreamingResponse:
    """The restored documents as JSON lines (of a sharded cluster's job, those of the part restored into the
    target's ``replicaSet``); the job is RUNNING from the first download on."""
    # Refuses (409) before the response starts.
    resolved = restores.open_for_loading(group_id, job_id, replica_set)
    return backup_api.stream(restores, [(None, resolved)], job_id)


@router.post("/restores/{job_id}/progress")
def restore_progress(
    restores: Restores,
    job_id: str,
    group_id: str = Depends(agent_group),
    hostname: str = Hostname,
    body: JsonObject = Body(...),
) -> JsonObject:
    """An agent restored (``DONE``) or failed to restore (``FAILED``) its processes of the target; the job is
    FINISHED when every process of the target is done, and the target's processes are enabled again."""
    job = restores.report(
        group_id, job_id, hostname, body.get("processes"), body.get("state"), body.get("detail", "")
    )
    return {"statusName": job["statusName"], "pending": job.get("pending", [])}

"""A server acting as the **secondary** of a primary: a project whose deployment is the primary's three
backing databases, backed up by the agent on the primary's host, and restore jobs that restore them.

Public API (``/api/public/v1.0``; reads GROUP_READ_ONLY, changes GROUP_BACKUP_ADMIN):

- ``POST /groups/{id}/backingDatabases`` ``{clusterName, hostname}``: the deployment of a primary's backing
  databases: a cluster (in ``backup_clusters``, so ``/clusters/{cid}`` and ``/backupConfigs/{cid}`` know it)
  with one ``BACKING_DATABASE`` source per store (``app``, ``snapshot``, ``oplog``), backup STARTED.
  Creating it again with the same name returns it.
- ``GET /groups/{id}/backingDatabases[/{cid}]``: per store, its snapshots and PITR window, and the times to
  which all three can be restored together.
- ``POST /groups/{id}/backingDatabases/{cid}/restoreJobs`` ``{stores: {app: TARGET, snapshot: TARGET, ...}}``
  with each TARGET a ``snapshotId``, ``pointInTimeUTCMillis`` or ``oplogTs``/``oplogInc``: plans every store
  first (400 outside its window with the restorable ranges, 409 "snapshot blocks missing"), then records the
  job. The restore itself is carried out on the primary's host (``opsmgr backup restore-stores``), which
  streams each store's restored documents from ``.../restoreJobs/{jobId}/stores/{name}/documents`` (JSON
  lines ending with a ``{"end": true, "documents": N}`` line, so a cut stream is never taken for a whole one)
  and reports the outcome with ``PATCH .../restoreJobs/{jobId}`` ``{statusName: FINISHED|FAILED}``. A
  finished restore asks the agent for a new initial sync of each restored store: the restored database
  continues from a new history, not from the backed-up one.

Agent API: ``GET /agents/api/backup/v1/{id}/backingDatabases?hostname=`` names the sources the agent on
that host ships; the syncs and slices go through the routes replica sets use (``backup_agent_api``).

The clusters are ``backup.clusters``'s and the restore jobs ``backup.jobs``'s (``backing_restore_jobs``):
handlers parse, call one of them and shape the answer.

May import ``opsmgr.errors``, ``opsmgr.automation.protocol``, ``opsmgr.backup``, ``opsmgr.store.appdb``,
``opsmgr.store.engine``, ``opsmgr.server.auth``, ``opsmgr.server.backup_api``, ``opsmgr.server.public_api``
and ``opsmgr.server.work``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse

from opsmgr.backup.clusters import BACKING_KIND, DEFAULT_BACKING_NAME, Clusters
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.jobs import BackingRestores
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.store_restore import LABELS, StoreName
from opsmgr.server import backup_api
from opsmgr.server.auth import agent_group, public_principal
from opsmgr.server.public_api import PREFIX, group_for, unpaged
from opsmgr.store.appdb import Principal, Role

router = APIRouter(prefix=PREFIX, tags=["backup"])
agent_router = APIRouter(prefix="/agents/api/backup/v1/{group_id}", tags=["agents"])


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def _daemon(ctx: Any) -> BackupDaemon:
    daemon: BackupDaemon = ctx.backup
    return daemon


def _clusters(ctx: Any) -> Clusters:
    return backup_api.clusters_of(ctx)


def _restores(ctx: Any) -> BackingRestores:
    return BackingRestores(ctx.stores.app, ctx.backup, ctx.deployments.guard)


def _json(ctx: Any, cluster: dict[str, Any]) -> dict[str, Any]:
    daemon = _daemon(ctx)
    sources = _clusters(ctx).backing_sources(cluster)
    stores = []
    for name in StoreName:
        src = sources.get(name.value)
        if src is None:
            continue
        status = daemon.status(src.id)
        stores.append(
            {
                "name": name.value,
                "label": LABELS[name],
                "sourceId": src.id,
                "snapshots": daemon.snapshots_json(src.id),
                "pitrWindow": daemon.window_json(src.id),
                "tip": status["tip"],
                "syncRequired": status["syncRequired"],
                "lastSliceReceivedAt": status["lastSliceReceivedAt"],
            }
        )
    together = daemon.cluster_window(cluster["groupId"], cluster["_id"])
    return {
        "id": cluster["_id"],
        "groupId": cluster["groupId"],
        "clusterName": cluster["replicaSetName"],
        "typeName": BACKING_KIND,
        "hostname": cluster.get("hostname"),
        "stores": stores,
        "restorableTogether": [{"startUTCMillis": lo, "endUTCMillis": hi} for lo, hi in together],
    }


@router.post("/groups/{group_id}/backingDatabases", status_code=201)
def create_backing(
    request: Request,
    group_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    name, hostname = body.get("clusterName", DEFAULT_BACKING_NAME), body.get("hostname")
    return _json(ctx, _clusters(ctx).create_backing(group_id, name, hostname))


@router.get("/groups/{group_id}/backingDatabases")
def list_backing(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    return unpaged([_json(ctx, d) for d in _clusters(ctx).backing_clusters(group_id)])


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}")
def get_backing(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    return _json(ctx, _clusters(ctx).backing(group_id, cluster_id))


# Restore jobs.


def _job_json(ctx: Any, job: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in job.items() if k != "_id"}
    out["id"] = job["_id"]
    stores = {}
    for name, entry in job["stores"].items():
        progress = _daemon(ctx).progress(f"{job['_id']}.{name}")
        stores[name] = {
            **entry,
            **(
                {"progress": {"fraction": progress.fraction, "message": progress.message}} if progress else {}
            ),
        }
    out["stores"] = stores
    return out


@router.post("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs")
def create_restore(
    request: Request,
    group_id: str,
    cluster_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    return _job_json(ctx, _restores(ctx).create(group_id, cluster_id, body.get("stores")))


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs/{job_id}")
def get_restore(
    request: Request,
    group_id: str,
    cluster_id: str,
    job_id: str,
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    return _job_json(ctx, _restores(ctx).get(group_id, cluster_id, job_id))


def _lines(ctx: Any, resolved: ResolvedRestore, progress_id: str) -> Iterator[bytes]:
    count = 0
    for ns, doc in _daemon(ctx).restore_documents(resolved, progress_id):
        count += 1
        yield backup_api.document_line(ns, doc)
    yield (json.dumps({"end": True, "documents": count}) + "\n").encode()


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs/{job_id}/stores/{name}/documents")
def restore_documents(
    request: Request,
    group_id: str,
    cluster_id: str,
    job_id: str,
    name: str,
    principal: Principal = Depends(public_principal),
) -> StreamingResponse:
    """One store's restored documents as JSON lines, the last line ``{"end": true, "documents": N}``."""
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    resolved = _restores(ctx).open_store(group_id, cluster_id, job_id, name)  # 409 before the response starts
    return StreamingResponse(_lines(ctx, resolved, f"{job_id}.{name}"), media_type="application/x-ndjson")


@router.patch("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs/{job_id}")
def finish_restore(
    request: Request,
    group_id: str,
    cluster_id: str,
    job_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    """The restoring host reports the outcome; FINISHED asks for a new initial sync of each restored store."""
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    restores = _restores(ctx)
    job = restores.finish(group_id, cluster_id, job_id, body.get("statusName"), body.get("detail", ""))
    return _job_json(ctx, job)


def backing_sources(ctx: Any, group_id: str) -> list[dict[str, Any]]:
    """The backing-database sources with backup STARTED, each with the ``hostname`` that ships it (None: the
    agent of any host)."""
    return [
        {"sourceId": s.source_id, "clusterId": s.cluster_id, "name": s.name, "hostname": s.hostname}
        for s in _clusters(ctx).started_backing_sources(group_id)
    ]


@agent_router.get("/backingDatabases")
def agent_sources(
    request: Request, group_id: str = Depends(agent_group), hostname: str = Query(..., min_length=1)
) -> dict[str, Any]:
    """The backing-database sources the agent on ``hostname`` ships: its share of the work its status
    answers carry."""
    from opsmgr.server.work import project_work

    return {"sources": project_work(_ctx(request), group_id).for_host(hostname)["backing"]}

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

Owns the ``backing_restore_jobs`` collection of the application database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.store_restore import LABELS, StoreName
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.server import backup_api
from opsmgr.server.auth import agent_group, public_principal
from opsmgr.server.public_api import PREFIX, group_for, unpaged
from opsmgr.store.appdb import Principal, Role
from opsmgr.store.engine import new_id

router = APIRouter(prefix=PREFIX, tags=["backup"])
agent_router = APIRouter(prefix="/agents/api/backup/v1/{group_id}", tags=["agents"])

KIND = "BACKING_DATABASES"
JOBS = "backing_restore_jobs"
DEFAULT_NAME = "backing-databases"
FINAL = ("FINISHED", "FAILED")


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def _daemon(ctx: Any) -> BackupDaemon:
    daemon: BackupDaemon = ctx.backup
    return daemon


def _backing_cluster(ctx: Any, group_id: str, cluster_id: str) -> dict[str, Any]:
    doc = backup_api.cluster(ctx, group_id, cluster_id)
    if doc.get("kind") != KIND:
        raise NotFound(f"cluster {cluster_id} is not a deployment of backing databases", clusterId=cluster_id)
    return doc


def _sources(ctx: Any, cluster: dict[str, Any]) -> dict[str, Source]:
    return {s.name: s for s in _daemon(ctx).sources(cluster["groupId"], cluster["_id"])}


def _json(ctx: Any, cluster: dict[str, Any]) -> dict[str, Any]:
    daemon = _daemon(ctx)
    sources = _sources(ctx, cluster)
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
        "typeName": KIND,
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
    name = body.get("clusterName", DEFAULT_NAME)
    hostname = body.get("hostname")
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= 64
        or not name.replace("-", "").replace("_", "").isalnum()
    ):
        raise InvalidInput("clusterName must be 1 to 64 letters, digits, - or _", field="clusterName")
    if hostname is not None and (not isinstance(hostname, str) or not 0 < len(hostname) <= 255):
        raise InvalidInput("hostname must be the primary's host name", field="hostname")
    with ctx.stores.app.tx() as t:
        found = t.find(backup_api.CLUSTERS, groupId=group_id, replicaSetName=name)
        if found and found[0].get("kind") != KIND:
            raise Conflict(f"project {group_id} already has a replica set named {name}", field="clusterName")
        cluster = found[0] if found else {"_id": new_id(), "groupId": group_id, "replicaSetName": name}
        t.put(backup_api.CLUSTERS, {**cluster, "kind": KIND, "hostname": hostname})
        t.put(backup_api.CONFIGS, {"_id": cluster["_id"], "groupId": group_id, "statusName": "STARTED"})
    for store in StoreName:
        _daemon(ctx).register_source(group_id, cluster["_id"], store.value, SourceKind.BACKING_DATABASE)
    ctx.stores.app.notify(WORK_CHANGED, group_id)  # once the sources exist: agents ship them
    return _json(ctx, _backing_cluster(ctx, group_id, cluster["_id"]))


@router.get("/groups/{group_id}/backingDatabases")
def list_backing(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    docs = ctx.stores.app.find(backup_api.CLUSTERS, groupId=group_id, kind=KIND)
    return unpaged([_json(ctx, d) for d in docs])


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}")
def get_backing(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    return _json(ctx, _backing_cluster(ctx, group_id, cluster_id))


# Restore jobs.


def _plan(ctx: Any, src: Source, target: Any, name: str) -> ResolvedRestore:
    if not isinstance(target, dict):
        raise InvalidInput(f"stores.{name} must be an object with the restore target", field=f"stores.{name}")
    fields = {k: target[k] for k in backup_api.TARGET_FIELDS if k in target}
    return _daemon(ctx).restore_plan(src.id, fields)


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
    ctx.deployments.guard(group_id)
    cluster = _backing_cluster(ctx, group_id, cluster_id)
    sources = _sources(ctx, cluster)
    targets = body.get("stores")
    if not isinstance(targets, dict) or not targets:
        raise InvalidInput("stores must map app, snapshot and/or oplog to a restore target", field="stores")
    stores = {}
    for name, target in targets.items():
        if name not in sources:
            raise InvalidInput(f"no backed-up store {name!r}: use {sorted(sources)}", field=f"stores.{name}")
        resolved = _plan(ctx, sources[name], target, name)
        stores[name] = {
            "sourceId": sources[name].id,
            "target": target,
            "targetPosition": resolved.plan.target,
            "plan": resolved.to_json(),
        }
    job = {
        "_id": new_id(),
        "groupId": group_id,
        "clusterId": cluster_id,
        "stores": stores,
        "created": int(time.time() * 1000),
        "statusName": "QUEUED",
    }
    ctx.stores.app.insert(JOBS, job)
    return _job_json(ctx, job)


def _job(reader: Any, group_id: str, cluster_id: str, job_id: str) -> dict[str, Any]:
    """The job through ``reader`` (the store, or a transaction that changes it)."""
    job = backup_api.owned(reader, JOBS, job_id, groupId=group_id, clusterId=cluster_id)
    if job is None:
        raise NotFound(f"no restore job {job_id} of backing databases", jobId=job_id)
    return job


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
    return _job_json(ctx, _job(ctx.stores.app, group_id, cluster_id, job_id))


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
    job = _job(ctx.stores.app, group_id, cluster_id, job_id)
    if name not in job["stores"]:
        raise NotFound(f"restore job {job_id} does not restore the {name} store", store=name)
    if job["statusName"] in FINAL:
        raise Conflict(f"restore job {job_id} is already {job['statusName']}", jobId=job_id)
    entry = job["stores"][name]
    src = _daemon(ctx).source(entry["sourceId"])
    resolved = _plan(ctx, src, entry["target"], name)  # refuses (409) before the response starts
    if job["statusName"] == "QUEUED":
        ctx.stores.app.put(JOBS, {**job, "statusName": "RUNNING", "started": int(time.time() * 1000)})
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
    status = body.get("statusName")
    if status not in FINAL:
        raise InvalidInput("statusName must be FINISHED or FAILED", field="statusName")
    with ctx.stores.app.tx() as t:
        job = _job(t, group_id, cluster_id, job_id)
        if job["statusName"] in FINAL:
            raise Conflict(f"restore job {job_id} is already {job['statusName']}", jobId=job_id)
        job.update(
            statusName=status, finished=int(time.time() * 1000), detail=str(body.get("detail", ""))[:1000]
        )
        t.put(JOBS, job)
    if status == "FINISHED":
        for name, entry in job["stores"].items():
            _daemon(ctx).require_resync(
                entry["sourceId"],
                f"the primary's {name} store was restored by job {job_id}: a new initial sync",
            )
    return _job_json(ctx, job)


def backing_sources(ctx: Any, group_id: str) -> list[dict[str, Any]]:
    """The backing-database sources with backup STARTED, each with the ``hostname`` that ships it (None: the
    agent of any host)."""
    out = []
    for cluster in ctx.stores.app.find(backup_api.CLUSTERS, groupId=group_id, kind=KIND):
        if backup_api.backup_status(ctx, cluster["_id"]) != "STARTED":
            continue
        for name, src in _sources(ctx, cluster).items():
            host = cluster.get("hostname")
            out.append({"sourceId": src.id, "clusterId": cluster["_id"], "name": name, "hostname": host})
    return out


@agent_router.get("/backingDatabases")
def agent_sources(
    request: Request, group_id: str = Depends(agent_group), hostname: str = Query(..., min_length=1)
) -> dict[str, Any]:
    """The backing-database sources the agent on ``hostname`` ships: its share of the work its status
    answers carry."""
    from opsmgr.server.work import project_work

    return {"sources": project_work(_ctx(request), group_id).for_host(hostname)["backing"]}

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
  job. With ``delivery: AGENT`` (what ``opsmgr backup restore-stores`` asks for; ``force`` travels with
  it) the backing agent on the primary's host carries it out: the job is in its work list
  (``backingRestores``), it streams each store from the agent route below, reports ``progress`` and the
  outcome, and a public PATCH is refused (409). With ``delivery: CLI`` (the default: ``opsmgr drill`` into
  its sandbox) the host that asked streams each store's restored documents from
  ``.../restoreJobs/{jobId}/stores/{name}/documents`` (JSON lines ending with a ``{"end": true,
  "documents": N}`` line, so a cut stream is never taken for a whole one) and reports the outcome with
  ``PATCH .../restoreJobs/{jobId}`` ``{statusName: FINISHED|FAILED}``. A
  finished restore asks the agent for a new initial sync of each restored store: the restored database
  continues from a new history, not from the backed-up one; a job created with ``purpose: DRILL`` restored a
  drill's sandbox and leaves production as it was.
- ``DELETE /groups/{id}/backingDatabases/{cid}/restoreJobs/{jobId}``: cancels a restore the agent carries
  out (``backup.restore_cancel``): the job stays listed, ``phase`` CANCELLED, ``statusName`` KILLED, with its
  ``cancellation`` statement; 409 for a job that ended or a drill's (delivery CLI). Every job's JSON has
  ``phase`` (opsmgr's state); ``statusName`` is the same but for a cancelled job.
- ``POST /groups/{id}/backingDatabases/{cid}/drills``: a restore drill's report (``backup.drills``), 201;
  ``GET`` the deployment's drills, newest first, with their RPO and RTO.

Agent API: ``GET /agents/api/backup/v1/{id}/backingDatabases?hostname=`` names the sources the agent on
that host ships; the syncs and slices go through the routes replica sets use (``backup_agent_api``).
``GET .../backingRestores/{jobId}/stores/{name}/documents`` streams a store of a job the agent carries out
(404 for any other job), ``POST .../backingRestores/{jobId}/progress`` takes its reports
(``backup.backing_reports`` checks them).

The clusters are ``backup.clusters``'s and the restore jobs ``backup.jobs``'s (``backing_restore_jobs``),
each one of the server's services (``server.deps``): handlers parse, call one of them and shape the answer.

May import ``opsmgr.errors``, ``opsmgr.jsontypes``, ``opsmgr.backup``, ``opsmgr.server.auth``,
``opsmgr.server.backup_api``, ``opsmgr.server.bodies``, ``opsmgr.server.deps``, ``opsmgr.server.paging``,
``opsmgr.server.public_api``, ``opsmgr.server.work`` and ``opsmgr.timestamps``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse

from opsmgr.backup.clusters import BACKING_KIND, DEFAULT_BACKING_NAME, Clusters
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.job_records import OPS_MANAGER_STATUS, BackingDelivery, JobState
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.store_restore import LABELS, StoreName
from opsmgr.errors import Conflict
from opsmgr.jsontypes import JsonObject
from opsmgr.server import backup_api
from opsmgr.server.auth import ProjectBackupAdmin, ProjectReader, agent_group
from opsmgr.server.bodies import BackingDatabasesBody, BackingOutcomeBody, BackingRestoreBody, DrillBody
from opsmgr.server.deps import BackingRestoresDep, Backup, ClustersDep, ServicesDep
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.server.work import project_work
from opsmgr.timestamps import iso_utc_or_none

router = APIRouter(prefix=PREFIX, tags=["backup"])
agent_router = APIRouter(prefix="/agents/api/backup/v1/{group_id}", tags=["agents"])


def _json(backup: BackupDaemon, clusters: Clusters, cluster: JsonObject) -> JsonObject:
    sources = clusters.backing_sources(cluster)
    stores = []
    for name in StoreName:
        src = sources.get(name.value)
        if src is None:
            continue
        status = backup.status(src.id)
        stores.append(
            {
                "name": name.value,
                "label": LABELS[name],
                "sourceId": src.id,
                "snapshots": backup.snapshots_json(src.id),
                "pitrWindow": backup.window_json(src.id),
                "tip": status["tip"],
                "syncRequired": status["syncRequired"],
                "lastSliceReceivedAt": iso_utc_or_none(status["lastSliceReceivedAt"]),
            }
        )
    together = backup.cluster_window(cluster["groupId"], cluster["_id"])
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
    caller: ProjectBackupAdmin, clusters: ClustersDep, backup: Backup, body: BackingDatabasesBody
) -> JsonObject:
    sent = body.as_sent()
    name, hostname = sent.get("clusterName", DEFAULT_BACKING_NAME), sent.get("hostname")
    return _json(backup, clusters, clusters.create_backing(caller.group_id, name, hostname))


@router.get("/groups/{group_id}/backingDatabases")
def list_backing(
    request: Request,
    caller: ProjectReader,
    clusters: ClustersDep,
    backup: Backup,
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    found = [_json(backup, clusters, d) for d in clusters.backing_clusters(caller.group_id)]
    return paginated(request, found, page, per)


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}")
def get_backing(caller: ProjectReader, clusters: ClustersDep, backup: Backup, cluster_id: str) -> JsonObject:
    return _json(backup, clusters, clusters.backing(caller.group_id, cluster_id))


# Restore jobs.


def _job_json(backup: BackupDaemon, job: JsonObject) -> JsonObject:
    out = {k: v for k, v in job.items() if k != "_id"}
    out["id"] = job["_id"]
    out["phase"] = job["statusName"]
    if job["statusName"] == JobState.CANCELLED:  # as a deployment's cancelled job shows it
        out["statusName"] = OPS_MANAGER_STATUS[JobState.CANCELLED]
    # Stored as epoch milliseconds; written as ISO-8601 strings like every instant of Ops Manager's jobs.
    out.update({k: iso_utc_or_none(job.get(k)) for k in ("created", "started", "finished") if k in job})
    stores = {}
    for name, entry in job["stores"].items():
        progress = backup.progress(f"{job['_id']}.{name}")
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
    caller: ProjectBackupAdmin,
    restores: BackingRestoresDep,
    backup: Backup,
    cluster_id: str,
    body: BackingRestoreBody,
) -> JsonObject:
    sent = body.as_sent()
    job = restores.create(
        caller.group_id,
        cluster_id,
        sent.get("stores"),
        sent.get("purpose"),
        sent.get("delivery"),
        sent.get("force"),
    )
    return _job_json(backup, job)


@router.post("/groups/{group_id}/backingDatabases/{cluster_id}/drills", status_code=201)
def record_drill(
    caller: ProjectBackupAdmin, services: ServicesDep, clusters: ClustersDep, cluster_id: str, body: DrillBody
) -> JsonObject:
    clusters.backing(caller.group_id, cluster_id)
    return services.drills.record(caller.group_id, cluster_id, body.as_sent())


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}/drills")
def list_drills(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    clusters: ClustersDep,
    cluster_id: str,
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    """The deployment's restore drills, newest first."""
    clusters.backing(caller.group_id, cluster_id)
    return paginated(request, services.drills.history(caller.group_id, cluster_id), page, per)


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs")
def list_restores(
    request: Request,
    caller: ProjectReader,
    restores: BackingRestoresDep,
    backup: Backup,
    cluster_id: str,
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    """The backing databases' restore jobs, newest first (the restore history)."""
    jobs = [_job_json(backup, job) for job in restores.of_cluster(caller.group_id, cluster_id)]
    return paginated(request, jobs, page, per)


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs/{job_id}")
def get_restore(
    caller: ProjectReader, restores: BackingRestoresDep, backup: Backup, cluster_id: str, job_id: str
) -> JsonObject:
    return _job_json(backup, restores.get(caller.group_id, cluster_id, job_id))


def _lines(backup: BackupDaemon, resolved: ResolvedRestore, progress_id: str) -> Iterator[bytes]:
    count = 0
    for ns, doc in backup.restore_documents(resolved, progress_id):
        count += 1
        yield backup_api.document_line(ns, doc)
    yield (json.dumps({"end": True, "documents": count}) + "\n").encode()


@router.get("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs/{job_id}/stores/{name}/documents")
def restore_documents(
    caller: ProjectBackupAdmin,
    restores: BackingRestoresDep,
    backup: Backup,
    cluster_id: str,
    job_id: str,
    name: str,
) -> StreamingResponse:
    """One store's restored documents as JSON lines, the last line ``{"end": true, "documents": N}``."""
    resolved = restores.open_store(
        caller.group_id, cluster_id, job_id, name
    )  # 409 before the response starts
    return StreamingResponse(_lines(backup, resolved, f"{job_id}.{name}"), media_type="application/x-ndjson")


@router.patch("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs/{job_id}")
def finish_restore(
    caller: ProjectBackupAdmin,
    restores: BackingRestoresDep,
    backup: Backup,
    cluster_id: str,
    job_id: str,
    body: BackingOutcomeBody,
) -> JsonObject:
    """The restoring host reports the outcome; FINISHED asks for a new initial sync of each restored store."""
    sent = body.as_sent()
    if restores.get(caller.group_id, cluster_id, job_id).get("delivery") == BackingDelivery.AGENT:
        raise Conflict(
            f"restore job {job_id} is carried out by the backing agent, which reports its outcome",
            error_code="RESTORE_BY_AGENT",
            jobId=job_id,
        )
    job = restores.finish(caller.group_id, cluster_id, job_id, sent.get("statusName"), sent.get("detail", ""))
    return _job_json(backup, job)


@router.delete("/groups/{group_id}/backingDatabases/{cluster_id}/restoreJobs/{job_id}")
def cancel_restore(
    caller: ProjectBackupAdmin, restores: BackingRestoresDep, backup: Backup, cluster_id: str, job_id: str
) -> JsonObject:
    """Cancels a restore the backing agent carries out: CANCELLED (``statusName`` KILLED) with the statement
    of what each store now holds (``backup.restore_cancel``); the agent stops at its next batch."""
    return _job_json(backup, restores.cancel(caller.group_id, cluster_id, job_id))


@agent_router.get("/backingDatabases")
def agent_sources(
    services: ServicesDep, group_id: str = Depends(agent_group), hostname: str = Query(..., min_length=1)
) -> JsonObject:
    """The backing-database sources the agent on ``hostname`` ships: its share of the work its status
    answers carry."""
    return {"sources": project_work(services, group_id).for_host(hostname)["backing"]}


@agent_router.get("/backingRestores/{job_id}/stores/{name}/documents")
def agent_restore_documents(
    restores: BackingRestoresDep,
    backup: Backup,
    job_id: str,
    name: str,
    group_id: str = Depends(agent_group),
) -> StreamingResponse:
    """One store's restored documents for the backing agent carrying the job out (JSON lines as above)."""
    job = restores.agent_job(group_id, job_id)
    resolved = restores.open_store(group_id, job.cluster_id, job_id, name)
    return StreamingResponse(_lines(backup, resolved, f"{job_id}.{name}"), media_type="application/x-ndjson")


@agent_router.post("/backingRestores/{job_id}/progress")
def agent_restore_report(
    restores: BackingRestoresDep,
    backup: Backup,
    job_id: str,
    group_id: str = Depends(agent_group),
    body: JsonObject = Body(...),
) -> JsonObject:
    """The backing agent's progress (``{progress}``) or outcome (``{statusName, detail, outcome}``)."""
    return _job_json(backup, restores.agent_report(group_id, job_id, body))

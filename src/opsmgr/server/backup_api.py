"""The public backup API in Ops Manager's shapes: clusters, backup configurations, snapshot schedules,
snapshots with the point-in-time window, and restore jobs (automated into a deployment, or an HTTP download
of the restored documents as JSON lines, through a URL that expires and serves ``maxDownloads`` downloads).

Owns three collections of the application database: ``backup_clusters`` (a stable cluster id per project and
replica set name), ``backup_configs`` (a cluster's ``statusName``) and ``backup_restore_jobs``. The backup
work itself is the daemon's (``ctx.backup``). Reads need GROUP_READ_ONLY; changes GROUP_BACKUP_ADMIN (which
a GROUP_OWNER holds). A restore job is a deployment change: Restoration Mode refuses it (409). A download
URL is a credential: only keys that may restore (GROUP_BACKUP_ADMIN) see it, as in Ops Manager, where Project
Read Only can neither create nor download restores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import StreamingResponse

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.backup.daemon import BackupDaemon, SourceKind
from opsmgr.errors import InvalidInput, NotFound
from opsmgr.server.auth import public_principal
from opsmgr.server.download_grants import DeliveryStatus, DownloadGrant, no_such_download, token_for
from opsmgr.server.public_api import PREFIX, group_for, unpaged
from opsmgr.store.appdb import Principal, Role
from opsmgr.store.engine import new_id

router = APIRouter(prefix=PREFIX, tags=["backup"])
download_router = APIRouter(tags=["backup"])

CLUSTERS = "backup_clusters"
CONFIGS = "backup_configs"
JOBS = "backup_restore_jobs"
DOWNLOAD_PATH = "/backup/restore/{job_id}/{token}"
MAX_DOWNLOADS = 100
STATUSES = ("STARTED", "STOPPED", "TERMINATING")


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def replica_sets(ctx: Any, group_id: str) -> list[str]:
    return [rs["_id"] for rs in ctx.automation.config(group_id).get("replicaSets", [])]


def cluster_id_for(ctx: Any, group_id: str, rs_name: str) -> str:
    """The project's stable id for a replica set, created on first sight."""
    with ctx.stores.app.tx() as t:
        found = t.find(CLUSTERS, groupId=group_id, replicaSetName=rs_name)
        if found:
            return str(found[0]["_id"])
        doc = {"_id": new_id(), "groupId": group_id, "replicaSetName": rs_name}
        t.insert(CLUSTERS, doc)
        return str(doc["_id"])


def owned(reader: Any, collection: str, doc_id: str, **owner: str) -> dict[str, Any] | None:
    """A copy of document ``doc_id`` of ``collection`` (read through a store or a transaction) when its
    fields are ``owner`` (its project, its cluster), else None; ids are alphanumeric."""
    doc = reader.get(collection, doc_id) if doc_id.isalnum() else None
    if doc is None or any(doc[k] != v for k, v in owner.items()):
        return None
    return dict(doc)


def cluster(ctx: Any, group_id: str, cluster_id: str) -> dict[str, Any]:
    doc = owned(ctx.stores.app, CLUSTERS, cluster_id, groupId=group_id)
    if doc is None:
        raise NotFound(f"no cluster {cluster_id} in project {group_id}", clusterId=cluster_id)
    return doc


def cluster_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "groupId": doc["groupId"],
        "clusterName": doc["replicaSetName"],
        "replicaSetName": doc["replicaSetName"],
        "typeName": "REPLICA_SET",
    }


def backup_status(ctx: Any, cluster_id: str) -> str:
    doc = ctx.stores.app.get(CONFIGS, cluster_id)
    return str(doc["statusName"]) if doc else "STOPPED"


def started_sources(ctx: Any, group_id: str) -> list[dict[str, Any]]:
    """The project's clusters with backup STARTED and their daemon source ids."""
    daemon: BackupDaemon = ctx.backup
    out = []
    for doc in ctx.stores.app.find(CONFIGS, groupId=group_id, statusName="STARTED"):
        c = cluster(ctx, group_id, doc["_id"])
        for src in daemon.sources(group_id, c["_id"]):
            out.append({"sourceId": src.id, "clusterId": c["_id"], "replicaSetName": c["replicaSetName"]})
    return out


@router.get("/groups/{group_id}/clusters")
def list_clusters(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """One cluster per replica set of the project's automation config."""
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    ids = [cluster_id_for(ctx, group_id, name) for name in replica_sets(ctx, group_id)]
    return unpaged([cluster_json(cluster(ctx, group_id, i)) for i in ids])


@router.get("/groups/{group_id}/clusters/{cluster_id}")
def get_cluster(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    return cluster_json(cluster(_ctx(request), group_id, cluster_id))


def _config_json(ctx: Any, group_id: str, cluster_id: str) -> dict[str, Any]:
    return {"groupId": group_id, "clusterId": cluster_id, "statusName": backup_status(ctx, cluster_id)}


@router.get("/groups/{group_id}/backupConfigs/{cluster_id}")
def get_backup_config(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    cluster(ctx, group_id, cluster_id)
    return _config_json(ctx, group_id, cluster_id)


@router.patch("/groups/{group_id}/backupConfigs/{cluster_id}")
def patch_backup_config(
    request: Request,
    group_id: str,
    cluster_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    """``statusName`` STARTED registers the replica set with the daemon; TERMINATING deletes its backups."""
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    c = cluster(ctx, group_id, cluster_id)
    status = body.get("statusName")
    if status not in STATUSES:
        raise InvalidInput(f"statusName must be one of {list(STATUSES)}", field="statusName")
    daemon: BackupDaemon = ctx.backup
    if status == "STARTED":
        daemon.register_source(group_id, cluster_id, c["replicaSetName"], SourceKind.REPLICA_SET)
    if status == "TERMINATING":
        for src in daemon.sources(group_id, cluster_id):
            daemon.remove_source(src.id)
        status = "STOPPED"  # terminated at once: nothing remains to wait for
    with ctx.stores.app.tx() as t:
        t.put(CONFIGS, {"_id": cluster_id, "groupId": group_id, "statusName": status})
        t.notify(WORK_CHANGED, group_id)
    return _config_json(ctx, group_id, cluster_id)


def _source(ctx: Any, group_id: str, cluster_id: str) -> Any:
    cluster(ctx, group_id, cluster_id)
    sources = ctx.backup.sources(group_id, cluster_id)
    if not sources:
        raise NotFound(f"cluster {cluster_id} is not backed up", clusterId=cluster_id)
    return sources[0]


@router.get("/groups/{group_id}/backupConfigs/{cluster_id}/snapshotSchedule")
def get_schedule(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    src = _source(_ctx(request), group_id, cluster_id)
    return {"groupId": group_id, "clusterId": cluster_id, **src.schedule.to_json()}


@router.patch("/groups/{group_id}/backupConfigs/{cluster_id}/snapshotSchedule")
def patch_schedule(
    request: Request,
    group_id: str,
    cluster_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    src = _source(ctx, group_id, cluster_id)
    fields = {k: v for k, v in body.items() if k not in ("groupId", "clusterId", "links")}
    schedule = ctx.backup.set_schedule(src.id, fields)
    return {"groupId": group_id, "clusterId": cluster_id, **schedule.to_json()}


@router.get("/groups/{group_id}/clusters/{cluster_id}/snapshots")
def list_snapshots(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """The snapshots, newest first, and beside them the point-in-time window as ranges (holes between)."""
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    src = _source(ctx, group_id, cluster_id)
    return {**unpaged(ctx.backup.snapshots_json(src.id)), "pitrWindow": ctx.backup.window_json(src.id)}


@router.post("/groups/{group_id}/clusters/{cluster_id}/snapshots")
def take_snapshot(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """An on-demand snapshot, taken by the daemon's next tick."""
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    cluster(ctx, group_id, cluster_id)
    ids = ctx.backup.request_cluster_snapshot(group_id, cluster_id)
    return {"groupId": group_id, "clusterId": cluster_id, "snapshotIds": ids, "statusName": "QUEUED"}


@router.get("/groups/{group_id}/clusters/{cluster_id}/snapshots/{snapshot_id}")
def get_snapshot(
    request: Request,
    group_id: str,
    cluster_id: str,
    snapshot_id: str,
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    src = _source(ctx, group_id, cluster_id)
    for snap in ctx.backup.snapshots_json(src.id):
        if snap.get("id") == snapshot_id:
            return dict(snap)
    raise NotFound(f"no snapshot {snapshot_id}", snapshotId=snapshot_id)


# Restore jobs.

TARGET_FIELDS = ("snapshotId", "pointInTimeUTCMillis", "oplogTs", "oplogInc")


def _delivery(ctx: Any, principal: Principal, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    delivery = body.get("delivery")
    if not isinstance(delivery, dict):
        raise InvalidInput("delivery is required", field="delivery")
    method = delivery.get("methodName")
    if method == "HTTP":
        hours = _count(delivery, "expirationHours", 168)
        return {
            "methodName": "HTTP",
            "expirationHours": hours,
            "maxDownloads": _count(delivery, "maxDownloads"),
        }
    if method == "AUTOMATED_RESTORE":
        target_group = delivery.get("targetGroupId")
        target_cluster = delivery.get("targetClusterId")
        if not isinstance(target_group, str) or not isinstance(target_cluster, str):
            raise InvalidInput(
                "AUTOMATED_RESTORE needs targetGroupId and targetClusterId", field="delivery.targetClusterId"
            )
        group_for(request, principal, target_group, Role.GROUP_BACKUP_ADMIN)
        ctx.deployments.guard(target_group)
        target = cluster(ctx, target_group, target_cluster)
        return {
            "methodName": "AUTOMATED_RESTORE",
            "targetGroupId": target_group,
            "targetClusterId": target_cluster,
            "targetReplicaSetName": target["replicaSetName"],
        }
    raise InvalidInput("delivery.methodName must be AUTOMATED_RESTORE or HTTP", field="delivery.methodName")


def _count(delivery: dict[str, Any], name: str, most: int = MAX_DOWNLOADS) -> int:
    value = delivery.get(name, 1)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise InvalidInput(f"{name} must be an integer from 1 to {most}", field=f"delivery.{name}")
    return value


def target_processes(ctx: Any, group_id: str, rs_name: str) -> list[dict[str, Any]]:
    """The processes of a replica set in the project's goal config, as the agents run them."""
    config = ctx.automation.config(group_id)
    members: list[dict[str, Any]] = next(
        (rs["members"] for rs in config.get("replicaSets", []) if rs["_id"] == rs_name), []
    )
    names = {m["host"] for m in members}
    return [p for p in config.get("processes", []) if p["name"] in names]


def set_disabled(ctx: Any, group_id: str, names: list[str], disabled: bool) -> None:
    """An automated restore disables the target's processes in the goal config, so that their agents stop
    all of them before any is loaded (a member restarted early would sync the old data back from a member
    not yet restored), and enables them again once every one is loaded."""
    config = ctx.automation.config(group_id)
    for p in config.get("processes", []):
        if p["name"] in names:
            p["disabled"] = disabled
    ctx.deployments.put_config(group_id, config)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _now_ms() -> int:
    return int(time.time() * 1000)


def job_json(ctx: Any, job: dict[str, Any], base_url: str, may_restore: bool) -> dict[str, Any]:
    """A restore job in Ops Manager's shape. An HTTP job's ``delivery.url`` is shown only to a key that
    ``may_restore`` and only while the download is READY: the URL is all it takes to download."""
    # "token" and "expiresAt": the download of a record written before download grants (the token in clear).
    out = {k: v for k, v in job.items() if k not in ("_id", "token", "expiresAt", "pending", "download")}
    out["id"] = job["_id"]
    progress = ctx.backup.progress(job["_id"])
    if progress is not None and job["statusName"] != "FINISHED":
        out["progress"] = {"fraction": progress.fraction, "message": progress.message}
    if job["delivery"]["methodName"] == "HTTP":
        grant = DownloadGrant.of(job)
        status = grant.status(_now_ms()) if grant else DeliveryStatus.EXPIRED
        out["delivery"] = {**job["delivery"], "statusName": status.value}
        if grant is not None:
            out["delivery"]["expires"] = _iso(grant.expires_ms)
        if status is DeliveryStatus.READY and may_restore:
            token = token_for(ctx.config.digest_secret, job["_id"])
            out["delivery"]["url"] = base_url.rstrip("/") + DOWNLOAD_PATH.format(
                job_id=job["_id"], token=token
            )
    return out


def _may_restore(principal: Principal, group: dict[str, Any]) -> bool:
    """Whether the key may create restore jobs of the project, and so see their download URLs."""
    return Role.GROUP_BACKUP_ADMIN in principal.group_roles(group)


def resolve(ctx: Any, job: dict[str, Any]) -> Any:
    """The job's restore plan, made afresh (it stays valid until grooming removes what it needs)."""
    plans = ctx.backup.cluster_restore_plans(job["groupId"], job["clusterId"], job["target"])
    return plans[0]


@router.post("/groups/{group_id}/clusters/{cluster_id}/restoreJobs")
def create_restore_job(
    request: Request,
    group_id: str,
    cluster_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    """Plans first (400 outside the window with the restorable ranges, 409 when blocks are missing), then
    records the job; an automated restore is carried out by the target's agents."""
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    ctx.deployments.guard(group_id)
    cluster(ctx, group_id, cluster_id)
    delivery = _delivery(ctx, principal, request, body)
    target = {k: body[k] for k in TARGET_FIELDS if k in body}
    plan = ctx.backup.cluster_restore_plans(group_id, cluster_id, target)[0]
    now = _now_ms()
    job: dict[str, Any] = {
        "_id": new_id(),
        "groupId": group_id,
        "clusterId": cluster_id,
        "target": target,
        "plan": plan.to_json(),
        "snapshotId": plan.snapshot.id,
        "delivery": delivery,
        "created": now,
        "statusName": "QUEUED",
    }
    if delivery["methodName"] == "HTTP":
        expires = now + delivery["expirationHours"] * 3600 * 1000
        # The job id as the token's derivation input: one job's token never opens another's download.
        grant = DownloadGrant.issue(ctx.config.digest_secret, job["_id"], expires, delivery["maxDownloads"])
        job["download"] = grant.to_json()
        job["statusName"] = "FINISHED"  # nothing to carry out: the download restores on request
    else:
        procs = target_processes(ctx, delivery["targetGroupId"], delivery["targetReplicaSetName"])
        if not procs:
            raise InvalidInput("the target cluster has no processes", field="delivery.targetClusterId")
        job["pending"] = sorted(p["name"] for p in procs)
    ctx.stores.app.insert(JOBS, job)
    if delivery["methodName"] == "AUTOMATED_RESTORE":
        set_disabled(ctx, delivery["targetGroupId"], job["pending"], True)
    return job_json(ctx, job, str(request.base_url), may_restore=True)


def _job(ctx: Any, group_id: str, cluster_id: str, job_id: str) -> dict[str, Any]:
    job = owned(ctx.stores.app, JOBS, job_id, groupId=group_id, clusterId=cluster_id)
    if job is None:
        raise NotFound(f"no restore job {job_id}", jobId=job_id)
    return job


@router.get("/groups/{group_id}/clusters/{cluster_id}/restoreJobs")
def list_restore_jobs(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group = group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    cluster(ctx, group_id, cluster_id)
    jobs = sorted(
        ctx.stores.app.find(JOBS, groupId=group_id, clusterId=cluster_id), key=lambda j: -j["created"]
    )
    may_restore = _may_restore(principal, group)
    return unpaged([job_json(ctx, j, str(request.base_url), may_restore) for j in jobs])


@router.get("/groups/{group_id}/clusters/{cluster_id}/restoreJobs/{job_id}")
def get_restore_job(
    request: Request,
    group_id: str,
    cluster_id: str,
    job_id: str,
    principal: Principal = Depends(public_principal),
) -> dict[str, Any]:
    group = group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    job = _job(ctx, group_id, cluster_id, job_id)
    return job_json(ctx, job, str(request.base_url), _may_restore(principal, group))


def document_line(ns: str, doc: dict[str, Any]) -> bytes:
    """One restored document as a line of a JSON-lines download."""
    return (json.dumps({"ns": ns, "doc": doc}, separators=(",", ":")) + "\n").encode()


def json_lines(ctx: Any, job: dict[str, Any]) -> Iterator[bytes]:
    """The restored documents, one ``{"ns", "doc"}`` object per line."""
    for ns, doc in ctx.backup.restore_documents(resolve(ctx, job), job["_id"]):
        yield document_line(ns, doc)


def _granted(reader: Any, job_id: str, token: str) -> tuple[dict[str, Any], DownloadGrant]:
    """The job behind a download URL and its grant, read through a store or a transaction; 404 alike for a
    job that does not exist, has no download, or that the token does not fit."""
    # Bounded before any lookup: the route is open to anyone who can reach the server.
    job = reader.get(JOBS, job_id) if job_id.isalnum() and len(job_id) == 24 and len(token) <= 64 else None
    grant = DownloadGrant.of(job) if job else None
    if job is None or grant is None or not grant.fits(token):
        raise no_such_download()
    return job, grant


@download_router.get(DOWNLOAD_PATH, include_in_schema=False)
def download(request: Request, job_id: str, token: str) -> StreamingResponse:
    """An HTTP restore: the token is the only credential; each download uses the job's grant once, before the
    first byte, so a second download with a single-use URL is 410 Gone however the first one ended."""
    ctx = _ctx(request)
    job, grant = _granted(ctx.stores.app, job_id, token)
    grant.use(token, _now_ms())  # 410 for an expired or used-up grant before any work
    resolve(ctx, job)  # 409 before the grant is used and the response starts
    with ctx.stores.app.tx() as t:
        job, grant = _granted(t, job_id, token)
        t.put(JOBS, {**job, "download": grant.use(token, _now_ms()).to_json()})
    return StreamingResponse(json_lines(ctx, job), media_type="application/x-ndjson")

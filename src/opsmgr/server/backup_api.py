"""The public backup API in Ops Manager's shapes: clusters, backup configurations, snapshot schedules,
snapshots with the point-in-time window, and restore jobs (automated into a deployment, or an HTTP download
of the restored documents as JSON lines, through a URL that expires and serves ``maxDownloads`` downloads).

The clusters and their configurations are ``backup.clusters``'s, the restore jobs ``backup.jobs``'s, the
backup work the daemon's (``ctx.backup``): handlers parse, call one of them and shape the answer. Reads need
GROUP_READ_ONLY; changes GROUP_BACKUP_ADMIN (which a GROUP_OWNER holds). A restore job is a deployment change:
Restoration Mode refuses it (409). A download URL is a credential: only keys that may restore
(GROUP_BACKUP_ADMIN) see it, as in Ops Manager, where Project Read Only can neither create nor download
restores.

May import ``opsmgr.errors``, ``opsmgr.automation.protocol``, ``opsmgr.automation.service``,
``opsmgr.backup``, ``opsmgr.store.appdb``, ``opsmgr.store.engine``, ``opsmgr.server.auth``,
``opsmgr.server.download_grants`` and ``opsmgr.server.public_api``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import StreamingResponse

from opsmgr.automation.service import AutomationService
from opsmgr.backup.clusters import CONFIGS as CONFIGS
from opsmgr.backup.clusters import Clusters
from opsmgr.backup.jobs import (
    DEPLOYMENT_JOBS,
    DeploymentRestores,
    Grants,
    IntoDeployment,
    JobState,
    parse_delivery,
)
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.errors import NotFound
from opsmgr.server.auth import public_principal
from opsmgr.server.download_grants import DeliveryStatus, DownloadGrant, no_such_download, token_for
from opsmgr.server.public_api import PREFIX, group_for, unpaged
from opsmgr.store.appdb import Principal, Role
from opsmgr.store.engine import Txn

router = APIRouter(prefix=PREFIX, tags=["backup"])
download_router = APIRouter(tags=["backup"])

JOBS = DEPLOYMENT_JOBS
DOWNLOAD_PATH = "/backup/restore/{job_id}/{token}"


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


class GoalConfigTargets:
    """Where automated restores go: the projects' goal configs, behind Restoration Mode's guard."""

    def __init__(self, automation: AutomationService, guard: Callable[[str], None]) -> None:
        self.automation = automation
        self._guard = guard

    def guard(self, group_id: str) -> None:
        self._guard(group_id)

    def processes(self, group_id: str, replica_set: str) -> list[dict[str, Any]]:
        config = self.automation.config(group_id)
        members: list[dict[str, Any]] = next(
            (rs["members"] for rs in config.get("replicaSets", []) if rs["_id"] == replica_set), []
        )
        names = {m["host"] for m in members}
        return [p for p in config.get("processes", []) if p["name"] in names]

    def set_disabled(self, t: Txn, group_id: str, names: Sequence[str], disabled: bool) -> None:
        self._guard(group_id)
        config = self.automation.config(group_id)
        for p in config.get("processes", []):
            if p["name"] in names:
                p["disabled"] = disabled
        # Read before ``t`` wrote anything of it: the version makes the write refuse a change made since.
        self.automation.write_config(t, group_id, config, expected_version=config["version"])


def _grants(secret: bytes) -> Grants:
    # The job id as the token's derivation input: one job's token never opens another's download.
    return lambda job_id, expires, downloads: DownloadGrant.issue(
        secret, job_id, expires, downloads
    ).to_json()


def clusters_of(ctx: Any) -> Clusters:
    return Clusters(ctx.stores.app, ctx.backup)


def restores_of(ctx: Any) -> DeploymentRestores:
    targets = GoalConfigTargets(ctx.automation, ctx.deployments.guard)
    return DeploymentRestores(ctx.stores.app, ctx.backup, targets, _grants(ctx.config.digest_secret))


def cluster_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "groupId": doc["groupId"],
        "clusterName": doc["replicaSetName"],
        "replicaSetName": doc["replicaSetName"],
        "typeName": "REPLICA_SET",
    }


@router.get("/groups/{group_id}/clusters")
def list_clusters(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """One cluster per replica set of the project's automation config."""
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    names = [rs["_id"] for rs in ctx.automation.config(group_id).get("replicaSets", [])]
    return unpaged([cluster_json(c) for c in clusters_of(ctx).ensure(group_id, names)])


@router.get("/groups/{group_id}/clusters/{cluster_id}")
def get_cluster(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    return cluster_json(clusters_of(_ctx(request)).get(group_id, cluster_id))


def _config_json(group_id: str, cluster_id: str, status: str) -> dict[str, Any]:
    return {"groupId": group_id, "clusterId": cluster_id, "statusName": status}


@router.get("/groups/{group_id}/backupConfigs/{cluster_id}")
def get_backup_config(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    clusters = clusters_of(_ctx(request))
    clusters.get(group_id, cluster_id)
    return _config_json(group_id, cluster_id, clusters.status(cluster_id))


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
    status = clusters_of(_ctx(request)).set_status(group_id, cluster_id, body.get("statusName"))
    return _config_json(group_id, cluster_id, status)


@router.get("/groups/{group_id}/backupConfigs/{cluster_id}/snapshotSchedule")
def get_schedule(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    src = clusters_of(_ctx(request)).source(group_id, cluster_id)
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
    src = clusters_of(ctx).source(group_id, cluster_id)
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
    src = clusters_of(ctx).source(group_id, cluster_id)
    return {**unpaged(ctx.backup.snapshots_json(src.id)), "pitrWindow": ctx.backup.window_json(src.id)}


@router.post("/groups/{group_id}/clusters/{cluster_id}/snapshots")
def take_snapshot(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """An on-demand snapshot, taken by the daemon's next tick."""
    group_for(request, principal, group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    clusters_of(ctx).get(group_id, cluster_id)
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
    src = clusters_of(ctx).source(group_id, cluster_id)
    for snap in ctx.backup.snapshots_json(src.id):
        if snap.get("id") == snapshot_id:
            return dict(snap)
    raise NotFound(f"no snapshot {snapshot_id}", snapshotId=snapshot_id)


# Restore jobs.


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
    if progress is not None and job["statusName"] != JobState.FINISHED:
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
    delivery = parse_delivery(body)
    if isinstance(delivery, IntoDeployment):
        group_for(request, principal, delivery.group_id, Role.GROUP_BACKUP_ADMIN)
    ctx = _ctx(request)
    job = restores_of(ctx).create(group_id, cluster_id, body, delivery)
    return job_json(ctx, job, str(request.base_url), may_restore=True)


@router.get("/groups/{group_id}/clusters/{cluster_id}/restoreJobs")
def list_restore_jobs(
    request: Request, group_id: str, cluster_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    group = group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    ctx = _ctx(request)
    jobs = restores_of(ctx).of_cluster(group_id, cluster_id)
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
    job = restores_of(ctx).get(group_id, cluster_id, job_id)
    return job_json(ctx, job, str(request.base_url), _may_restore(principal, group))


def document_line(ns: str, doc: dict[str, Any]) -> bytes:
    """One restored document as a line of a JSON-lines download."""
    return (json.dumps({"ns": ns, "doc": doc}, separators=(",", ":")) + "\n").encode()


def json_lines(documents: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[bytes]:
    """The restored documents, one ``{"ns", "doc"}`` object per line."""
    for ns, doc in documents:
        yield document_line(ns, doc)


def stream(restores: DeploymentRestores, resolved: ResolvedRestore, job_id: str) -> StreamingResponse:
    return StreamingResponse(
        json_lines(restores.documents(resolved, job_id)), media_type="application/x-ndjson"
    )


@download_router.get(DOWNLOAD_PATH, include_in_schema=False)
def download(request: Request, job_id: str, token: str) -> StreamingResponse:
    """An HTTP restore: the token is the only credential; each download uses the job's grant once, before the
    first byte, so a second download with a single-use URL is 410 Gone however the first one ended."""

    def spend(job: dict[str, Any] | None) -> dict[str, Any]:
        """404 alike for a job that does not exist, has no download, or that the token does not fit; 410
        for an expired or used-up grant."""
        grant = DownloadGrant.of(job) if job is not None and len(token) <= 64 else None
        if job is None or grant is None or not grant.fits(token):
            raise no_such_download()
        return {**job, "download": grant.use(token, _now_ms()).to_json()}

    restores = restores_of(_ctx(request))
    job, resolved = restores.use_download(job_id, spend)
    return stream(restores, resolved, job["_id"])

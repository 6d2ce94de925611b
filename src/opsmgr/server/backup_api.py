"""The public backup API in Ops Manager's shapes: clusters, backup configurations, snapshot schedules,
snapshots with the point-in-time window, and restore jobs (automated into a deployment, or an HTTP download
of the restored documents as JSON lines, through a URL that expires and serves ``maxDownloads`` downloads).

The clusters and their configurations are ``backup.clusters``'s, the restore jobs ``backup.jobs``'s, the
backup work the daemon's, each one of the server's services (``server.deps``): handlers parse, call one of
them and shape the answer. Reads need GROUP_READ_ONLY; changes GROUP_BACKUP_ADMIN (which a GROUP_OWNER
holds). A restore job is a deployment change: Restoration Mode refuses it (409). An automated restore in
progress is cancelled by ``DELETE .../restoreJobs/{jobId}`` (``backup.restore_cancel`` says why that route).
A sharded cluster (by the id ``/clusters`` lists) is backed up as its parts, its snapshots, window and restore
jobs being the whole cluster's at one point (``backup.sharded``); its parts' replica sets have no backup of
their own. A download URL is a credential: only keys that may restore (GROUP_BACKUP_ADMIN) see it, as in Ops
Manager, where Project Read Only can neither create nor download restores. Capacity planning
(``opsmgr.backup.capacity``) is opsmgr's own: ``GET .../groups/{id}/clusters/{clusterId}/backup/capacity``
for a project reader, and ``GET .../admin/backup/capacity`` (the whole blockstore and its disk) for
ORG_OWNER and ORG_READ_ONLY keys.

May import ``opsmgr.errors``, ``opsmgr.jsontypes``, ``opsmgr.alerts``, ``opsmgr.automation.records``,
``opsmgr.automation.clusters``, ``opsmgr.automation.hosts``, ``opsmgr.backup``,
``opsmgr.store.appdb``, ``opsmgr.server.alerts_api`` (who reads installation-wide figures),
``opsmgr.server.auth``, ``opsmgr.server.bodies``, ``opsmgr.server.deps``, ``opsmgr.server.download_grants``,
``opsmgr.server.paging``, ``opsmgr.server.public_api``, ``opsmgr.server.services`` and ``opsmgr.timestamps``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from opsmgr.alerts import AlertStatus
from opsmgr.automation import records
from opsmgr.automation.clusters import (
    ClusterType,
    cluster_docs,
    last_heartbeats,
    members_of_cluster,
    process_names,
    replica_set_ids,
)
from opsmgr.automation.hosts import tls_on
from opsmgr.backup.capacity import measure, measure_blockstore
from opsmgr.backup.clusters import BackupStatus
from opsmgr.backup.job_records import OPS_MANAGER_STATUS
from opsmgr.backup.jobs import (
    DEPLOYMENT_JOBS,
    Delivery,
    DeploymentRestores,
    IntoDeployment,
    JobState,
    PartPlan,
    parse_delivery,
)
from opsmgr.backup.sharded import job_progress, specs_of
from opsmgr.errors import NotFound
from opsmgr.jsontypes import JsonObject
from opsmgr.server.alerts_api import global_reader
from opsmgr.server.auth import ProjectBackupAdmin, ProjectCaller, ProjectReader, public_principal
from opsmgr.server.bodies import BackupConfigBody, RestoreJobBody, SnapshotScheduleBody
from opsmgr.server.deps import Backup, ClustersDep, Restores, ServicesDep
from opsmgr.server.download_grants import DeliveryStatus, DownloadGrant, no_such_download, token_for
from opsmgr.server.paging import Page, PerPage, paginated, unpaged
from opsmgr.server.public_api import PREFIX
from opsmgr.server.services import Services
from opsmgr.store.appdb import Principal, Role
from opsmgr.timestamps import iso_utc, iso_utc_or_none

router = APIRouter(prefix=PREFIX, tags=["backup"])
download_router = APIRouter(tags=["backup"])

JOBS = DEPLOYMENT_JOBS
DOWNLOAD_PATH = "/backup/restore/{job_id}/{token}"
# Ten years: more is no retention a client meant.
MAX_RETENTION_DAYS = 3650


def cluster_json(view: JsonObject, base_url: str, heartbeats: Mapping[str, int]) -> JsonObject:
    """A cluster of :func:`project_cluster_views` in Ops Manager's shape, with its ``links`` and, once an
    agent has reported one of its hosts (``heartbeats``, by cluster id), its ``lastHeartbeat``."""
    path = f"{PREFIX}/groups/{view['groupId']}/clusters/{view['id']}"
    out = dict(view) | {"links": [{"href": base_url.rstrip("/") + path, "rel": "self"}]}
    last = heartbeats.get(str(view["id"]))
    if last is not None:
        out["lastHeartbeat"] = iso_utc(last)
    return out


def project_clusters(services: Services, group_id: str) -> list[JsonObject]:
    """The project's backed-up clusters: one per replica set of its automation config (its sharded clusters
    recorded as the config has them now: :func:`refresh_sharded`)."""
    config = services.automation.config(group_id)
    services.clusters.ensure_sharded(group_id, specs_of(group_id, config))
    return services.clusters.ensure(group_id, replica_set_ids(config))


def refresh_sharded(services: Services, group_id: str) -> None:
    """Records the project's sharded clusters as its config has them now (their parts), so that a route
    given a sharded cluster's id knows it, and a shard added to a cluster backed up is backed up too."""
    services.clusters.ensure_sharded(group_id, specs_of(group_id, services.automation.config(group_id)))


@dataclass(frozen=True)
class ProjectClusters:
    """The project's clusters as ``GET /groups/{id}/clusters`` lists them (``automation.clusters``), each
    replica set's cluster id, and the hosts, which carry those ids."""

    group_id: str
    views: list[JsonObject]
    replica_set_ids: dict[str, str]
    hosts: list[JsonObject]


def project_cluster_views(services: Services, group_id: str) -> ProjectClusters:
    config = services.automation.config(group_id)
    stored = services.clusters.ensure(group_id, replica_set_ids(config))
    ids = {str(c["replicaSetName"]): str(c["_id"]) for c in stored}
    views = cluster_docs(group_id, config, ids)
    return ProjectClusters(group_id, views, ids, services.automation.hosts(group_id, ids))


@router.get("/groups/{group_id}/clusters")
def list_clusters(
    request: Request, caller: ProjectReader, services: ServicesDep, page: int = Page, per: int = PerPage
) -> JsonObject:
    found = project_cluster_views(services, caller.group_id)
    beats = last_heartbeats(found.views, found.hosts)
    clusters = [cluster_json(v, str(request.base_url), beats) for v in found.views]
    return paginated(request, clusters, page, per)


@router.get("/clusters")
def list_all_clusters(
    request: Request,
    services: ServicesDep,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    """Ops Manager's "get all clusters": for every project the key may read, its organization and its
    clusters (what opsmgr knows of them: members, MongoDB versions, backup, TLS and authentication)."""
    projects = [
        _project_summary(services, group)
        for group in services.appdb.groups()
        if principal.can_see_group(group)
    ]
    return paginated(request, projects, page, per)


def _project_summary(services: Services, group: JsonObject) -> JsonObject:
    """A project's clusters as "get all clusters" shows them: its sharded clusters and its replica sets of
    their own (a shard's or config server's replica set is part of its sharded cluster)."""
    group_id = str(group["_id"])
    config = services.automation.config(group_id)
    found = project_cluster_views(services, group_id)
    open_alerts = services.alerts.of_group(group_id, AlertStatus.OPEN)
    clusters = [
        _cluster_summary(services, config, found, view, open_alerts)
        for view in found.views
        if "shardName" not in view and view["typeName"] != ClusterType.CONFIG_SERVER_REPLICA_SET
    ]
    org = services.appdb.org(str(group["orgId"]))
    return {
        "groupId": group_id,
        "groupName": group["name"],
        "orgId": org["_id"],
        "orgName": org["name"],
        "planType": "Ops Manager",
        "tags": [],
        "clusters": clusters,
    }


def _cluster_summary(
    services: Services,
    config: JsonObject,
    found: ProjectClusters,
    view: JsonObject,
    open_alerts: list[JsonObject],
) -> JsonObject:
    cluster_id, name = str(view["id"]), str(view["clusterName"])
    processes = {p.name: p for p in records.processes(config)}
    members = [processes[n] for n in process_names(config, view) if n in processes]
    ids = members_of_cluster(found.views, cluster_id)
    names = {name} | {
        str(v["replicaSetName"]) for v in found.views if v["id"] in ids and "replicaSetName" in v
    }
    return {
        "clusterId": cluster_id,
        "name": name,
        "type": view["typeName"],
        "versions": sorted({p.version for p in members}),
        "nodeCount": len(members),
        "availability": cluster_availability(found.views, found.hosts, cluster_id),
        "alertCount": sum(
            1 for a in open_alerts if a.get("replicaSetName") in names or a.get("clusterId") in names | ids
        ),
        "dataSizeBytes": _latest_data_size(services, found.group_id, cluster_id),
        "backupEnabled": services.clusters.status(cluster_id) == BackupStatus.STARTED,
        "authEnabled": not bool((config.get("auth") or {}).get("disabled", True)),
        "sslEnabled": any(tls_on(p.args2_6) for p in members),
    }


def cluster_availability(views: list[JsonObject], hosts: list[JsonObject], cluster_id: str) -> str:
    """A cluster's availability: a replica set's from its members (:func:`availability`); a sharded
    cluster's the worst of its parts', and ``warning`` while one of its mongos is down."""
    ids = members_of_cluster(views, cluster_id) - {cluster_id} or {cluster_id}
    by_part = [availability([h for h in hosts if h.get("clusterId") == i]) for i in sorted(ids)]
    worst = min(by_part, key=_AVAILABILITY_ORDER.index)
    routers = [h for h in hosts if h.get("clusterId") == cluster_id and h.get("typeName") == "SHARD_MONGOS"]
    if worst == "available" and not all(h.get("running") for h in routers):
        return "warning"
    return worst


_AVAILABILITY_ORDER = ("dead", "unavailable", "warning", "available")


def availability(members: list[JsonObject]) -> str:
    """Ops Manager's cluster availability from its members as monitoring last saw them: ``dead`` when none
    runs, ``unavailable`` without a primary, ``warning`` when a member is down, else ``available``."""
    running = [h for h in members if h.get("running")]
    if not running:
        return "dead"
    if not any(h.get("replicaStateName") == "PRIMARY" for h in running):
        return "unavailable"
    return "available" if len(running) == len(members) else "warning"


def _latest_data_size(services: Services, group_id: str, cluster_id: str) -> int:
    """The data size of the cluster's newest snapshot (of each part's, for a sharded cluster: opsmgr's agents
    do not measure it yet), 0 without."""
    return sum(
        int(part.get("dataSizeBytes") or 0)
        for src in services.backup.sources(group_id, cluster_id)
        for snapshot in services.backup.snapshots_json(src.id)[:1]
        for part in snapshot.get("parts", [])
    )


@router.get("/groups/{group_id}/clusters/{cluster_id}")
def get_cluster(
    request: Request, caller: ProjectReader, services: ServicesDep, cluster_id: str
) -> JsonObject:
    found = project_cluster_views(services, caller.group_id)
    beats = last_heartbeats(found.views, found.hosts)
    view = next((v for v in found.views if v["id"] == cluster_id), None)
    if view is None:
        # A replica set no longer in the config (its backups stay), or a deployment of backing databases.
        stored = services.clusters.get(caller.group_id, cluster_id)
        name = str(stored["replicaSetName"])
        view = {
            "id": stored["_id"],
            "groupId": stored["groupId"],
            "clusterName": name,
            "typeName": ClusterType.REPLICA_SET.value,
            "replicaSetName": name,
        }
        pings = [h["lastPing"] for h in found.hosts if h.get("replicaSetName") == name]
        beats = {cluster_id: max(pings)} if pings else {}
    return cluster_json(view, str(request.base_url), beats)


def _config_json(group_id: str, cluster_id: str, status: str) -> JsonObject:
    # The daemon's head copies and snapshots are neither encrypted nor MMAPv1 files: WiredTiger's is the
    # storage engine Ops Manager names for such a backup.
    return {
        "groupId": group_id,
        "clusterId": cluster_id,
        "statusName": status,
        "storageEngineName": "WIRED_TIGER",
        "encryptionEnabled": False,
    }


@router.get("/groups/{group_id}/backupConfigs")
def list_backup_configs(
    request: Request, caller: ProjectReader, services: ServicesDep, page: int = Page, per: int = PerPage
) -> JsonObject:
    """The backup configuration of each of the project's clusters (tools read ``clusterId`` here first): its
    sharded clusters and its replica sets (a shard's or config server's is backed up with its cluster)."""
    refresh_sharded(services, caller.group_id)
    found = project_cluster_views(services, caller.group_id)
    configs = [
        _config_json(caller.group_id, str(v["id"]), services.clusters.status(str(v["id"])))
        for v in found.views
        if "shardName" not in v and v["typeName"] != ClusterType.CONFIG_SERVER_REPLICA_SET
    ]
    return paginated(request, configs, page, per)


@router.get("/groups/{group_id}/backupConfigs/{cluster_id}")
def get_backup_config(caller: ProjectReader, services: ServicesDep, cluster_id: str) -> JsonObject:
    refresh_sharded(services, caller.group_id)
    services.clusters.check(caller.group_id, cluster_id)
    return _config_json(caller.group_id, cluster_id, services.clusters.status(cluster_id))


@router.patch("/groups/{group_id}/backupConfigs/{cluster_id}")
def patch_backup_config(
    caller: ProjectBackupAdmin, services: ServicesDep, cluster_id: str, body: BackupConfigBody
) -> JsonObject:
    """``statusName`` STARTED registers the replica set (a sharded cluster's every part) with the daemon;
    TERMINATING deletes its backups. A shard's or config server's replica set alone is refused (409)."""
    refresh_sharded(services, caller.group_id)
    status = services.clusters.set_status(caller.group_id, cluster_id, body.as_sent().get("statusName"))
    return _config_json(caller.group_id, cluster_id, status)


@router.get("/groups/{group_id}/backupConfigs/{cluster_id}/snapshotSchedule")
def get_schedule(caller: ProjectReader, services: ServicesDep, cluster_id: str) -> JsonObject:
    refresh_sharded(services, caller.group_id)
    src = services.clusters.source(caller.group_id, cluster_id)
    return {"groupId": caller.group_id, "clusterId": cluster_id, **src.schedule.to_json()}


@router.patch("/groups/{group_id}/backupConfigs/{cluster_id}/snapshotSchedule")
def patch_schedule(
    caller: ProjectBackupAdmin, services: ServicesDep, cluster_id: str, body: SnapshotScheduleBody
) -> JsonObject:
    """The schedule of the cluster's backup (of every part of a sharded cluster's)."""
    refresh_sharded(services, caller.group_id)
    fields = {k: v for k, v in body.as_sent().items() if k not in ("groupId", "clusterId", "links")}
    schedule = services.restores.sharded.set_schedule(caller.group_id, cluster_id, fields)
    return {"groupId": caller.group_id, "clusterId": cluster_id, **schedule}


@router.get("/groups/{group_id}/clusters/{cluster_id}/snapshots")
def list_snapshots(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    cluster_id: str,
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    """The snapshots, newest first, and beside them the point-in-time window as ranges (holes between); a
    sharded cluster's snapshots list every part, its window is where every part can be restored to one
    point (``backup.sharded``)."""
    refresh_sharded(services, caller.group_id)
    found, window = services.restores.sharded.listing(caller.group_id, cluster_id)
    listed = paginated(request, [_snapshot_linked(request, s) for s in found], page, per)
    return {**listed, "pitrWindow": window}


def _snapshot_linked(request: Request, snapshot: JsonObject) -> JsonObject:
    cluster = f"{PREFIX}/groups/{snapshot['groupId']}/clusters/{snapshot['clusterId']}"
    path = f"{cluster}/snapshots/{snapshot['id']}"
    return snapshot | {"links": [{"href": str(request.base_url).rstrip("/") + path, "rel": "self"}]}


# Ops Manager's path, in its reference ("Create an On-Demand Snapshot": POST
# /groups/{groupId}/clusters/{clusterId}/snapshots/onDemandSnapshot?retentionDays=N, answered 200 with the
# cluster's name and a description); the Go client (opsmngr/continuous_snapshots.go) has no such call, so
# clients post to that path. The shorter path is opsmgr's own, kept for its UI and scripts.
@router.post("/groups/{group_id}/clusters/{cluster_id}/snapshots/onDemandSnapshot")
@router.post("/groups/{group_id}/clusters/{cluster_id}/snapshots")
def take_snapshot(
    caller: ProjectBackupAdmin,
    services: ServicesDep,
    cluster_id: str,
    retention_days: int | None = Query(
        None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        alias="retentionDays",
        description="Accepted for Ops Manager's clients; the snapshot is kept as the schedule keeps a daily "
        "one (Ops Manager's default for on-demand snapshots).",
    ),
) -> JsonObject:
    """An on-demand snapshot of each backed-up replica set of the cluster (each part of a sharded cluster),
    taken by the daemon's next tick (404 for a cluster the project does not have or does not back up)."""
    refresh_sharded(services, caller.group_id)
    name = services.clusters.name(caller.group_id, cluster_id)
    ids = services.backup.request_cluster_snapshot(caller.group_id, cluster_id)
    now = _now_ms()
    return {
        "groupId": caller.group_id,
        "clusterId": cluster_id,
        "clusterName": name,
        "description": "On demand snapshot requested.",
        # When it was requested, in the shape of Ops Manager's answer ({date, time, increment}).
        "timestamp": {"date": iso_utc(now), "time": now // 1000, "increment": 1},
        "snapshotIds": ids,
        "statusName": "QUEUED",
    }


@router.get("/groups/{group_id}/clusters/{cluster_id}/snapshots/{snapshot_id}")
def get_snapshot(
    request: Request, caller: ProjectReader, services: ServicesDep, cluster_id: str, snapshot_id: str
) -> JsonObject:
    refresh_sharded(services, caller.group_id)
    for snap in services.restores.sharded.listing(caller.group_id, cluster_id)[0]:
        if snap.get("id") == snapshot_id:
            return _snapshot_linked(request, snap)
    raise NotFound(f"no snapshot {snapshot_id}", error_code="SNAPSHOT_NOT_FOUND", snapshotId=snapshot_id)


# Restore jobs.


def _now_ms() -> int:
    return int(time.time() * 1000)


def job_json(services: Services, job: JsonObject, base_url: str, may_restore: bool) -> JsonObject:
    """A restore job in Ops Manager's shape. An HTTP job's ``delivery.url`` is shown only to a key that
    ``may_restore`` and only while the download is READY: the URL is all it takes to download."""
    # "token" and "expiresAt": the download of a record written before download grants (the token in clear).
    hidden = ("_id", "token", "expiresAt", "pending", "loading", "download")
    out = {k: v for k, v in job.items() if k not in hidden}
    out["id"] = job["_id"]
    out["statusName"] = OPS_MANAGER_STATUS[JobState(job["statusName"])]
    out["phase"] = job["statusName"]
    out["encryptionEnabled"] = False  # opsmgr's block store does not encrypt snapshots
    path = f"{PREFIX}/groups/{job['groupId']}/clusters/{job['clusterId']}/restoreJobs/{job['_id']}"
    out["links"] = [{"href": base_url.rstrip("/") + path, "rel": "self"}]
    # Stored as epoch milliseconds; Ops Manager writes these instants as ISO-8601 strings.
    out.update({k: iso_utc_or_none(job.get(k)) for k in ("created", "started", "finished") if k in job})
    target = (job.get("plan") or {}).get("targetTimestamp")
    if target is not None:  # the point restored to, as Ops Manager's ``timestamp``
        out["timestamp"] = target
    progress = services.backup.progress(job["_id"])
    if progress is not None and job["statusName"] != JobState.FINISHED:
        out["progress"] = {"fraction": progress.fraction, "message": progress.message}
    parts = services.restores.parts_json(job)
    if parts is not None:  # a sharded cluster's job: one job, each part's progress
        out["parts"] = parts
        out["progress"] = job_progress(parts)
    if job["delivery"]["methodName"] == "HTTP":
        grant = DownloadGrant.of(job)
        status = grant.status(_now_ms()) if grant else DeliveryStatus.EXPIRED
        out["delivery"] = {**job["delivery"], "statusName": status.value}
        if grant is not None:
            out["delivery"]["expires"] = iso_utc(grant.expires_ms)
        if status is DeliveryStatus.READY and may_restore:
            token = token_for(services.config.digest_secret, job["_id"])
            out["delivery"]["url"] = base_url.rstrip("/") + DOWNLOAD_PATH.format(
                job_id=job["_id"], token=token
            )
    return out


def _may_restore(caller: ProjectCaller) -> bool:
    """Whether the key may create restore jobs of the project, and so see their download URLs."""
    return Role.GROUP_BACKUP_ADMIN in caller.principal.group_roles(caller.group)


@router.post("/groups/{group_id}/clusters/{cluster_id}/restoreJobs")
def create_restore_job(
    request: Request,
    caller: ProjectBackupAdmin,
    services: ServicesDep,
    cluster_id: str,
    body: RestoreJobBody,
) -> JsonObject:
    """Plans first (400 outside the window with the restorable ranges, 409 when blocks are missing), then
    records the job; an automated restore is carried out by the target's agents, whose project the key must
    hold GROUP_BACKUP_ADMIN on too."""
    job = create_restore(services, caller.principal, caller.group_id, cluster_id, body.as_sent())
    # Ops Manager answers the jobs it created as a list (a sharded cluster's restore is a job per part).
    return unpaged([job_json(services, job, str(request.base_url), may_restore=True)], request)


def create_restore(
    services: Services, principal: Principal, group_id: str, cluster_id: str, sent: JsonObject
) -> JsonObject:
    """A restore job of the project's deployment for a caller holding GROUP_BACKUP_ADMIN on the project (the
    route's check): a restore into a deployment asks the same role on the target's project (the API's and the
    UI's one rule)."""
    delivery = parse_delivery(sent)
    restore_target(services, principal, delivery)
    return services.restores.create(group_id, cluster_id, sent, delivery)


def restore_target(services: Services, principal: Principal, delivery: Delivery) -> JsonObject | None:
    """The project an automated restore goes into, once ``principal`` is found to hold GROUP_BACKUP_ADMIN
    there; None for a download."""
    if not isinstance(delivery, IntoDeployment):
        return None
    group = services.appdb.group(delivery.group_id)
    principal.require_group(group, Role.GROUP_BACKUP_ADMIN)
    return group


@router.get("/groups/{group_id}/clusters/{cluster_id}/restoreJobs")
def list_restore_jobs(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    cluster_id: str,
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    jobs = services.restores.of_cluster(caller.group_id, cluster_id)
    may_restore = _may_restore(caller)
    shown = [job_json(services, j, str(request.base_url), may_restore) for j in jobs]
    return paginated(request, shown, page, per)


@router.get("/groups/{group_id}/clusters/{cluster_id}/restoreJobs/{job_id}")
def get_restore_job(
    request: Request, caller: ProjectReader, services: ServicesDep, cluster_id: str, job_id: str
) -> JsonObject:
    job = services.restores.get(caller.group_id, cluster_id, job_id)
    return job_json(services, job, str(request.base_url), _may_restore(caller))


@router.delete("/groups/{group_id}/clusters/{cluster_id}/restoreJobs/{job_id}")
def cancel_restore_job(
    request: Request, caller: ProjectBackupAdmin, services: ServicesDep, cluster_id: str, job_id: str
) -> JsonObject:
    """Cancels an automated restore in progress (``backup.restore_cancel``: why a DELETE, what it does): the
    job stays listed, CANCELLED (``statusName`` KILLED) with its ``cancellation`` statement; 409 for a job
    that ended or a download. The key must hold GROUP_BACKUP_ADMIN on the target's project too."""
    job = cancel_restore(services, caller.principal, caller.group_id, cluster_id, job_id)
    return job_json(services, job, str(request.base_url), may_restore=True)


def cancel_restore(
    services: Services, principal: Principal, group_id: str, cluster_id: str, job_id: str
) -> JsonObject:
    """The job cancelled, for a caller holding GROUP_BACKUP_ADMIN on the project (the route's check) and on
    the project restored into (403 otherwise, as for creating it: the API's and the UI's one rule)."""
    job = services.restores.get(group_id, cluster_id, job_id)
    target = job["delivery"].get("targetGroupId")
    if isinstance(target, str):
        principal.require_group(services.appdb.group(target), Role.GROUP_BACKUP_ADMIN)
    return services.restores.cancel(group_id, cluster_id, job_id)


def document_line(ns: str, doc: JsonObject, part: str | None = None) -> bytes:
    """One restored document as a line of a JSON-lines download (of a sharded cluster's, naming its part)."""
    line = {"ns": ns, "doc": doc} if part is None else {"replicaSetName": part, "ns": ns, "doc": doc}
    return (json.dumps(line, separators=(",", ":")) + "\n").encode()


def stream(restores: DeploymentRestores, plans: list[PartPlan], job_id: str) -> StreamingResponse:
    """The restored documents of each plan, in order; a sharded cluster's lines name their part
    (``replicaSetName``)."""

    def lines() -> Iterator[bytes]:
        for part, resolved in plans:
            for ns, doc in restores.documents(resolved, job_id, part):
                yield document_line(ns, doc, part)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@download_router.get(DOWNLOAD_PATH, include_in_schema=False)
def download(restores: Restores, job_id: str, token: str) -> StreamingResponse:
    """An HTTP restore: the token is the only credential; each download uses the job's grant once, before the
    first byte, so a second download with a single-use URL is 410 Gone however the first one ended."""

    def spend(job: JsonObject | None) -> JsonObject:
        """404 alike for a job that does not exist, has no download, or that the token does not fit; 410
        for an expired or used-up grant."""
        grant = DownloadGrant.of(job) if job is not None and len(token) <= 64 else None
        if job is None or grant is None or not grant.fits(token):
            raise no_such_download()
        return {**job, "download": grant.use(token, _now_ms()).to_json()}

    job, plans = restores.use_download_plans(job_id, spend)
    return stream(restores, plans, job["_id"])


# Capacity planning (opsmgr's own resources: Ops Manager has no API for it). The figures and their model are
# opsmgr.backup.capacity's.


@router.get("/groups/{group_id}/clusters/{cluster_id}/backup/capacity")
def cluster_capacity(
    caller: ProjectReader, clusters: ClustersDep, backup: Backup, cluster_id: str
) -> JsonObject:
    """The backed-up cluster's stored bytes, dedup ratio, growth per day and projection at 30/90/365 days
    (404 for a cluster the project does not have or does not back up)."""
    src = clusters.source(caller.group_id, cluster_id)
    return measure(backup, src, backup.now_ms()).to_json()


@router.get("/admin/backup/capacity")
def blockstore_capacity(
    request: Request,
    backup: Backup,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    """The whole blockstore's figures, its disk and when it fills, with each source's figures as
    ``results``: installation-wide, so for ORG_OWNER and ORG_READ_ONLY keys, as the global alerts are."""
    global_reader(principal)
    figures = measure_blockstore(backup, backup.sources(), backup.now_ms())
    listed = paginated(request, [s.to_json() for s in figures.sources], page, per)
    return {**figures.to_json(), **listed}

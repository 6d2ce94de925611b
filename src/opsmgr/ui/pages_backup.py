"""Continuous Backup: deployments with backup state, start and stop, schedule and retention, snapshots, the
PITR window as a timeline, Take snapshot now, and each deployment's restore jobs.

Every read and change is the service call of the public API's handler for the same thing
(``server.backup_api``): clusters are ``services.clusters.ensure`` of the replica sets of the automation
config, start and stop are ``set_status`` (PATCH backupConfigs), the schedule ``backup.set_schedule`` (PATCH
snapshotSchedule), Take snapshot now ``backup.request_cluster_snapshot`` (POST snapshots), each with the
API's role: GROUP_READ_ONLY to see, GROUP_BACKUP_ADMIN to change.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.server``, ``opsmgr.ui.web``,
``opsmgr.ui.project`` and ``opsmgr.ui.timeline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from opsmgr.jsontypes import JsonObject
from opsmgr.server.backup_api import job_json, project_clusters
from opsmgr.server.deps import ServicesDep
from opsmgr.server.services import Services
from opsmgr.store.appdb import Role
from opsmgr.ui.project import project_page
from opsmgr.ui.timeline import Timeline, ranges_of, timeline, utc
from opsmgr.ui.web import ChangerDep, PageRoute, ViewerDep, fragment, live, render

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

Id = Annotated[str, Path(min_length=1, max_length=64)]
# The schedule's fields, as SnapshotScheduleBody names them, with the form's labels.
SCHEDULE_FIELDS = (
    ("snapshotIntervalHours", "Hours between snapshots", "any"),
    ("snapshotRetentionDays", "Days a snapshot is kept", "1"),
    ("dailySnapshotRetentionDays", "Days a daily snapshot is kept", "1"),
    ("weeklySnapshotRetentionWeeks", "Weeks a weekly snapshot is kept", "1"),
    ("monthlySnapshotRetentionMonths", "Months a monthly snapshot is kept", "1"),
    ("pointInTimeWindowHours", "Hours of point-in-time window", "any"),
)


def iso_ms(text: object) -> int | None:
    """Milliseconds of one of the API's ISO dates (``2024-05-01T12:00:00.123Z``)."""
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def simulated_hosts(services: Services, group_id: str) -> set[str]:
    """The hosts of the project whose agent drives the sim."""
    return {
        str(s.get("hostname"))
        for s in services.automation.agent_statuses(group_id)
        if s.get("driver") == "sim"
    }


@dataclass(frozen=True)
class ClusterView:
    """One deployment's backup as the page shows it."""

    cluster: JsonObject
    status: str
    schedule: JsonObject | None
    snapshots: list[JsonObject]
    window: list[JsonObject]
    timeline: Timeline
    jobs: list[JsonObject]
    hosts: list[str]
    simulated: bool

    @property
    def id(self) -> str:
        return str(self.cluster["_id"])

    @property
    def name(self) -> str:
        return str(self.cluster["replicaSetName"])

    @property
    def backed_up(self) -> bool:
        return self.schedule is not None


def replica_set_hosts(services: Services, group_id: str, replica_set: str) -> list[str]:
    config = services.automation.config(group_id)
    sets = [rs for rs in config.get("replicaSets", []) if rs["_id"] == replica_set]
    names = {m.get("host") for rs in sets for m in rs["members"]}
    return sorted(str(p["hostname"]) for p in config.get("processes", []) if p.get("name") in names)


def cluster_view(
    services: Services, group_id: str, cluster: JsonObject, request: Request, may_restore: bool
) -> ClusterView:
    cid = str(cluster["_id"])
    sources = services.backup.sources(group_id, cid)
    snapshots = services.backup.snapshots_json(sources[0].id) if sources else []
    window = services.backup.window_json(sources[0].id) if sources else []
    marks = [
        (at, f"Snapshot {s['id']}")
        for s in snapshots
        if (at := iso_ms(s["lastOplogAppliedTimestamp"]["date"])) is not None
    ]
    jobs = [
        job_json(services, j, str(request.base_url), may_restore)
        for j in services.restores.of_cluster(group_id, cid)
    ]
    hosts = replica_set_hosts(services, group_id, str(cluster["replicaSetName"]))
    return ClusterView(
        cluster=cluster,
        status=services.clusters.status(cid).value,
        schedule=sources[0].schedule.to_json() if sources else None,
        snapshots=snapshots,
        window=window,
        timeline=timeline(ranges_of(window), marks),
        jobs=jobs,
        hosts=hosts,
        simulated=bool(set(hosts) & simulated_hosts(services, group_id)),
    )


def _fragment_context(view: ClusterView, group_id: str) -> dict[str, object]:
    return {"c": view, "group_id": group_id, "utc": utc}


@router.get("/projects/{group_id}/backup")
def backup_page(
    request: Request, services: ServicesDep, viewer: ViewerDep, group_id: Id, queued: str = ""
) -> Response:
    project = project_page(services, viewer, group_id)
    views = [
        cluster_view(services, group_id, c, request, project.may_back_up)
        for c in project_clusters(services, group_id)
    ]
    context = {
        **project.context(),
        "title": f"Continuous Backup · {project.group['name']}",
        "clusters": views,
        "schedule_fields": SCHEDULE_FIELDS,
        # Only snapshot ids are echoed back: the query is anyone's to write.
        "queued": ", ".join(x for x in queued.split(",")[:8] if x.isalnum() and len(x) <= 64),
        "utc": utc,
    }
    return render(request, "backup.html", context, viewer=viewer)


@router.get("/projects/{group_id}/backup/{cluster_id}/live")
def backup_live(
    request: Request, services: ServicesDep, viewer: ViewerDep, group_id: Id, cluster_id: Id
) -> Response:
    project = project_page(services, viewer, group_id)
    services.clusters.get(group_id, cluster_id)

    def render_now() -> str:
        cluster = services.clusters.get(group_id, cluster_id)
        view = cluster_view(services, group_id, cluster, request, project.may_back_up)
        return fragment("_backup_cluster.html", _fragment_context(view, group_id))

    return live(request, render_now)


def _back(group_id: str, cluster_id: str, query: str = "") -> RedirectResponse:
    return RedirectResponse(f"/ui/projects/{group_id}/backup{query}#cluster-{cluster_id}", status_code=303)


@router.post("/projects/{group_id}/backup/{cluster_id}/status")
def set_backup_status(
    services: ServicesDep,
    viewer: ChangerDep,
    group_id: Id,
    cluster_id: Id,
    status: Annotated[str, Form(alias="statusName", max_length=32)],
) -> Response:
    """Start or stop backup: PATCH backupConfigs' call, with its role and its refusal of another status."""
    project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    services.clusters.set_status(group_id, cluster_id, status)
    return _back(group_id, cluster_id)


def _schedule_fields(values: dict[str, str]) -> dict[str, object]:
    """The fields the form filled in, as numbers where they read as numbers; anything else goes to the
    service as it was typed, to be refused with the API's message."""
    fields: dict[str, object] = {}
    for name, text in values.items():
        text = text.strip()
        if not text:
            continue
        try:
            number = float(text)
            fields[name] = int(number) if number.is_integer() and "." not in text else number
        except ValueError:
            fields[name] = text
    return fields


Field = Annotated[str, Form(max_length=32)]


@router.post("/projects/{group_id}/backup/{cluster_id}/schedule")
def set_schedule(
    services: ServicesDep,
    viewer: ChangerDep,
    group_id: Id,
    cluster_id: Id,
    snapshotIntervalHours: Field = "",
    snapshotRetentionDays: Field = "",
    dailySnapshotRetentionDays: Field = "",
    weeklySnapshotRetentionWeeks: Field = "",
    monthlySnapshotRetentionMonths: Field = "",
    pointInTimeWindowHours: Field = "",
) -> Response:
    """PATCH snapshotSchedule's call: the source of the cluster, then the daemon's schedule."""
    project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    src = services.clusters.source(group_id, cluster_id)
    fields = _schedule_fields(
        {
            "snapshotIntervalHours": snapshotIntervalHours,
            "snapshotRetentionDays": snapshotRetentionDays,
            "dailySnapshotRetentionDays": dailySnapshotRetentionDays,
            "weeklySnapshotRetentionWeeks": weeklySnapshotRetentionWeeks,
            "monthlySnapshotRetentionMonths": monthlySnapshotRetentionMonths,
            "pointInTimeWindowHours": pointInTimeWindowHours,
        }
    )
    services.backup.set_schedule(src.id, fields)
    return _back(group_id, cluster_id)


@router.post("/projects/{group_id}/backup/{cluster_id}/snapshots")
def take_snapshot(services: ServicesDep, viewer: ChangerDep, group_id: Id, cluster_id: Id) -> Response:
    """Take snapshot now: POST snapshots' call; the daemon's next tick takes it."""
    project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    services.clusters.get(group_id, cluster_id)
    ids = services.backup.request_cluster_snapshot(group_id, cluster_id)
    return _back(group_id, cluster_id, f"?queued={','.join(ids)}")

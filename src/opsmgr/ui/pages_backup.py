"""Continuous Backup: deployments with backup state, start and stop, schedule and retention, snapshots, the
PITR window as a timeline, Take snapshot now, and each deployment's restore jobs.

Every read and change is the service call of the public API's handler for the same thing
(``server.backup_api``): clusters are ``services.clusters.ensure`` of the replica sets of the automation
config, start and stop are ``set_status`` (PATCH backupConfigs), the schedule ``sharded.set_schedule`` (PATCH
snapshotSchedule), Take snapshot now ``backup.request_cluster_snapshot`` (POST snapshots), snapshots and
window ``sharded.listing`` (GET snapshots), each with the API's role: GROUP_READ_ONLY to see,
GROUP_BACKUP_ADMIN to change. A sharded cluster is one deployment, backed up and restored as one (its window
the intersection of its parts'); its shards' and config servers' replica sets are shown inside it, each with
its own window for information, never as deployments of their own.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup``, ``opsmgr.server``,
``opsmgr.ui.web``, ``opsmgr.ui.project`` and ``opsmgr.ui.timeline``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from opsmgr.backup.daemon import Source
from opsmgr.backup.sharded import ShardedSpec, specs_of
from opsmgr.errors import NotFound
from opsmgr.jsontypes import JsonObject
from opsmgr.server.backup_api import job_json, project_clusters, refresh_sharded
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
class Deployment:
    """A deployment the page lists: a replica set of its own, or a sharded cluster (``spec``)."""

    id: str
    name: str
    spec: ShardedSpec | None = None


def deployments(services: Services, group_id: str) -> list[Deployment]:
    """The project's deployments as the config has them now: its sharded clusters, then its replica sets that
    are no part of one (``backup_api.project_clusters`` records both)."""
    replica_sets = project_clusters(services, group_id)
    specs = specs_of(group_id, services.automation.config(group_id))
    parts = {p.replica_set for spec in specs for p in spec.parts}
    return [Deployment(spec.cluster_id, spec.name, spec) for spec in specs] + [
        Deployment(str(c["_id"]), str(c["replicaSetName"]))
        for c in replica_sets
        if c["replicaSetName"] not in parts
    ]


def deployment(services: Services, group_id: str, cluster_id: str) -> Deployment:
    """The project's deployment ``cluster_id`` (one no longer in the config too: its backups stay); 404 for an
    id the project does not have, and for a shard's or config server's replica set, which is backed up and
    restored with its sharded cluster only."""
    listed = deployments(services, group_id)
    found = next((d for d in listed if d.id == cluster_id), None)
    if found is not None:
        return found
    spec = services.clusters.sharded(group_id, cluster_id)
    if spec is not None:
        return Deployment(spec.cluster_id, spec.name, spec)
    name = str(services.clusters.get(group_id, cluster_id)["replicaSetName"])
    owner = next((d for d in listed if d.spec is not None and d.spec.part(name) is not None), None)
    if owner is not None:
        raise NotFound(
            f"replica set {name} is a part of sharded cluster {owner.name}: it is backed up and restored "
            f"with its cluster ({owner.id})",
            error_code="CLUSTER_NOT_FOUND",
            clusterId=cluster_id,
        )
    return Deployment(cluster_id, name)


@dataclass(frozen=True)
class PartView:
    """A shard's or config server's replica set inside its cluster's entry, with its own window."""

    name: str
    kind: str
    hosts: list[str]
    timeline: Timeline


@dataclass(frozen=True)
class ClusterView:
    """One deployment's backup as the page shows it."""

    id: str
    name: str
    status: str
    schedule: JsonObject | None
    snapshots: list[JsonObject]
    window: list[JsonObject]
    timeline: Timeline
    jobs: list[JsonObject]
    hosts: list[str]
    simulated: bool
    parts: list[PartView]

    @property
    def sharded(self) -> bool:
        return bool(self.parts)

    @property
    def backed_up(self) -> bool:
        return self.schedule is not None


def process_hosts(services: Services, group_id: str, names: Iterable[str]) -> list[str]:
    """The hostnames of the config's processes of these names."""
    wanted = set(names)
    config = services.automation.config(group_id)
    return sorted({str(p["hostname"]) for p in config.get("processes", []) if p.get("name") in wanted})


def replica_set_hosts(services: Services, group_id: str, replica_set: str) -> list[str]:
    config = services.automation.config(group_id)
    sets = [rs for rs in config.get("replicaSets", []) if rs["_id"] == replica_set]
    return process_hosts(services, group_id, (str(m.get("host")) for rs in sets for m in rs["members"]))


def deployment_hosts(services: Services, group_id: str, found: Deployment) -> list[str]:
    """A replica set's hosts, or every host of a sharded cluster (its parts' and its mongos')."""
    if found.spec is None:
        return replica_set_hosts(services, group_id, found.name)
    hosts = set(process_hosts(services, group_id, found.spec.mongos))
    for part in found.spec.parts:
        hosts.update(replica_set_hosts(services, group_id, part.replica_set))
    return sorted(hosts)


PART_KINDS = {"CONFIG_SERVER_REPLICA_SET": "Config servers", "REPLICA_SET": "Shard"}


def _part_views(
    services: Services, group_id: str, spec: ShardedSpec, sources: list[Source]
) -> list[PartView]:
    by_name = {s.name: s for s in sources}
    out = []
    for part in spec.parts:
        src = by_name.get(part.replica_set)
        window = services.backup.window_json(src.id) if src is not None else []
        out.append(
            PartView(
                name=part.replica_set,
                kind=PART_KINDS.get(part.type_name, part.type_name),
                hosts=replica_set_hosts(services, group_id, part.replica_set),
                timeline=timeline(ranges_of(window)),
            )
        )
    return out


def _listing(services: Services, group_id: str, cluster_id: str) -> tuple[list[JsonObject], list[JsonObject]]:
    """GET snapshots' snapshots and window; none while a sharded cluster has a part not backed up yet (a
    shard added while its backup was stopped: starting it again backs the part up)."""
    try:
        return services.restores.sharded.listing(group_id, cluster_id)
    except NotFound:
        return [], []


def cluster_view(
    services: Services, group_id: str, found: Deployment, request: Request, may_restore: bool
) -> ClusterView:
    sources = services.backup.sources(group_id, found.id)
    snapshots, window = _listing(services, group_id, found.id) if sources else ([], [])
    marks = [
        (at, f"Snapshot {s['id']}")
        for s in snapshots
        if (at := iso_ms((s["lastOplogAppliedTimestamp"] or {}).get("date"))) is not None
    ]
    jobs = [
        job_json(services, j, str(request.base_url), may_restore)
        for j in services.restores.of_cluster(group_id, found.id)
    ]
    hosts = deployment_hosts(services, group_id, found)
    return ClusterView(
        id=found.id,
        name=found.name,
        status=services.clusters.status(found.id).value,
        schedule=sources[0].schedule.to_json() if sources else None,
        snapshots=snapshots,
        window=window,
        timeline=timeline(ranges_of(window), marks),
        jobs=jobs,
        hosts=hosts,
        simulated=bool(set(hosts) & simulated_hosts(services, group_id)),
        parts=[] if found.spec is None else _part_views(services, group_id, found.spec, sources),
    )


def _fragment_context(view: ClusterView, group_id: str) -> dict[str, object]:
    return {"c": view, "group_id": group_id, "utc": utc}


@router.get("/projects/{group_id}/backup")
def backup_page(
    request: Request, services: ServicesDep, viewer: ViewerDep, group_id: Id, queued: str = ""
) -> Response:
    project = project_page(services, viewer, group_id)
    views = [
        cluster_view(services, group_id, d, request, project.may_back_up)
        for d in deployments(services, group_id)
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
    deployment(services, group_id, cluster_id)

    def render_now() -> str:
        found = deployment(services, group_id, cluster_id)
        view = cluster_view(services, group_id, found, request, project.may_back_up)
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
    """Start or stop backup: PATCH backupConfigs' call, with its role and its refusals (another status, a
    sharded cluster's part alone)."""
    project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    refresh_sharded(services, group_id)
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
    """PATCH snapshotSchedule's call: the schedule of the cluster's backup (every part's of a sharded one)."""
    project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    refresh_sharded(services, group_id)
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
    services.restores.sharded.set_schedule(group_id, cluster_id, fields)
    return _back(group_id, cluster_id)


@router.post("/projects/{group_id}/backup/{cluster_id}/snapshots")
def take_snapshot(services: ServicesDep, viewer: ChangerDep, group_id: Id, cluster_id: Id) -> Response:
    """Take snapshot now: POST snapshots' call; the daemon's next tick takes it."""
    project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    refresh_sharded(services, group_id)
    services.clusters.check(group_id, cluster_id)
    ids = services.backup.request_cluster_snapshot(group_id, cluster_id)
    return _back(group_id, cluster_id, f"?queued={','.join(ids)}")

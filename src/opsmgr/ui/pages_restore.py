"""The restore wizard in the seed's words (Snapshot, Point in Time, Oplog timestamp; Choose Cluster to Restore
to or Download; confirm) and the restore job page with live progress, and a Cancel button while an automated
restore is in progress (DELETE restoreJobs/{id}'s call: the page then states what the target holds).

The wizard's steps are GET forms that carry what was chosen so far; each step asks the service that plans a
restore (``backup.cluster_restore_plans``, the planning POST restoreJobs does first) whether the target is
restorable, so a point outside the window is refused at step 1 with the API's message and restorable ranges.
The confirmation POSTs to the call POST restoreJobs makes (``services.restores.create`` after the same role
checks: GROUP_BACKUP_ADMIN on the project restored and on the project restored into).

A sharded cluster is restored as one (``sharded.restore_plans``: every part to one point inside the cluster's
window) into a sharded cluster: the wizard offers the sharded clusters the viewer may restore into (a
replica set's backup the replica sets), its confirmation names every part replaced, and the job page shows
each part's progress and, once cancelled, what each process holds.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup``, ``opsmgr.server``,
``opsmgr.ui.web``, ``opsmgr.ui.project``, ``opsmgr.ui.timeline`` and ``opsmgr.ui.pages_backup``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from opsmgr.backup.jobs import IntoDeployment, parse_delivery
from opsmgr.errors import InvalidInput, OpsmgrError
from opsmgr.jsontypes import JsonObject
from opsmgr.server import backup_api
from opsmgr.server.deps import ServicesDep
from opsmgr.server.services import Services
from opsmgr.store.appdb import Role
from opsmgr.ui.pages_backup import (
    Deployment,
    Id,
    deployment,
    deployment_hosts,
    deployments,
    process_hosts,
    replica_set_hosts,
)
from opsmgr.ui.project import ProjectPage, project_page
from opsmgr.ui.timeline import ranges_of, timeline, utc
from opsmgr.ui.web import ChangerDep, PageRoute, Viewer, ViewerDep, fragment, live, render

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

METHODS = (("snapshot", "Snapshot"), ("pit", "Point in Time"), ("oplog", "Oplog timestamp"))


def _short(alias: str | None = None, default: str = "", max_length: int = 64) -> Any:
    return Field(default, alias=alias, max_length=max_length)


class Choice(BaseModel):
    """What the wizard has been told so far, as typed into its forms: the GET steps' query and the
    confirmation's form carry the same fields, by these names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    method: str = _short()
    snapshot_id: str = _short("snapshotId")
    date: str = _short()
    time: str = _short()
    oplog_ts: str = _short("oplogTs")
    oplog_inc: str = _short("oplogInc")
    delivery: str = _short()  # "automated" or "download"
    target: str = _short(max_length=130)  # "groupId:clusterId" of the deployment restored into
    expiration_hours: str = _short("expirationHours", "1")
    max_downloads: str = _short("maxDownloads", "1")

    def hidden(self) -> list[tuple[str, str]]:
        """The choice as the next form's hidden fields."""
        return [(k, str(v)) for k, v in self.model_dump(by_alias=True).items() if v]


def _number(text: str) -> object:
    """An integer where the text is one; else the text, for the service to refuse with its message."""
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() and len(text) < 20 else text


def _millis(date: str, clock: str) -> int:
    """A date and time of day in UTC as milliseconds since the epoch."""
    for layout in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            moment = datetime.strptime(f"{date.strip()} {clock.strip()}", layout).replace(tzinfo=UTC)
        except ValueError:
            continue
        return int(moment.timestamp() * 1000)
    raise InvalidInput(
        "enter the date as YYYY-MM-DD and the time (UTC) as HH:MM or HH:MM:SS", field="pointInTimeUTCMillis"
    )


def target_fields(choice: Choice) -> JsonObject:
    """The restore job's target fields (POST restoreJobs' ``snapshotId``, ``pointInTimeUTCMillis`` or
    ``oplogTs``/``oplogInc``)."""
    if choice.method == "snapshot":
        return {"snapshotId": choice.snapshot_id}
    if choice.method == "pit":
        return {"pointInTimeUTCMillis": _millis(choice.date, choice.time)}
    if choice.method == "oplog":
        return {"oplogTs": _number(choice.oplog_ts), "oplogInc": _number(choice.oplog_inc or "0")}
    raise InvalidInput("choose Snapshot, Point in Time or Oplog timestamp", field="method")


def delivery_fields(choice: Choice) -> JsonObject:
    """POST restoreJobs' ``delivery``."""
    if choice.delivery == "download":
        return {
            "methodName": "HTTP",
            "expirationHours": _number(choice.expiration_hours),
            "maxDownloads": _number(choice.max_downloads),
        }
    if choice.delivery == "automated":
        group_id, _, cluster_id = choice.target.partition(":")
        return {"methodName": "AUTOMATED_RESTORE", "targetGroupId": group_id, "targetClusterId": cluster_id}
    raise InvalidInput("choose a cluster to restore to, or Download", field="delivery")


@dataclass(frozen=True)
class TargetOption:
    group: JsonObject
    found: Deployment
    hosts: list[str]

    @property
    def value(self) -> str:
        return f"{self.group['_id']}:{self.found.id}"


def restore_targets(services: Services, viewer: Viewer, sharded: bool) -> list[TargetOption]:
    """The deployments of the restored one's kind (sharded clusters, or replica sets) of every project the
    viewer may restore into (GROUP_BACKUP_ADMIN there, the role POST restoreJobs asks of the target's
    project)."""
    out = []
    for group in services.appdb.groups():
        if not viewer.may(group, Role.GROUP_BACKUP_ADMIN):
            continue
        gid = str(group["_id"])
        for found in deployments(services, gid):
            if (found.spec is not None) == sharded:
                out.append(TargetOption(group, found, deployment_hosts(services, gid, found)))
    return out


def _wizard_context(
    services: Services, project: ProjectPage, cluster_id: str, choice: Choice
) -> dict[str, object]:
    found = deployment(services, project.id, cluster_id)
    snapshots, window = services.restores.sharded.listing(project.id, cluster_id)
    return {
        **project.context(),
        "title": f"Restore {found.name}",
        "cluster": found,
        "snapshots": snapshots,
        "timeline": timeline(ranges_of(window)),
        "choice": choice,
        "methods": METHODS,
        "utc": utc,
        "action": f"/ui/projects/{project.id}/backup/{cluster_id}/restore",
    }


def _replaced(services: Services, source: Deployment, delivery: IntoDeployment) -> dict[str, object]:
    """What an automated restore replaces: the target, and its hosts (a sharded cluster's: each part's
    replica set restored, and its mongos, stopped with them); 400 for a target of the other kind."""
    target = deployment(services, delivery.group_id, delivery.cluster_id)
    if (target.spec is None) != (source.spec is None):
        kind = "a replica set" if target.spec is None else "a sharded cluster"
        raise InvalidInput(
            f"{target.name} is {kind}: a sharded cluster's backup is restored into a sharded cluster, a "
            "replica set's into a replica set",
            field="delivery.targetClusterId",
        )
    hosts = deployment_hosts(services, delivery.group_id, target)
    parts = []
    if source.spec is not None and target.spec is not None:
        parts = [
            (p.replica_set, replica_set_hosts(services, delivery.group_id, p.replica_set))
            for p in source.spec.parts
        ]
    routers = [] if target.spec is None else process_hosts(services, delivery.group_id, target.spec.mongos)
    return {"target_cluster": target, "target_hosts": hosts, "target_parts": parts, "target_routers": routers}


def _step(services: Services, viewer: Viewer, context: dict[str, object], choice: Choice) -> tuple[int, str]:
    """Which step the choice has reached (1, 2 or 3), or the step to show again with the refusal."""
    if not choice.method:
        return 1, ""
    project = context["project"]
    assert isinstance(project, ProjectPage)
    source = context["cluster"]
    assert isinstance(source, Deployment)
    try:
        fields = target_fields(choice)
        plans = services.restores.sharded.restore_plans(project.id, source.id, fields)
        context["plan"] = plans[0][1].to_json()
        context["part_plans"] = [(p.spec.replica_set, r.to_json()) for p, r in plans if p is not None]
    except OpsmgrError as exc:
        context["status"] = exc.http_status
        return 1, exc.detail
    context["targets"] = restore_targets(services, viewer, sharded=source.spec is not None)
    if not choice.delivery:
        return 2, ""
    try:
        sent = {**fields, "delivery": delivery_fields(choice)}
        delivery = parse_delivery(sent)
        target_group = backup_api.restore_target(services, viewer.principal, delivery)
        if isinstance(delivery, IntoDeployment) and target_group is not None:
            context["target_group"] = target_group
            context.update(_replaced(services, source, delivery))
    except OpsmgrError as exc:
        context["status"] = exc.http_status
        return 2, exc.detail
    return 3, ""


@router.get("/projects/{group_id}/backup/{cluster_id}/restore")
def restore_wizard(
    request: Request,
    services: ServicesDep,
    viewer: ViewerDep,
    group_id: Id,
    cluster_id: Id,
    choice: Annotated[Choice, Query()],
) -> Response:
    project = project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    context = _wizard_context(services, project, cluster_id, choice)
    step, error = _step(services, viewer, context, choice)
    status = context.pop("status", 200) if error else 200
    assert isinstance(status, int)
    context.update(step=step, error=error)
    return render(request, "restore_wizard.html", context, viewer=viewer, status=status)


@router.post("/projects/{group_id}/backup/{cluster_id}/restore")
def create_restore(
    services: ServicesDep,
    viewer: ChangerDep,
    group_id: Id,
    cluster_id: Id,
    choice: Annotated[Choice, Form()],
) -> Response:
    """POST restoreJobs' checks and call: GROUP_BACKUP_ADMIN here and on the target's project, then
    ``restores.create`` (planned first: 400 outside the window, 409 blocks missing or Restoration Mode)."""
    project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    sent = {**target_fields(choice), "delivery": delivery_fields(choice)}
    job = backup_api.create_restore(services, viewer.principal, group_id, cluster_id, sent)
    return RedirectResponse(
        f"/ui/projects/{group_id}/backup/{cluster_id}/restores/{job['_id']}", status_code=303
    )


# The restore job page.


def job_context(
    services: Services, request: Request, viewer: Viewer, project: ProjectPage, cluster_id: str, job_id: str
) -> dict[str, object]:
    """A restore job as GET restoreJobs/{id} shows it to this viewer, with its progress and steps; the
    target's processes by name only to a viewer who may read the target's project (GET automationConfig's
    role there: a restore may go into a project of another organization)."""
    raw = services.restores.get(project.id, cluster_id, job_id)
    job = backup_api.job_json(services, raw, str(request.base_url), project.may_back_up)
    delivery = job["delivery"]
    # Each part's target processes (a replica set's job: its one, unnamed), with what each holds.
    parts: list[tuple[JsonObject | None, list[tuple[str, str]]]] = []
    if "parts" in job:
        parts = [(p, [(n, _member_state(raw, n)) for n in p["processes"]]) for p in job["parts"]]
    elif delivery["methodName"] == "AUTOMATED_RESTORE":
        names = _process_names(services, delivery["targetGroupId"], delivery["targetReplicaSetName"])
        parts = [(None, [(n, _member_state(raw, n)) for n in names])]
    processes = [held for _, listed in parts for held in listed]
    done = sum(1 for _, state in processes if state == LOADED)
    if job["statusName"] == "FINISHED":
        fraction = 1.0
    elif job["phase"] == "CANCELLED":  # what was loaded, not how far the documents' stream went
        fraction = done / len(processes) if processes else 0.0
    elif "progress" in job:
        fraction = float(job["progress"]["fraction"])
    else:
        fraction = done / len(processes) if processes else 0.0
    named = not processes or _may_read(services, viewer, delivery["targetGroupId"])
    if not named:
        parts = [(part, []) for part, _ in parts]
    return {
        "job": job,
        "parts": parts,
        "named": named,  # whether the target's processes are named and counted
        "percent": round(fraction * 100),
        "group_id": project.id,
        "cluster_id": cluster_id,
    }


LOADED = "loaded"


def _member_state(raw: JsonObject, name: str) -> str:
    """A target member as the job page names it: loaded, pending, or what a cancellation left it with."""
    held = raw.get("cancellation") or {}
    if raw["statusName"] == "FINISHED" or name not in raw.get("pending", []):
        return LOADED
    if name in held.get("partiallyLoaded", []):
        return "partly loaded"
    return "not loaded: its data from before" if held else "pending"


def _may_read(services: Services, viewer: Viewer, group_id: str) -> bool:
    try:
        return viewer.may(services.appdb.group(group_id), Role.GROUP_READ_ONLY)
    except OpsmgrError:  # the target project is gone
        return False


def _process_names(services: Services, group_id: str, replica_set: str) -> list[str]:
    config = services.automation.config(group_id)
    sets = [rs for rs in config.get("replicaSets", []) if rs["_id"] == replica_set]
    return sorted(str(m["host"]) for rs in sets for m in rs["members"])


@router.get("/projects/{group_id}/backup/{cluster_id}/restores/{job_id}")
def restore_job_page(
    request: Request, services: ServicesDep, viewer: ViewerDep, group_id: Id, cluster_id: Id, job_id: Id
) -> Response:
    project = project_page(services, viewer, group_id)
    cluster = deployment(services, group_id, cluster_id)
    context = job_context(services, request, viewer, project, cluster_id, job_id)
    job = context["job"]
    assert isinstance(job, dict)
    automated = job["delivery"]["methodName"] == "AUTOMATED_RESTORE"
    cancellable = automated and job["phase"] in ("QUEUED", "RUNNING")
    context.update(
        project.context(),
        cluster=cluster,
        title=f"Restore job {job_id}",
        may_cancel=cancellable and project.may_back_up,
        csrf=viewer.csrf,
    )
    return render(request, "restore_job.html", context, viewer=viewer)


@router.post("/projects/{group_id}/backup/{cluster_id}/restores/{job_id}/cancel")
def cancel_restore(
    services: ServicesDep, viewer: ChangerDep, group_id: Id, cluster_id: Id, job_id: Id
) -> Response:
    """DELETE restoreJobs/{id}'s checks and call (GROUP_BACKUP_ADMIN here and on the target's project; 409
    for a job that ended), then the job page, which states what the target now holds."""
    project_page(services, viewer, group_id, Role.GROUP_BACKUP_ADMIN)
    backup_api.cancel_restore(services, viewer.principal, group_id, cluster_id, job_id)
    return RedirectResponse(f"/ui/projects/{group_id}/backup/{cluster_id}/restores/{job_id}", status_code=303)


@router.get("/projects/{group_id}/backup/{cluster_id}/restores/{job_id}/live")
def restore_job_live(
    request: Request, services: ServicesDep, viewer: ViewerDep, group_id: Id, cluster_id: Id, job_id: Id
) -> Response:
    project = project_page(services, viewer, group_id)
    services.restores.get(group_id, cluster_id, job_id)

    def render_now() -> str:
        return fragment(
            "_restore_job.html", job_context(services, request, viewer, project, cluster_id, job_id)
        )

    return live(request, render_now)

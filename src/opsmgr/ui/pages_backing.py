"""The backing databases, on a secondary: the primary's three stores side by side, the point all three restore
to together, the restore commands, restore history.

The page reads what GET backingDatabases and its restore jobs read (``server.secondary_api``): the backing
deployments of each project (``clusters.backing_clusters``), per store its snapshots, window and backup
status (``backup``), the times all three restore to together (``backup.cluster_window``) and the restore jobs
(``backing_restores``), under the API's rule: GROUP_READ_ONLY on the project that holds the deployment. A
server whose projects hold no backing deployment is not a secondary, and the page says so.

The restore history is a live region (``/ui/backing/{gid}/{cid}/jobs``): a restore the backing agent
carries out shows its phase, percent, documents and message as the agent reports them, and, to a user
holding GROUP_BACKUP_ADMIN on the project, a Cancel button (a CSRF-checked form) that calls what
``DELETE .../backingDatabases/{cid}/restoreJobs/{jobId}`` calls (``BackingRestores.cancel``); a cancelled
job shows its statement of what each store holds.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup``, ``opsmgr.server``,
``opsmgr.ui.web``, ``opsmgr.ui.project`` and ``opsmgr.ui.timeline``.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse

from opsmgr.jsontypes import JsonObject
from opsmgr.server.deps import ServicesDep
from opsmgr.server.services import Services
from opsmgr.store.appdb import Role
from opsmgr.store.backing import LABELS, StoreName
from opsmgr.ui.timeline import Timeline, ranges_of, timeline, utc
from opsmgr.ui.web import ChangerDep, PageRoute, Viewer, ViewerDep, fragment, live, render

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PRIMARY_DIR = "/path/to/the/primary/data-dir"
Id = Annotated[str, Path(min_length=1, max_length=64)]
CANCELLABLE = ("QUEUED", "RUNNING")


def iso(ms: int) -> str:
    """The instant ``opsmgr backup restore-stores --at`` takes."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


@dataclass(frozen=True)
class StoreView:
    name: str
    label: str
    snapshots: list[JsonObject]
    window: list[JsonObject]
    timeline: Timeline
    status: JsonObject


@dataclass(frozen=True)
class BackingView:
    group: JsonObject
    cluster: JsonObject
    stores: list[StoreView]
    together: list[tuple[int, int]]
    together_timeline: Timeline
    jobs: list[JsonObject]
    commands: list[tuple[str, str]]  # (what it does, the command)
    may_cancel: bool  # GROUP_BACKUP_ADMIN on the project: an agent's restore under way can be cancelled

    @property
    def latest(self) -> int | None:
        return self.together[-1][1] if self.together else None


def _stores(services: Services, cluster: JsonObject) -> list[StoreView]:
    sources = services.clusters.backing_sources(cluster)
    out = []
    for name in StoreName:
        src = sources.get(name.value)
        if src is None:
            continue
        window = services.backup.window_json(src.id)
        out.append(
            StoreView(
                name=name.value,
                label=LABELS[name],
                snapshots=services.backup.snapshots_json(src.id),
                window=window,
                timeline=timeline(ranges_of(window)),
                status=services.backup.status(src.id),
            )
        )
    return out


def restore_commands(
    base_url: str, group_id: str, cluster_id: str, latest: int | None
) -> list[tuple[str, str]]:
    """``opsmgr backup restore-stores`` as it is run on the primary's host, the primary stopped (the keys
    from ``OPSMGR_PUBLIC_KEY`` and ``OPSMGR_PRIVATE_KEY``, never on the command line)."""
    if latest is None:
        return []
    words = ["opsmgr", "backup", "restore-stores", "--url", base_url, "--group", group_id]
    words += ["--cluster", cluster_id, "--primary-data-dir", PRIMARY_DIR, "--at", iso(latest)]
    return [
        ("All three stores to the latest point they restore to together", shlex.join(words)),
        (
            "Only the application database (the metadata stores left as they are)",
            shlex.join([*words, "--app-only"]),
        ),
    ]


def backing_view(
    services: Services, viewer: Viewer, group: JsonObject, cluster: JsonObject, base_url: str
) -> BackingView:
    gid, cid = str(group["_id"]), str(cluster["_id"])
    together = services.backup.cluster_window(gid, cid)
    return BackingView(
        group=group,
        cluster=cluster,
        stores=_stores(services, cluster),
        together=together,
        together_timeline=timeline(together),
        jobs=services.backing_restores.of_cluster(gid, cid),
        commands=restore_commands(base_url, gid, cid, together[-1][1] if together else None),
        may_cancel=viewer.may(group, Role.GROUP_BACKUP_ADMIN),
    )


def visible_backing(services: Services, viewer: Viewer) -> tuple[int, list[tuple[JsonObject, JsonObject]]]:
    """How many backing deployments this server holds, and those in projects the viewer may read."""
    total = 0
    seen = []
    for group in services.appdb.groups():
        clusters = services.clusters.backing_clusters(str(group["_id"]))
        total += len(clusters)
        if clusters and viewer.may(group, Role.GROUP_READ_ONLY):
            seen += [(group, c) for c in clusters]
    return total, seen


@router.get("/backing")
def backing_page(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    total, seen = visible_backing(services, viewer)
    base_url = str(request.base_url).rstrip("/")
    views = [backing_view(services, viewer, g, c, base_url) for g, c in seen]
    context = {
        "title": "Backing databases",
        "is_secondary": total > 0,
        "hidden": total - len(views),
        "backings": views,
        "utc": utc,
    }
    return render(request, "backing.html", context, viewer=viewer)


def _jobs_context(services: Services, viewer: Viewer, group_id: str, cluster_id: str) -> dict[str, object]:
    """The restore history of one backing deployment, for a viewer who may read its project (403/404 as the
    API answers)."""
    group = services.appdb.group(group_id)
    viewer.principal.require_group(group, Role.GROUP_READ_ONLY)
    services.clusters.backing(group_id, cluster_id)
    return {
        "group_id": group_id,
        "cluster_id": cluster_id,
        "jobs": services.backing_restores.of_cluster(group_id, cluster_id),
        "may_cancel": viewer.may(group, Role.GROUP_BACKUP_ADMIN),
        "cancellable": CANCELLABLE,
        "csrf": viewer.csrf,
        "utc": utc,
    }


@router.get("/backing/{group_id}/{cluster_id}/jobs")
def backing_jobs_live(
    request: Request, services: ServicesDep, viewer: ViewerDep, group_id: Id, cluster_id: Id
) -> Response:
    """The restore history's live region: an agent's restore's progress as it reports it."""
    _jobs_context(services, viewer, group_id, cluster_id)
    return live(
        request, lambda: fragment("_backing_jobs.html", _jobs_context(services, viewer, group_id, cluster_id))
    )


@router.post("/backing/{group_id}/{cluster_id}/restores/{job_id}/cancel")
def cancel_backing_restore(
    services: ServicesDep, viewer: ChangerDep, group_id: Id, cluster_id: Id, job_id: Id
) -> Response:
    """DELETE .../backingDatabases/{cid}/restoreJobs/{jobId}'s check (GROUP_BACKUP_ADMIN; 409 for a job that
    ended or a drill's) and call, then the page, whose history states what each store now holds."""
    viewer.principal.require_group(services.appdb.group(group_id), Role.GROUP_BACKUP_ADMIN)
    services.backing_restores.cancel(group_id, cluster_id, job_id)
    return RedirectResponse(f"/ui/backing#backing-h-{cluster_id}", status_code=303)

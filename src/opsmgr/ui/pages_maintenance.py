"""Rolling maintenance, live: each replica set's current change, its members' steps, the step-down, blocks,
warnings, the lease, and the finished changes' figures.

The page reads what the public API reads: ``GET /groups/{id}/maintenance``'s changes
(``maintenance.changes``), the ``maintenance`` section of ``automationStatus`` for the members' steps and the
lease (``maintenance.status_views``) and ``GET /groups/{id}/hosts`` for what is simulated; its board is a
``data-live`` fragment, sent again each time it changes. Releasing a stuck lease is the call of ``DELETE
.../maintenance/replicaSets/{rs}/lease`` with its role (Project Automation Admin), its guard (Restoration
Mode refuses it) and its refusal when nobody holds the lease, behind a confirmation checkbox.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.server``, ``opsmgr.ui.web`` and
``opsmgr.ui.project``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse

from opsmgr.server.deps import ServicesDep
from opsmgr.server.services import Services
from opsmgr.store.appdb import Role
from opsmgr.ui.project import ProjectPage, project_page
from opsmgr.ui.web import (
    ChangerDep,
    Confirmation,
    PageRoute,
    Viewer,
    ViewerDep,
    fragment,
    live,
    render,
    require_confirmed,
)

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

RsId = Annotated[str, Path(min_length=1, max_length=255)]

# What a member of the change under way is doing, by the move its unit carries out next (the moves before
# it are done: when PerformTask is next, the member is already out in standalone mode).
STEP_LABELS = {
    "AcquireMaintenanceLease": "taking the lease",
    "WaitPreferredPrimaryCaughtUp": "step-down: waiting for a secondary to catch up",
    "StepDown": "step-down",
    "WaitElection": "step-down: waiting for the election",
    "TransferVoteToArbiter": "handing its vote to the temporary arbiter",
    "RestartStandalone": "going out in standalone mode",
    "PerformTask": "out in standalone mode: task",
    "RestartReplSet": "task done: coming back",
    "WaitSecondaryCaughtUp": "back: catching up",
    "RestoreVote": "caught up: vote restored",
    "RemoveFromReplicaSet": "leaving the set",
    "Shutdown": "shutting down",
    "ReleaseMaintenanceLease": "caught up: releasing the lease",
    "StartTemporaryArbiter": "starting the temporary arbiter",
    "AddTemporaryArbiter": "adding the temporary arbiter",
    "RemoveTemporaryArbiter": "removing the temporary arbiter",
    "StopTemporaryArbiter": "stopping the temporary arbiter",
    "WaitPrimary": "waiting for a primary",
}
STEP_DOWN_MOVES = frozenset({"WaitPreferredPrimaryCaughtUp", "StepDown", "WaitElection"})
DONE = "DONE"


def when(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def member_rows(status: dict[str, Any], simulated: set[str]) -> list[dict[str, Any]]:
    """Each member of a replica set's latest change with its step in words."""
    rows = []
    for m in status.get("members", []):
        if m["phase"] == "done":
            label = "caught up"
        elif m["phase"] == "inProgress":
            label = STEP_LABELS.get(str(m["step"]), str(m["step"]))
        else:
            label = "waiting for its turn"
        rows.append(m | {"label": label, "simulated": m["name"] in simulated})
    return rows


def _simulated(services: Services, group_id: str) -> set[str]:
    """Process names (and host:port) of the project that run on the sim driver."""
    names: set[str] = set()
    for h in services.automation.hosts(group_id):
        if h.get("simulated"):
            names.update({str(h.get("processName")), f"{h.get('hostname')}:{h.get('port')}"})
    return names


def _lease(view: dict[str, Any]) -> dict[str, Any]:
    """The lease with its expiry as an instant to the second: a countdown would change the board (and
    replace the release form under the user's hand) four times a second."""
    left = view.get("expiresInSecs")
    expires = when(round(time.time() + left)) if isinstance(left, int | float) else "—"
    return view | {"expiresText": expires}


def _finished(view: dict[str, Any]) -> dict[str, Any]:
    # The API's instants, ISO-8601 strings, shown as they are.
    return view | {"createdText": view.get("created") or "—", "finishedText": view.get("finished") or "—"}


def board(services: Services, project: ProjectPage, viewer: Viewer) -> dict[str, Any]:
    """What the live board shows, from the API's own service calls."""
    gid = project.id
    views = services.maintenance.changes(gid)
    by_id = {v["id"]: v for v in views}
    simulated = _simulated(services, gid)
    sets = []
    for status in services.maintenance.status_views(gid):
        rs = status["replicaSet"]
        change = by_id.get(status["changeId"])
        under_way = change is not None and change["state"] != DONE
        sets.append(
            {
                "rs": rs,
                "status": status,
                "change": change,
                "under_way": under_way,
                "members": member_rows(status, simulated),
                "stepping_down": under_way and status.get("currentStep") in STEP_DOWN_MOVES,
                "lease": _lease(status.get("lease") or {}),
                "queued": [v for v in views if v["replicaSet"] == rs and v["state"] == "QUEUED"],
            }
        )
    return {
        "project": project,
        "sets": sets,
        "finished": [_finished(v) for v in views if v["state"] == DONE],
        "csrf": viewer.csrf,
        "may_release": project.may_automate,
        "refused": project.change_refused,
    }


@router.get("/projects/{group_id}/maintenance")
def maintenance_page(request: Request, services: ServicesDep, viewer: ViewerDep, group_id: str) -> Response:
    project = project_page(services, viewer, group_id)
    context = {
        **project.context(),
        **board(services, project, viewer),
        "title": f"Rolling maintenance · {project.group['name']}",
        "live_url": f"/ui/projects/{project.id}/maintenance/live",
    }
    return render(request, "maintenance.html", context, viewer=viewer)


@router.get("/projects/{group_id}/maintenance/live")
def maintenance_live(request: Request, services: ServicesDep, viewer: ViewerDep, group_id: str) -> Response:
    project_page(services, viewer, group_id)  # refused now rather than as a stream

    def render_board() -> str:
        # Checked again each time: a user who loses the role sees the stream end.
        project = project_page(services, viewer, group_id)
        return fragment("_maintenance_board.html", board(services, project, viewer))

    return live(request, render_board)


@router.post("/projects/{group_id}/maintenance/replicaSets/{rs_id}/lease/release")
def release_lease(
    services: ServicesDep,
    viewer: ChangerDep,
    group_id: str,
    rs_id: RsId,
    confirm: Confirmation = "",
) -> Response:
    """DELETE .../maintenance/replicaSets/{rs}/lease's checks and call, once the user has ticked the box."""
    project = project_page(services, viewer, group_id, Role.GROUP_AUTOMATION_ADMIN)
    require_confirmed(confirm, "that the lease's holder will not come back on its own")
    services.deployments.release_lease(project.id, rs_id)
    return RedirectResponse(f"/ui/projects/{project.id}/maintenance#rs-{rs_id}", status_code=303)

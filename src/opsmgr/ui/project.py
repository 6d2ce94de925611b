"""What every page of one project shares: the project, what the viewer may do on it (button by button), its
Restoration Mode banner, and the reason deployment changes are refused right now.

May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.restoration.mode``, ``opsmgr.store``,
``opsmgr.server.services`` and ``opsmgr.ui.web``.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsmgr.errors import OpsmgrError
from opsmgr.jsontypes import JsonObject
from opsmgr.restoration.mode import FORCE_EXIT_WARNING
from opsmgr.server.services import Services
from opsmgr.store.appdb import Role
from opsmgr.ui.web import Viewer

# The project pages, in the navigation bar's order: (path under the project, label).
PROJECT_PAGES = (
    ("deployment", "Deployment"),
    ("maintenance", "Rolling maintenance"),
    ("backup", "Continuous Backup"),
    ("alerts", "Alerts"),
)


def project_links(group_id: str) -> list[tuple[str, str]]:
    return [(f"/ui/projects/{group_id}/{path}", label) for path, label in PROJECT_PAGES]


@dataclass(frozen=True)
class ProjectPage:
    """A project as a page shows it to one viewer."""

    group: JsonObject
    roles: frozenset[Role]
    restoration: JsonObject  # GET .../restorationMode's document
    change_refused: str  # why a deployment change would be refused now ("" when it would not)

    @property
    def id(self) -> str:
        return str(self.group["_id"])

    @property
    def may_read(self) -> bool:
        return Role.GROUP_READ_ONLY in self.roles

    @property
    def may_own(self) -> bool:
        return Role.GROUP_OWNER in self.roles

    @property
    def may_automate(self) -> bool:
        return Role.GROUP_AUTOMATION_ADMIN in self.roles

    @property
    def may_back_up(self) -> bool:
        return Role.GROUP_BACKUP_ADMIN in self.roles

    @property
    def links(self) -> list[tuple[str, str]]:
        return project_links(self.id)

    def context(self) -> dict[str, object]:
        """What the base layout needs: the project's navigation and its banner."""
        return {"project": self, "title": str(self.group["name"]), "force_exit_warning": FORCE_EXIT_WARNING}


def project_page(
    services: Services, viewer: Viewer, group_id: str, role: Role = Role.GROUP_READ_ONLY
) -> ProjectPage:
    """Project ``group_id`` for ``viewer``, who must hold ``role`` on it (the API's check and message)."""
    group = services.appdb.group(group_id)
    viewer.principal.require_group(group, role)
    try:
        services.deployments.guard(group_id)
        refused = ""
    except OpsmgrError as exc:
        refused = exc.detail
    return ProjectPage(
        group=group,
        roles=frozenset(viewer.project_roles(group)),
        restoration=services.restoration.view(group_id),
        change_refused=refused,
    )

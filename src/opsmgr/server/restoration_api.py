"""The Restoration Mode endpoints of the seed: read (Project Read Only), retry and force exit (Project Owner).

A project that is not in the mode answers ``GET`` with ``state: INACTIVE``; ``retry`` and ``DELETE`` on such
a project answer 409 ``NOT_IN_RESTORATION_MODE``.

May import ``opsmgr.jsontypes``, ``opsmgr.store.appdb``, ``opsmgr.server.auth``, ``opsmgr.server.deps`` and
``opsmgr.server.public_api``.
"""

from __future__ import annotations

from fastapi import APIRouter

from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectOwner, ProjectReader
from opsmgr.server.deps import Restoration
from opsmgr.server.public_api import PREFIX

router = APIRouter(prefix=PREFIX, tags=["restorationMode"])


@router.get("/groups/{group_id}/restorationMode")
def get_restoration_mode(caller: ProjectReader, restoration: Restoration) -> JsonObject:
    """Current state, trigger reason, timestamps, failure counter and the agents heard from."""
    return dict(restoration.view(caller.group_id))


@router.post("/groups/{group_id}/restorationMode/retry")
def retry_restoration_mode(caller: ProjectOwner, restoration: Restoration) -> JsonObject:
    """Reset the failure counter and run reconciliation again without leaving Restoration Mode."""
    return dict(restoration.retry(caller.group_id))


@router.delete("/groups/{group_id}/restorationMode")
def exit_restoration_mode(caller: ProjectOwner, restoration: Restoration) -> JsonObject:
    """Force an exit: accept the restored config and serve it to every agent (see the seed's warning)."""
    return dict(restoration.force_exit(caller.group_id))

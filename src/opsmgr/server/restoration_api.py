"""The Restoration Mode endpoints of the seed: read (Project Read Only), retry and force exit (Project Owner).

A project that is not in the mode answers ``GET`` with ``state: INACTIVE``; ``retry`` and ``DELETE`` on such
a project answer 409 ``NOT_IN_RESTORATION_MODE``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from opsmgr.server.auth import public_principal
from opsmgr.server.public_api import PREFIX, group_for
from opsmgr.store.appdb import Principal, Role

router = APIRouter(prefix=PREFIX, tags=["restorationMode"])


@router.get("/groups/{group_id}/restorationMode")
def get_restoration_mode(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """Current state, trigger reason, timestamps, failure counter and the agents heard from."""
    group_for(request, principal, group_id, Role.GROUP_READ_ONLY)
    return dict(request.app.state.ctx.restoration.view(group_id))


@router.post("/groups/{group_id}/restorationMode/retry")
def retry_restoration_mode(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """Reset the failure counter and run reconciliation again without leaving Restoration Mode."""
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    return dict(request.app.state.ctx.restoration.retry(group_id))


@router.delete("/groups/{group_id}/restorationMode")
def exit_restoration_mode(
    request: Request, group_id: str, principal: Principal = Depends(public_principal)
) -> dict[str, Any]:
    """Force an exit: accept the restored config and serve it to every agent (see the seed's warning)."""
    group_for(request, principal, group_id, Role.GROUP_OWNER)
    return dict(request.app.state.ctx.restoration.force_exit(group_id))

"""Operability endpoints: liveness, readiness (every backing database answers) and the version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from opsmgr import __version__
from opsmgr.errors import StoreError

router = APIRouter(tags=["operations"])


@router.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "OK"}


@router.get("/health/ready", response_model=None)
def ready(request: Request) -> Any:
    ctx = request.app.state.ctx
    problems = {}
    for name, store in (
        ("appdb", ctx.stores.app),
        ("snapshotStore", ctx.stores.snapshots),
        ("oplogStore", ctx.stores.oplogs),
    ):
        try:
            store.get("installation", "installation")
        except StoreError as exc:
            problems[name] = exc.detail
    if problems:
        return JSONResponse({"status": "UNAVAILABLE", "problems": problems}, status_code=503)
    return {"status": "OK"}


@router.get("/monitor/health")
def monitor_health() -> dict[str, str]:
    """Ops Manager's own health check path, kept for load balancers configured for it."""
    return {"status": "OK"}


@router.get("/api/public/v1.0/version")
def version() -> dict[str, str]:
    return {"version": __version__, "name": "opsmgr"}

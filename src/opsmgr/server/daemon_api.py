"""``GET /admin/backup/daemon``: the Backup Daemon's jobs, one per backed-up source (its ingest lag, last
snapshot, queue of slices to apply and snapshots to take, last error: ``opsmgr.backup.daemon_jobs``), as
paginated ``results`` after the daemon's own figures. opsmgr's own resource (Ops Manager shows its daemons
in the Admin UI only); installation-wide, so for ORG_OWNER and ORG_READ_ONLY keys, as the global alerts are.

May import ``opsmgr.jsontypes``, ``opsmgr.backup.daemon_jobs``, ``opsmgr.store.appdb``,
``opsmgr.server.alerts_api`` (who reads installation-wide figures), ``opsmgr.server.auth``,
``opsmgr.server.deps``, ``opsmgr.server.paging`` and ``opsmgr.server.public_api``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from opsmgr.backup.daemon_jobs import daemon_jobs
from opsmgr.jsontypes import JsonObject
from opsmgr.server.alerts_api import global_reader
from opsmgr.server.auth import public_principal
from opsmgr.server.deps import Backup
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.store.appdb import Principal

router = APIRouter(prefix=PREFIX, tags=["backup"])


@router.get("/admin/backup/daemon")
def backup_daemon(
    request: Request,
    backup: Backup,
    principal: Principal = Depends(public_principal),
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    """The daemon's figures (``sourceCount``, ``ingestingCount``, ``errorsTotal``, ``startedAt``) and each
    source's job as ``results``."""
    global_reader(principal)
    jobs = [j.to_json() for j in daemon_jobs(backup)]
    figures: JsonObject = {
        "startedAt": backup.started_ms,
        "sourceCount": len(jobs),
        "ingestingCount": sum(1 for j in jobs if j["ingesting"]),
        "errorsTotal": sum(int(j["errorsTotal"]) for j in jobs),
    }
    return {**figures, **paginated(request, jobs, page, per)}

"""Typed FastAPI dependencies: how handlers reach the server's services (``server.services``).

A handler names what it needs (``automation: Automation``) and gets the one instance ``server.boot`` built;
a misspelt service or method is a type error, not a 500. The dependencies are coroutines: FastAPI runs a
plain function dependency in the shared worker-thread pool, so each would cost a request one more wait in
that pool's queue (seconds when a thousand agents report at once) to read one attribute.

May import ``opsmgr.server.services`` and the services' own modules, for their types:
``opsmgr.alerts``, ``opsmgr.automation.service``, ``opsmgr.backup.daemon``, ``opsmgr.backup.clusters``,
``opsmgr.backup.jobs``, ``opsmgr.backup.backing_jobs``, ``opsmgr.maintenance.service``,
``opsmgr.maintenance.index_service``, ``opsmgr.restoration.service`` and ``opsmgr.store.appdb``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from opsmgr.alerts import AlertService
from opsmgr.automation.service import AutomationService
from opsmgr.backup.backing_jobs import BackingRestores
from opsmgr.backup.clusters import Clusters
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.jobs import DeploymentRestores
from opsmgr.maintenance.index_service import IndexBuildService
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.restoration.service import RestorationService
from opsmgr.server.services import AgentPolls, Deployments, Services
from opsmgr.store.appdb import AppDB


def services_of(request: Request) -> Services:
    found = request.app.state.services
    if not isinstance(found, Services):  # a wiring mistake, found by the first request of any test
        raise TypeError(f"app.state.services is a {type(found).__name__}, not Services")
    return found


async def _services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(_services)]


async def _appdb(services: ServicesDep) -> AppDB:
    return services.appdb


async def _automation(services: ServicesDep) -> AutomationService:
    return services.automation


async def _restoration(services: ServicesDep) -> RestorationService:
    return services.restoration


async def _alerts(services: ServicesDep) -> AlertService:
    return services.alerts


async def _maintenance(services: ServicesDep) -> MaintenanceService:
    return services.maintenance


async def _index_builds(services: ServicesDep) -> IndexBuildService:
    return services.index_builds


async def _backup(services: ServicesDep) -> BackupDaemon:
    return services.backup


async def _clusters(services: ServicesDep) -> Clusters:
    return services.clusters


async def _restores(services: ServicesDep) -> DeploymentRestores:
    return services.restores


async def _backing_restores(services: ServicesDep) -> BackingRestores:
    return services.backing_restores


async def _deployments(services: ServicesDep) -> Deployments:
    return services.deployments


async def _polls(services: ServicesDep) -> AgentPolls:
    return services.polls


AppDBDep = Annotated[AppDB, Depends(_appdb)]
Automation = Annotated[AutomationService, Depends(_automation)]
Restoration = Annotated[RestorationService, Depends(_restoration)]
Alerts = Annotated[AlertService, Depends(_alerts)]
Maintenance = Annotated[MaintenanceService, Depends(_maintenance)]
IndexBuilds = Annotated[IndexBuildService, Depends(_index_builds)]
Backup = Annotated[BackupDaemon, Depends(_backup)]
ClustersDep = Annotated[Clusters, Depends(_clusters)]
Restores = Annotated[DeploymentRestores, Depends(_restores)]
BackingRestoresDep = Annotated[BackingRestores, Depends(_backing_restores)]
DeploymentsDep = Annotated[Deployments, Depends(_deployments)]
Polls = Annotated[AgentPolls, Depends(_polls)]

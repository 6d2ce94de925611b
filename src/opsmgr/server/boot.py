"""Start-up of a control-plane instance: open the three backing databases, load gen.key, run the preflight
checks, and only then build the application and serve it.

Owns the order of start-up, which matters: nothing is served, and nothing is written to the stores beyond
the installation record and the installation id, until preflight has passed (``server.store_checks`` opens
the stores for it: a missing SQLite file is refused before opening would create it); and the stop on
SIGTERM, which closes the stores (an SQLite store checkpoints its log into its file) before the process ends.

The composition root. May import ``opsmgr`` (its version), ``opsmgr.logs``, ``opsmgr.alerts``,
``opsmgr.automation.service``, ``opsmgr.backup.daemon``, ``opsmgr.backup.clusters``, ``opsmgr.backup.drills``,
``opsmgr.backup.jobs``, ``opsmgr.backup.backing_jobs``, ``opsmgr.maintenance.service``,
``opsmgr.maintenance.index_service``, ``opsmgr.maintenance.sharded`` (its policy),
``opsmgr.maintenance.rolling`` (the transition check it hands to automation), ``opsmgr.restoration.service``,
``opsmgr.store`` and ``opsmgr.server`` modules.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from opsmgr import __version__
from opsmgr.alerts import AlertService
from opsmgr.automation.service import AutomationService
from opsmgr.backup.backing_jobs import BackingRestores
from opsmgr.backup.clusters import Clusters
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.drills import Drills
from opsmgr.backup.jobs import DeploymentRestores, Grants
from opsmgr.maintenance.index_service import IndexBuildService
from opsmgr.maintenance.rolling import validate_transition
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.maintenance.sharded import ShardedPolicy
from opsmgr.restoration.service import RestorationService
from opsmgr.server.digest import DigestAuthenticator
from opsmgr.server.download_grants import DownloadGrant
from opsmgr.server.drill_schedule import DrillScheduler, DrillSource
from opsmgr.server.jobs import Job, JobRunner
from opsmgr.server.metrics import Metrics
from opsmgr.server.services import (
    AgentPolls,
    Deployments,
    GoalConfigTargets,
    PollCaches,
    ServerConfig,
    Services,
    Stores,
)
from opsmgr.server.settings import Settings
from opsmgr.server.store_checks import open_checked, refuse_lost_files, store_uris, surroundings
from opsmgr.store.alert_configs import AlertConfigs
from opsmgr.store.appdb import AppDB
from opsmgr.store.changes import ChangeListener
from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store
from opsmgr.store.global_alert_configs import GlobalAlertConfigs
from opsmgr.store.identity import Role
from opsmgr.store.installation import preflight
from opsmgr.store.job_leases import JobLeases
from opsmgr.store.users import Users

if TYPE_CHECKING:
    from fastapi import FastAPI
from opsmgr.store.running import hold_for_server

log = logging.getLogger("opsmgr.server")


def _opener(settings: Settings) -> Callable[[str, Role], Store]:
    def store(uri: str, role: Role) -> Store:
        return Store(
            uri,
            name=role.value,
            oplog_max_bytes=settings.oplog_max_mb * 1024 * 1024,
            oplog_max_age_s=settings.oplog_max_age_hours * 3600,
            fence_jobs=True,
        )

    return store


def open_stores(settings: Settings) -> Stores:
    store = _opener(settings)
    return Stores(
        app=store(settings.app_db_uri, Role.APP),
        snapshots=store(settings.snapshot_store_uri, Role.SNAPSHOT),
        oplogs=store(settings.oplog_store_uri, Role.OPLOG),
    )


def _open_for_start(settings: Settings) -> tuple[Stores, frozenset[Role]]:
    """The three stores, each checked for damage; a missing SQLite file is refused before it is created,
    unless every store is new (a first start). Also says which files were missing."""
    store = _opener(settings)
    absent = refuse_lost_files(settings, store)
    opened: list[Store] = []
    try:
        for role, uri in store_uris(settings).items():
            opened.append(open_checked(store, uri, role))
    except BaseException:
        for s in opened:
            s.close()
        raise
    return Stores(*opened), absent


def server_config(settings: Settings, genkey: GenKey) -> ServerConfig:
    return ServerConfig(
        central_url=settings.central_url,
        digest_secret=genkey.derive("digest nonce"),
        blockstore_path=settings.blockstore_path,
        blockstore_uri=settings.blockstore_uri,
        restoration_mode_enabled=settings.restoration_mode_enabled,
        drill_sandbox=settings.drill_sandbox,
        drill_interval_days=settings.drill_interval_days,
        scheduled_drills=_drill_source(settings),
        agent_poll_interval_s=settings.agent_poll_interval_s,
        alert_webhook_url=settings.alert_webhook_url,
        block_compression=settings.block_compression,
        backup_alert_policy=settings.backup_alert_policy(),
        maintenance_policy=settings.maintenance_policy(),
        sharded_policy=ShardedPolicy(settings.maintenance_sharded_parallel_shards),
        server_id=f"{socket.gethostname()}:{settings.port}",
        roles=settings.server_roles,
        job_lease_s=settings.job_lease_s,
    )


def _drill_source(settings: Settings) -> DrillSource | None:
    """Where a secondary's scheduled drills find the primary (settings checked all four keys are set)."""
    if settings.drill_gen_key_path is None:
        return None
    home = settings.conf_path.parent if settings.conf_path is not None else settings.blockstore_path.parent
    return DrillSource(
        settings.drill_gen_key_path,
        str(settings.drill_primary_url),
        str(settings.drill_primary_public_key),
        str(settings.drill_primary_private_key),
        home / "drills",
    )


def download_grants(secret: bytes) -> Grants:
    """How an HTTP restore job's download grant is issued: the job id as the token's derivation input, so
    that one job's token never opens another's download."""
    return lambda job_id, expires, downloads: DownloadGrant.issue(
        secret, job_id, expires, downloads
    ).to_json()


def _maintenance(
    config: ServerConfig, app: Store, alerts: AlertService, automation: AutomationService, genkey: GenKey
) -> tuple[MaintenanceService, IndexBuildService]:
    """Rolling maintenance and the unique index builds, wired to the automation service and each other."""
    maintenance = MaintenanceService(
        app,
        alerts,
        goal=automation.config,
        statuses=automation.agent_statuses,
        encrypt=genkey.encrypt,
        decrypt=genkey.decrypt,
        policy=config.maintenance_policy,
        sharded=config.sharded_policy,
    )

    def write_goal(group_id: str, config_doc: dict[str, object], version: int) -> None:
        automation.put_config(group_id, config_doc, allow_unique_indexes=True, expected_version=version)

    index_builds = IndexBuildService(
        app,
        goal=automation.config,
        statuses=automation.agent_statuses,
        write_goal=write_goal,
        maintenance=maintenance,
    )
    automation.on_config_change.append(maintenance.register)
    maintenance.on_step_done.append(index_builds.step_done)
    automation.status_sections["maintenance"] = maintenance.status_views
    return maintenance, index_builds


def build_services(config: ServerConfig, stores: Stores, genkey: GenKey) -> Services:
    """The one place the server's services are built and wired to each other."""
    app = stores.app
    alerts = AlertService(app)
    automation = AutomationService(
        app,
        genkey.encrypt,
        genkey.decrypt,
        validate_transition=validate_transition,
        poll_interval_s=config.agent_poll_interval_s,
    )
    backup = BackupDaemon(
        stores, config.blockstore_path, compression=config.block_compression, blocks_uri=config.blockstore_uri
    )
    maintenance, index_builds = _maintenance(config, app, alerts, automation, genkey)
    restoration = RestorationService(
        app,
        automation,
        enabled=config.restoration_mode_enabled,
        poll_interval_s=config.agent_poll_interval_s,
        enqueue_snapshots=backup.enqueue_on_demand,
        alerts=alerts,
    )
    caches = PollCaches()
    app.on_change(caches.forget)
    clusters = Clusters(app, backup)
    deployments = Deployments(automation, restoration, maintenance, clusters)
    targets = GoalConfigTargets(automation, deployments.guard)
    services = Services(
        config=config,
        stores=stores,
        digest=DigestAuthenticator(config.digest_secret),
        appdb=AppDB(app, genkey.encrypt, genkey.decrypt),
        users=Users(app),
        alerts=alerts,
        automation=automation,
        backup=backup,
        clusters=clusters,
        restores=DeploymentRestores(app, backup, targets, download_grants(config.digest_secret)),
        backing_restores=BackingRestores(app, backup, deployments.guard),
        maintenance=maintenance,
        index_builds=index_builds,
        restoration=restoration,
        deployments=deployments,
        polls=AgentPolls(automation, restoration, caches),
        caches=caches,
        changes=ChangeListener(app),
        jobs=JobRunner([], JobLeases(app, config.server_id, config.job_lease_s)),
        metrics=Metrics(),
        alert_configs=AlertConfigs(app, encrypt=genkey.encrypt),
        global_alert_configs=GlobalAlertConfigs(app, encrypt=genkey.encrypt),
        drills=Drills(app, alerts),
    )
    if "daemon" in config.roles:
        services.jobs.jobs.extend(periodic_jobs(services, genkey))
    return services


def periodic_jobs(services: Services, genkey: GenKey) -> list[Job]:
    """Work that waits on time rather than on a request."""
    from opsmgr.server.alerts_api import webhook_poster
    from opsmgr.server.backup_alerts import alert_work
    from opsmgr.server.deployment_alerts_job import deployment_alert_work
    from opsmgr.server.secondary_watch import secondary_work

    config = services.config
    every = min(1.0, config.agent_poll_interval_s / 2)
    jobs = [
        Job("restoration", every, services.restoration.tick),
        Job("maintenance", every, services.maintenance.settle_alerts),
        # Freshness moves in poll intervals: twice an interval is soon enough, and spares the store.
        Job("deployment-alerts", config.agent_poll_interval_s / 2, deployment_alert_work(services)),
        Job("index-build-configs", every, services.index_builds.retry_pending_configs),
    ]
    if config.drill_sandbox:
        # A drill's sandbox holds production's configurations: what reaches outside it stays off.
        log.warning("drill sandbox: no notification is delivered, nothing is backed up, no secondary watched")
        return jobs
    post = webhook_poster(genkey.decrypt)
    if config.scheduled_drills is not None:
        drills = DrillScheduler(services, config.scheduled_drills, genkey.encrypt, genkey.decrypt)
        jobs.append(Job("backup-drill-schedule", 10.0, drills.tick, on_stop=drills.stop))
    return [
        *jobs,
        Job("backup", every, services.backup.tick),
        Job("backup-alerts", every, alert_work(services, config.backup_alert_policy)),
        Job("secondary-watch", every, secondary_work(services, config.backup_alert_policy)),
        Job("backup-drills", 60.0, lambda: services.drills.check_overdue(config.drill_interval_days)),
        Job("alert-webhook", every, lambda: services.alerts.deliver(post, config.alert_webhook_url)),
    ]


@contextmanager
def opened(settings: Settings, *, app_version: str = __version__) -> Iterator[Services]:
    """The server's services after preflight; raises PreflightFailure (and serves nothing) if it fails."""
    genkey = GenKey.load(settings.gen_key_path)
    stores, absent = _open_for_start(settings)
    try:
        around = surroundings(settings, stores.snapshots)
        preflight(
            stores.app, stores.snapshots, stores.oplogs, genkey, app_version, around=around, absent=absent
        )
        services = build_services(server_config(settings, genkey), stores, genkey)
        try:
            yield services
        finally:
            services.backup.close()
    finally:
        stores.close()
        log.info("stopped: the backing databases are closed")


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGINT end the server through its ``finally`` blocks (the jobs stop, the stores checkpoint
    and close, the locks go) and with exit status 0, rather than by the default actions, which kill the
    process where it stands or raise KeyboardInterrupt: uvicorn, after its own graceful shutdown, raises the
    signal again for the handler it found installed, which is this one."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    settings: Settings,
    *,
    app_version: str = __version__,
    extend: Callable[[FastAPI], None] | None = None,
) -> None:
    """Serve until stopped; ``extend`` adds to the application (the web UI, which lives above ``server``)."""
    import uvicorn

    from opsmgr.logs import setup_logging
    from opsmgr.server.app import create_app
    from opsmgr.server.tls import uvicorn_https

    setup_logging(settings.log_level)
    # Held while serving: a restore of these backing databases refuses while it is (and we refuse to start
    # while a restore, or another server on one of these SQLite files, holds it). Only serving takes it:
    # ``keys create`` may open the stores beside a server.
    with (
        _stopped_by_signals(),
        hold_for_server(settings.store_uris(), settings.central_url),
        opened(settings, app_version=app_version) as services,
    ):
        app = create_app(services)
        if extend is not None and "api" in settings.server_roles:
            extend(app)
        if not settings.restoration_mode_enabled:
            log.warning(
                "RESTORATION MODE IS DISABLED (mms.restorationMode.enabled=false): after a restore of the "
                "application database this server will serve the restored automation configs to agents that "
                "hold newer ones, and they will act on them"
            )
        log.info(
            "opsmgr %s serving on %s:%s (URL to Access Ops Manager: %s)",
            app_version,
            settings.listen_address,
            settings.port,
            settings.central_url,
        )
        uvicorn.run(
            app,
            host=settings.listen_address,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            **uvicorn_https(settings),
        )

"""The services of one control-plane instance, typed: what handlers, pages and periodic jobs reach.

Owns the :class:`Services` container (frozen: built once, by ``server.boot``), the server's settings as the
services need them (:class:`ServerConfig`), the agent poll path's caches (:class:`PollCaches`) and the two
pieces of orchestration that span services: deployment changes refused while Restoration Mode is in the way
(:class:`Deployments`, and :class:`GoalConfigTargets`, where automated restores go), and the agent poll and
status (:class:`AgentPolls`). May import ``opsmgr.jsontypes``, ``opsmgr.alerts``, ``opsmgr.automation``,
``opsmgr.backup``, ``opsmgr.maintenance``, ``opsmgr.restoration``, ``opsmgr.store``, ``opsmgr.errors`` and
``opsmgr.server`` modules below the handlers (cache, digest, jobs, metrics, work).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Protocol

import psycopg

from opsmgr.alerts import AlertService
from opsmgr.automation import records
from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.automation.service import CONFIG_CHANGED, AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.backup.alerts import AlertPolicy
from opsmgr.backup.backing_jobs import BackingRestores
from opsmgr.backup.blockstore import Compression
from opsmgr.backup.clusters import Clusters
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.drills import Drills
from opsmgr.backup.jobs import DeploymentRestores
from opsmgr.backup.sharded import specs_of
from opsmgr.errors import Conflict
from opsmgr.jsontypes import JsonObject
from opsmgr.maintenance.index_service import IndexBuildService
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.maintenance.sharded import ShardedPolicy
from opsmgr.maintenance.snapshot import Policy
from opsmgr.restoration.mode import ModeState
from opsmgr.restoration.service import RESTORATION_CHANGED, RestorationService
from opsmgr.server.cache import HEARTBEAT, Heartbeat, TtlCache
from opsmgr.server.digest import DigestAuthenticator
from opsmgr.server.drill_schedule import DrillSource
from opsmgr.server.jobs import JobRunner
from opsmgr.server.metrics import Metrics
from opsmgr.server.work import ProjectWork
from opsmgr.store.alert_configs import AlertConfigs
from opsmgr.store.appdb import AGENT_KEYS_CHANGED, AppDB
from opsmgr.store.changes import EVERYTHING, ChangeListener, libpq_conninfo
from opsmgr.store.engine import CHANGES_CHANNEL, Change, Store, Txn
from opsmgr.store.global_alert_configs import GlobalAlertConfigs
from opsmgr.store.maintenance_windows import MaintenanceWindows
from opsmgr.store.users import Users

log = logging.getLogger("opsmgr.server")

UNCACHED = -2  # below every version an agent can hold, so a poll never matches it
ALL_AGENT_KEYS = "*"  # the agent key cache's one entry


@dataclass(frozen=True)
class ServerConfig:
    """The settings the services and handlers act on (``server.settings`` parses them)."""

    central_url: str
    digest_secret: bytes
    blockstore_path: Path
    blockstore_uri: str | None = None
    restoration_mode_enabled: bool = True
    drill_sandbox: bool = False
    drill_interval_days: float = 7.0
    scheduled_drills: DrillSource | None = None
    agent_poll_interval_s: float = 10.0
    alert_webhook_url: str | None = None
    block_compression: Compression | None = None
    backup_alert_policy: AlertPolicy | None = None
    maintenance_policy: Policy = field(default_factory=Policy)
    sharded_policy: ShardedPolicy = field(default_factory=ShardedPolicy)
    server_id: str = "opsmgr"  # names this server in the periodic jobs' leases: host and port
    roles: frozenset[str] = frozenset({"api", "daemon"})
    job_lease_s: float = 10.0


@dataclass(frozen=True)
class Stores:
    app: Store
    snapshots: Store
    oplogs: Store

    def all(self) -> list[Store]:
        return [self.app, self.snapshots, self.oplogs]

    def close(self) -> None:
        for s in self.all():
            s.close()


class _Forgets(Protocol):
    def invalidate(self, key: str) -> None: ...

    def clear(self) -> None: ...


class ChannelSender:
    """Sends heartbeats into the stores' change channel on a connection of its own, in autocommit, outside
    any write transaction: through ``Store.tx`` they queued behind every status report's writer lock (half
    a second at the 90th percentile under 300 agents, more than the poll caches' time to live), and what a
    heartbeat proves needs no lock (PostgreSQL delivers notifications in commit order). Used by the heartbeat
    thread only; a failed send closes the connection and the next one opens another."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def __call__(self, key: str) -> None:
        if self._conn is None:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        try:
            self._conn.execute(
                "SELECT pg_notify(%s, %s)", (CHANGES_CHANNEL, Change(HEARTBEAT, key).payload())
            )
        except psycopg.Error:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


class PollCaches:
    """The agent poll path's caches: invalidated by the changes the application database announces (this
    server's at commit, other servers' through the change listener), the TTL bounding a lost notification;
    on PostgreSQL the heartbeat, heard back, vouches for values up to a poll interval old."""

    def __init__(self, heartbeat: Heartbeat | None = None) -> None:
        self.heartbeat = heartbeat or Heartbeat()
        self.sender: ChannelSender | None = None  # the heartbeat's, once started
        vouch = self.heartbeat.vouches
        # Every project's agent key digests in ONE entry (:data:`ALL_AGENT_KEYS`): loading them per project
        # read the whole collection each time, which at 666 projects was most of the server's CPU.
        self.agent_keys: TtlCache[str, dict[str, frozenset[str]]] = TtlCache(2.0, vouch=vouch)
        # A project's goal version while Restoration Mode is INACTIVE, else UNCACHED: every poll and report
        # of a project armed, reconciling or converging must reach the mode.
        self.goal_versions: TtlCache[str, int] = TtlCache(1.0, vouch=vouch)
        self.known_hosts: TtlCache[str, frozenset[str]] = TtlCache(2.0, vouch=vouch)
        # Each project's agent work (``server.work``): recomputed after a change is announced, at the latest
        # after this long.
        self.work: TtlCache[str, ProjectWork] = TtlCache(30.0, vouch=vouch)

    def forget(self, change: Change) -> None:
        if change.topic == HEARTBEAT:
            self.heartbeat.heard(change.key)
            return
        caches: list[tuple[str, _Forgets]] = [
            (CONFIG_CHANGED, self.goal_versions),
            (CONFIG_CHANGED, self.known_hosts),
            (CONFIG_CHANGED, self.work),
            (WORK_CHANGED, self.work),
            (RESTORATION_CHANGED, self.goal_versions),
        ]
        for topic, cache in caches:
            if change == EVERYTHING:
                cache.clear()
            elif change.topic == topic:
                cache.invalidate(change.key)
        if change == EVERYTHING or change.topic == AGENT_KEYS_CHANGED:
            self.agent_keys.invalidate(ALL_AGENT_KEYS)


class Deployments:
    """Changes to a project's deployment: refused while Restoration Mode is in the way; a config written
    records its sharded clusters at once, so a shard added to a cluster backed up is backed up from then."""

    def __init__(
        self,
        automation: AutomationService,
        restoration: RestorationService,
        maintenance: MaintenanceService,
        clusters: Clusters,
    ) -> None:
        self.automation = automation
        self.restoration = restoration
        self.maintenance = maintenance
        self.clusters = clusters

    def guard(self, group_id: str) -> None:
        """Refuse deployment changes a project cannot take now."""
        self.restoration.guard(group_id)

    def put_config(self, group_id: str, body: object, *, expected_version: int | None = None) -> JsonObject:
        self.guard(group_id)
        written = self.automation.put_config(group_id, body, expected_version=expected_version)
        self.clusters.ensure_sharded(group_id, specs_of(group_id, written))
        return written

    def release_lease(self, group_id: str, replica_set: str) -> None:
        """Take a replica set's maintenance lease back from its holder (one that will not return); a lease
        nobody holds is a 409."""
        self.guard(group_id)
        if not self.maintenance.release(group_id, replica_set):
            raise Conflict(
                f"nobody holds the maintenance lease of {replica_set}", error_code="MAINTENANCE_LEASE_FREE"
            )


class GoalConfigTargets:
    """Where automated restores go (``backup.jobs.RestoreTargets``): the projects' goal configs, behind
    Restoration Mode's guard."""

    def __init__(self, automation: AutomationService, guard: Callable[[str], None]) -> None:
        self.automation = automation
        self._guard = guard

    def guard(self, group_id: str) -> None:
        self._guard(group_id)

    def processes(self, group_id: str, replica_set: str) -> list[JsonObject]:
        config = self.automation.config(group_id)
        names = next((set(rs.hosts) for rs in records.replica_sets(config) if rs.id == replica_set), set())
        return [p.to_doc() for p in records.processes(config) if p.name in names]

    def set_disabled(self, t: Txn, group_id: str, names: Sequence[str], disabled: bool) -> None:
        self._guard(group_id)
        config = self.automation.config(group_id)
        config["processes"] = [
            (replace(p, disabled=disabled) if p.name in names else p).to_doc()
            for p in records.processes(config)
        ]
        # Read before ``t`` wrote anything of it: the version makes the write refuse a change made since.
        self.automation.write_config(t, group_id, config, expected_version=config["version"])


class AgentPolls:
    """The agent poll and status: what an agent must adopt, and whose report is kept."""

    def __init__(
        self, automation: AutomationService, restoration: RestorationService, caches: PollCaches
    ) -> None:
        self.automation = automation
        self.restoration = restoration
        self.caches = caches

    def unchanged(self, group_id: str, held: int) -> bool:
        """True when the cache alone shows the agent holds the goal version (never a database read)."""
        return self.caches.goal_versions.peek(group_id) == held

    def config_for(self, group_id: str, hostname: str, held: int) -> JsonObject | None:
        """The config an agent polling with version ``held`` must adopt, or None for "unchanged".

        Agents adopt whatever they are served, so anything but the goal version gets the goal config, unless
        Restoration Mode says otherwise.
        """
        if held == self.caches.goal_versions.get(group_id, self._poll_version):
            return None  # and the version is now cached for the polls that follow
        return self.restoration.on_poll(group_id, hostname, held)

    def _poll_version(self, group_id: str) -> int:
        if self.restoration.state(group_id) is not ModeState.INACTIVE:
            return UNCACHED
        return self.automation.version(group_id)

    def record_status(self, group_id: str, hostname: str, report: StatusReport) -> JsonObject:
        """Keep the report of an agent of the project (others are not stored); Restoration Mode may answer
        with a request, or refuse an agent that is not the project's."""
        answer: JsonObject = {}
        # A goal version cached means Restoration Mode is INACTIVE (see ``goal_versions``), where it ignores
        # reports: the agent's poll just before has usually cached it, which spares a read of the mode.
        if self.caches.goal_versions.fresh(group_id) in (None, UNCACHED):
            answer = self.restoration.on_status(group_id, hostname, report)
        if hostname.lower() in self.caches.known_hosts.get(group_id, self.restoration.known_hosts):
            self.automation.record_status(group_id, hostname, report)
        return answer


@dataclass(frozen=True)
class Services:
    """Everything a request, a page or a periodic job of this server reaches, each typed."""

    config: ServerConfig
    stores: Stores
    digest: DigestAuthenticator
    appdb: AppDB
    users: Users
    alerts: AlertService
    automation: AutomationService
    backup: BackupDaemon
    clusters: Clusters
    restores: DeploymentRestores
    backing_restores: BackingRestores
    maintenance: MaintenanceService
    index_builds: IndexBuildService
    restoration: RestorationService
    deployments: Deployments
    polls: AgentPolls
    caches: PollCaches
    changes: ChangeListener
    jobs: JobRunner
    metrics: Metrics
    alert_configs: AlertConfigs
    global_alert_configs: GlobalAlertConfigs
    drills: Drills

    @cached_property
    def maintenance_windows(self) -> MaintenanceWindows:
        """The projects' maintenance windows: state in the application database only, so built here."""
        return MaintenanceWindows(self.stores.app)

    def start(self) -> None:
        """Before anything is served: listen for other servers' changes (and prove it by a heartbeat), arm
        Restoration Mode if a restore wrote the application database, and start the periodic jobs."""
        self.changes.start()
        conninfo = libpq_conninfo(self.stores.app.url)
        if conninfo is not None:  # SQLite: no other server, no channel to prove
            self.caches.sender = ChannelSender(conninfo)
            self.caches.heartbeat.start(self.caches.sender, max_age_s=self.config.agent_poll_interval_s)
        self.restoration.arm_after_restore()
        self.jobs.start()

    def stop(self) -> None:
        log.info("stopping: the periodic jobs, then the stores")
        self.jobs.stop()
        self.caches.heartbeat.stop()
        if self.caches.sender is not None:
            self.caches.sender.close()
        self.changes.stop()

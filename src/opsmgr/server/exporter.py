"""What ``/metrics`` says about the deployments and the backup daemon, in the Prometheus text format, besides
the request metrics (``opsmgr.server.metrics``) and the periodic jobs' (``opsmgr.server.jobs``).

Per process, from what its agent last reported (nothing is probed here), named as the widely used
``mongodb_exporter`` names them (its 0.1x names, which its ``--compatible-mode`` keeps), labelled
``group_id``, ``rs`` and ``host`` (``hostname:port``): ``mongodb_up`` (1 while its agent reports it running
within 3 poll intervals), ``mongodb_mongod_replset_member_state`` (MongoDB's numeric member state; 8, DOWN,
once the report is stale) and, while the report is fresh, ``mongodb_mongod_replset_member_replication_lag``
(seconds), ``mongodb_connections{state="current"}``, ``mongodb_op_counters_total{type}`` (cumulative, from
the agent's last measurements sample) and ``mongodb_memory{type}`` (megabytes).

Per backed-up source (``opsmgr.backup.daemon_jobs``), labelled ``group_id``, ``cluster``, ``rs`` and
``source``: ``opsmgr_backup_ingest_lag_seconds``, ``opsmgr_backup_last_snapshot_timestamp_seconds``,
``opsmgr_backup_queue_depth`` (with ``queue="slices"|"snapshots"``), ``opsmgr_backup_ingesting`` and the
counter ``opsmgr_backup_errors_total`` (this process's failed daemon ticks).

A scrape reads each project's agent reports and each source's job once; the text is kept
:data:`CACHE_S` seconds, so frequent scrapes cost no more, and at most :data:`MAX_PROCESSES` processes are
listed (the label sets stay bounded whatever the installation's size). The same cached jobs give the
daemon's health (``opsmgr.backup.daemon_jobs.daemon_health``) that ``/health/ready`` shows.

May import ``opsmgr.errors``, ``opsmgr.jsontypes``, ``opsmgr.automation.hosts``,
``opsmgr.backup.daemon_jobs``, ``opsmgr.server.cache`` and ``opsmgr.server.services`` (types only).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsmgr.automation.hosts import Freshness, Hearing
from opsmgr.backup.daemon_jobs import SourceJob, daemon_health, daemon_jobs
from opsmgr.errors import OpsmgrError
from opsmgr.jsontypes import JsonObject
from opsmgr.server.cache import TtlCache

if TYPE_CHECKING:
    from opsmgr.server.services import Services

log = logging.getLogger("opsmgr.server")

CACHE_S = 5.0
MAX_PROCESSES = 10_000

# MongoDB's replica set member states (replSetGetStatus ``state``), by ``stateStr``.
MEMBER_STATES = {
    "STARTUP": 0,
    "PRIMARY": 1,
    "SECONDARY": 2,
    "RECOVERING": 3,
    "STARTUP2": 5,
    "UNKNOWN": 6,
    "ARBITER": 7,
    "DOWN": 8,
    "ROLLBACK": 9,
    "REMOVED": 10,
}
DOWN = MEMBER_STATES["DOWN"]

# The measurements (an agent's last sample, Ops Manager's names) shown per process: (family, label, value).
MEASUREMENTS = {
    "OPCOUNTER_INSERT": ("mongodb_op_counters_total", "type", "insert"),
    "OPCOUNTER_QUERY": ("mongodb_op_counters_total", "type", "query"),
    "OPCOUNTER_UPDATE": ("mongodb_op_counters_total", "type", "update"),
    "OPCOUNTER_DELETE": ("mongodb_op_counters_total", "type", "delete"),
    "OPCOUNTER_GETMORE": ("mongodb_op_counters_total", "type", "getmore"),
    "OPCOUNTER_CMD": ("mongodb_op_counters_total", "type", "command"),
    "MEMORY_RESIDENT": ("mongodb_memory", "type", "resident"),
    "MEMORY_VIRTUAL": ("mongodb_memory", "type", "virtual"),
}

# Every family this module renders: (name, type, help).
FAMILIES = (
    ("mongodb_up", "gauge", "1 while the process's agent reports it running (within 3 poll intervals)."),
    ("mongodb_mongod_replset_member_state", "gauge", "The member's replica set state (MongoDB's number)."),
    ("mongodb_mongod_replset_member_replication_lag", "gauge", "The member's replication lag in seconds."),
    ("mongodb_connections", "gauge", "The process's connections (state=current)."),
    ("mongodb_op_counters_total", "counter", "Operations since the process started, by type."),
    ("mongodb_memory", "gauge", "The process's memory in megabytes, by type (resident, virtual)."),
    ("opsmgr_backup_ingest_lag_seconds", "gauge", "How far the received oplog is behind the source."),
    ("opsmgr_backup_last_snapshot_timestamp_seconds", "gauge", "When the source's last snapshot was taken."),
    ("opsmgr_backup_queue_depth", "gauge", "Slices received not yet applied; snapshots requested not taken."),
    ("opsmgr_backup_ingesting", "gauge", "1 while slices arrive on a chain the source's head follows."),
    ("opsmgr_backup_errors_total", "counter", "Failed daemon ticks for the source since the server started."),
)


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float


def process_samples(group_id: str, statuses: Iterable[JsonObject], heard: Hearing) -> list[Sample]:
    """The per-process gauges and counters of one project's agent reports (pure)."""
    samples = []
    for status in statuses:
        fresh = heard.of(status.get("receivedAt")) is Freshness.FRESH
        for entry in status.get("processes") or []:
            observed = entry.get("observed") or {}
            host = f"{observed.get('hostname') or status.get('hostname')}:{observed.get('port') or ''}"
            rs = str(observed.get("replicaSetName") or "")
            labels = (("group_id", group_id), ("rs", rs), ("host", host))
            running = fresh and bool(observed.get("running"))
            samples.append(Sample("mongodb_up", labels, 1.0 if running else 0.0))
            if rs:
                state = MEMBER_STATES.get(str(observed.get("replicaStateName")), MEMBER_STATES["UNKNOWN"])
                samples.append(
                    Sample("mongodb_mongod_replset_member_state", labels, state if running else DOWN)
                )
            if running:  # what a silent agent last said is not a current figure
                samples += _observed_samples(labels, observed, bool(rs))
    return samples


def _observed_samples(labels: Labels, observed: JsonObject, member: bool) -> list[Sample]:
    """A running process's figures from its agent's last sample: lag, connections, operations, memory."""
    found: list[tuple[str, Labels, object]] = [
        ("mongodb_connections", (*labels, ("state", "current")), observed.get("connections")),
    ]
    if member:
        found.append(("mongodb_mongod_replset_member_replication_lag", labels, observed.get("lagSeconds")))
    sample = observed.get("measurements") or {}
    found += [
        (name, (*labels, (label, value)), sample.get(measurement))
        for measurement, (name, label, value) in MEASUREMENTS.items()
    ]
    return [Sample(n, ls, float(v)) for n, ls, v in found if isinstance(v, int | float)]


def backup_samples(jobs: Iterable[SourceJob]) -> list[Sample]:
    """The per-source backup figures (pure)."""
    samples = []
    for job in jobs:
        src = job.source
        labels = (("group_id", src.groupId), ("cluster", src.clusterId), ("rs", src.name), ("source", src.id))
        lag = job.ingest_lag_ms
        if lag is not None:
            samples.append(Sample("opsmgr_backup_ingest_lag_seconds", labels, lag / 1000))
        if job.last_snapshot_ms is not None:
            samples.append(
                Sample("opsmgr_backup_last_snapshot_timestamp_seconds", labels, job.last_snapshot_ms / 1000)
            )
        for queue, depth in (("slices", job.slices_pending), ("snapshots", job.snapshots_requested)):
            samples.append(Sample("opsmgr_backup_queue_depth", (*labels, ("queue", queue)), depth))
        samples.append(Sample("opsmgr_backup_ingesting", labels, 1.0 if job.ingesting else 0.0))
        samples.append(Sample("opsmgr_backup_errors_total", labels, job.errors_total))
    return samples


def render(samples: Iterable[Sample]) -> str:
    """The samples as Prometheus text, grouped by family, each family with its HELP and TYPE lines."""
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)
    lines = []
    for name, kind, help_text in FAMILIES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for s in by_name.get(name, []):
            labels = ",".join(f'{k}="{_esc(v)}"' for k, v in s.labels)
            lines.append(f"{name}{{{labels}}} {_number(s.value)}" if labels else f"{name} {_number(s.value)}")
    return "\n".join(lines) + "\n"


class Exporter:
    """The deployments' and the daemon's figures of one server, rendered at most every :data:`CACHE_S`."""

    def __init__(self, services: Services, ttl_s: float = CACHE_S) -> None:
        self._services = services
        self._cache: TtlCache[str, str] = TtlCache(ttl_s)
        self._jobs: TtlCache[str, list[SourceJob]] = TtlCache(ttl_s)

    def text(self) -> str:
        """The figures; while a backing database cannot be read, a comment saying so (the request metrics
        before it are still served: a scrape is most wanted when something is wrong)."""
        try:
            return self._cache.get("metrics", self._load)
        except OpsmgrError as exc:
            log.warning("/metrics: the deployments' and daemon's figures cannot be read: %s", exc.detail)
            return f"# the deployments' and the Backup Daemon's figures cannot be read: {_esc(exc.detail)}\n"

    def jobs(self) -> list[SourceJob]:
        """The daemon's jobs, read at most every :data:`CACHE_S` (readiness checks come often)."""
        return self._jobs.get("jobs", lambda _key: daemon_jobs(self._services.backup))

    def daemon_health(self) -> JsonObject:
        """The daemon's health; a daemon whose stores cannot be read is unhealthy, saying why."""
        try:
            return daemon_health(self.jobs())
        except OpsmgrError as exc:
            return {"healthy": False, "problems": [f"the daemon's jobs cannot be read: {exc.detail}"]}

    def _load(self, _key: str) -> str:
        return render(self._samples())

    def _samples(self) -> list[Sample]:
        automation = self._services.automation
        heard = automation.hearing()
        samples: list[Sample] = []
        room = MAX_PROCESSES
        for group in self._services.appdb.groups():
            group_id = str(group["_id"])
            statuses = []
            for status in automation.agent_statuses(group_id):
                kept = (status.get("processes") or [])[: max(room, 0)]
                room -= len(kept)
                statuses.append({**status, "processes": kept})
            samples += process_samples(group_id, statuses, heard)
            if room <= 0:
                break
        return samples + backup_samples(self.jobs())


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))

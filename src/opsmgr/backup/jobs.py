"""Restore jobs of both kinds, as one state machine: a deployment's restore job (``backup_restore_jobs``: an
automated restore into a replica set's processes, or an HTTP download of the restored documents) and a
restore job of a primary's backing databases (``backing_restore_jobs``, carried out on the primary's host by
its backing agent, or by ``opsmgr drill`` into a sandbox; their service is ``backup.backing_jobs``).

A job's ``statusName`` is a :class:`JobState`; :data:`TRANSITIONS` is the one table of the moves it may
make, and every move is one transaction of the application database that reads the job again, so a refused
move (a :class:`~opsmgr.errors.Conflict`) changes nothing. What a move does beside the job commits with it:
an automated restore disables its target's processes in the goal config in the transaction that creates the
job (their agents stop them all before any is loaded: a member restarted early would sync the old data back
from one not yet restored) and enables them in the one that ends it, and the agents' work is announced
(``WORK_CHANGED``). The goal config is reached through :class:`RestoreTargets` (the server's automation
service behind Restoration Mode's guard): a restore job is a deployment change, refused while the project is
in Restoration Mode.

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup`` and ``opsmgr.automation.protocol`` (the
change agents' work announces).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.backup.clusters import Clusters, owned
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.job_records import (
    BackingJob,
    DeploymentJob,
    JobDelivery,
    JobPart,
)
from opsmgr.backup.job_records import JobState as JobState
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.restore_cancel import cancellation
from opsmgr.backup.sharded import part_progress
from opsmgr.backup.sharded_backups import ShardedBackups
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store.engine import Store, Txn, new_id

DEPLOYMENT_JOBS = "backup_restore_jobs"
BACKING_JOBS = "backing_restore_jobs"
# The fields of a request that name what to restore to (a snapshot, or a point in time).
TARGET_FIELDS = ("snapshotId", "pointInTimeUTCMillis", "oplogTs", "oplogInc")
_J = TypeVar("_J", DeploymentJob, BackingJob)


def target_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a restore request names to restore to. A whole number sent as a JSON float (``1.7e12``, as some
    clients' number types send it) counts as that integer; any other value goes on as sent, for the plan to
    refuse with its message."""
    return {k: _whole(body[k]) for k in TARGET_FIELDS if k in body}


def _whole(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


MAX_DOWNLOADS = 100
MAX_EXPIRATION_HOURS = 168


# The outcomes of carrying a job out (what a restoring host reports); a job also ends CANCELLED on request.
FINAL: Final = frozenset({JobState.FINISHED, JobState.FAILED})
ENDED: Final = FINAL | {JobState.CANCELLED}
# A job is created QUEUED, or FINISHED when there is nothing to carry out (an HTTP download restores on
# request).
INITIAL: Final = frozenset({JobState.QUEUED, JobState.FINISHED})
TRANSITIONS: Final[Mapping[JobState, frozenset[JobState]]] = MappingProxyType(
    {
        JobState.QUEUED: frozenset({JobState.RUNNING, *ENDED}),
        JobState.RUNNING: ENDED,
        JobState.FINISHED: frozenset(),
        JobState.FAILED: frozenset(),
        JobState.CANCELLED: frozenset(),
    }
)


def state_of(job: Mapping[str, Any]) -> JobState:
    return JobState(job["statusName"])


class JobLog:
    """The jobs of one kind in one collection: creation and moves, each one transaction."""

    def __init__(self, store: Store, collection: str, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.collection = collection
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def lookup(self, reader: Store | Txn, job_id: str, **owner: str) -> dict[str, Any] | None:
        return owned(reader, self.collection, job_id, **owner)

    def create(
        self, job: dict[str, Any], then: Callable[[Txn, dict[str, Any]], object] | None = None
    ) -> None:
        """Inserts ``job`` in one transaction with ``then`` (what its creation does beside it)."""
        if state_of(job) not in INITIAL:
            raise Conflict(f"a restore job cannot begin {job['statusName']}", jobId=job["_id"])
        with self.store.tx() as t:
            t.insert(self.collection, job)
            if then is not None:
                then(t, job)

    def move(self, t: Txn, job: dict[str, Any], to: JobState, **fields: Any) -> dict[str, Any]:
        """``job`` (as ``t`` read it) moved to ``to`` with ``fields``, written by ``t``; a move the table does
        not allow is refused before anything is written."""
        current = self.refuse_ended(job)
        if to not in TRANSITIONS[current]:
            raise Conflict(f"restore job {job['_id']} cannot go from {current} to {to}", jobId=job["_id"])
        return t.put(self.collection, {**job, **fields, "statusName": to.value})

    def move_typed(self, t: Txn, job: _J, to: JobState, **fields: Any) -> _J:
        """:meth:`move` of a typed job, ``fields`` by their stored names."""
        return job.parse_stored(self.move(t, job.to_doc(), to, **fields), f"restore job {job.id}")

    @staticmethod
    def refuse_ended(job: Mapping[str, Any]) -> JobState:
        """The job's state, unless it ended: no move leaves FINISHED, FAILED or CANCELLED (409)."""
        current = state_of(job)
        if current in ENDED:
            raise Conflict(f"restore job {job['_id']} is already {current}", jobId=job["_id"])
        return current

    def transition(self, job_id: str, to: JobState, **fields: Any) -> dict[str, Any]:
        """Moves job ``job_id`` to ``to`` in a transaction of its own."""
        with self.store.tx() as t:
            job = self.lookup(t, job_id)
            if job is None:
                raise NotFound(f"no restore job {job_id}", error_code="RESTORE_JOB_NOT_FOUND", jobId=job_id)
            return self.move(t, job, to, **fields)

    def start(self, job_id: str) -> None:
        """A QUEUED job is RUNNING from the first download of its documents on (later ones change nothing)."""
        with self.store.tx() as t:
            job = self.lookup(t, job_id)
            if job is not None and state_of(job) is JobState.QUEUED:
                self.move(t, job, JobState.RUNNING, started=self.now_ms())


# A deployment's restore jobs.


@dataclass(frozen=True)
class Download:
    """An HTTP delivery: a URL valid for ``expiration_hours`` and ``max_downloads`` downloads."""

    expiration_hours: int
    max_downloads: int

    def to_json(self) -> dict[str, Any]:
        return {
            "methodName": "HTTP",
            "expirationHours": self.expiration_hours,
            "maxDownloads": self.max_downloads,
        }


@dataclass(frozen=True)
class IntoDeployment:
    """An automated restore into a cluster's processes, carried out by their agents."""

    group_id: str
    cluster_id: str

    def to_json(self, replica_set: str) -> dict[str, Any]:
        return {
            "methodName": "AUTOMATED_RESTORE",
            "targetGroupId": self.group_id,
            "targetClusterId": self.cluster_id,
            "targetReplicaSetName": replica_set,
        }


Delivery = Download | IntoDeployment


def parse_delivery(body: Mapping[str, Any]) -> Delivery:
    """A restore job request's ``delivery``; 400 naming the field that is wrong."""
    delivery = body.get("delivery")
    if not isinstance(delivery, dict):
        raise InvalidInput("delivery is required", field="delivery")
    method = delivery.get("methodName")
    if method == "HTTP":
        hours = _count(delivery, "expirationHours", MAX_EXPIRATION_HOURS)
        return Download(hours, _count(delivery, "maxDownloads", MAX_DOWNLOADS))
    if method == "AUTOMATED_RESTORE":
        group_id = delivery.get("targetGroupId")
        cluster_id = delivery.get("targetClusterId")
        if not isinstance(group_id, str) or not isinstance(cluster_id, str):
            raise InvalidInput(
                "AUTOMATED_RESTORE needs targetGroupId and targetClusterId", field="delivery.targetClusterId"
            )
        return IntoDeployment(group_id, cluster_id)
    raise InvalidInput("delivery.methodName must be AUTOMATED_RESTORE or HTTP", field="delivery.methodName")


def _count(delivery: dict[str, Any], name: str, most: int) -> int:
    value = delivery.get(name, 1)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise InvalidInput(f"{name} must be an integer from 1 to {most}", field=f"delivery.{name}")
    return value


class RestoreTargets(Protocol):
    """The goal configs automated restores go into."""

    def guard(self, group_id: str) -> None:
        """Refuses (409) a deployment change the project cannot take now."""

    def processes(self, group_id: str, replica_set: str) -> list[dict[str, Any]]:
        """The processes of a replica set in the project's goal config, as the agents run them."""

    def set_disabled(self, t: Txn, group_id: str, names: Sequence[str], disabled: bool) -> None:
        """Disables or enables the named processes in the project's goal config, written by ``t``."""


# A plan of a restore job: the part of a sharded cluster it restores (None: the job's one replica set).
PartPlan = tuple[str | None, ResolvedRestore]


def progress_id(job_id: str, part: str | None) -> str:
    """Where the daemon keeps the progress of a job's documents (of one part of a sharded cluster's job)."""
    return job_id if part is None else f"{job_id}:{part}"


# Issues an HTTP job's download grant: (job id, expiry in ms, downloads) -> the job's ``download`` field.
Grants = Callable[[str, int, int], dict[str, Any]]
# A download's use of its job's grant: the job record (None: no such job) -> the job with the grant used,
# or an error (404, 410).
Spend = Callable[[dict[str, Any] | None], dict[str, Any]]


class LoadOutcome(StrEnum):
    """What an agent reports of its processes of an automated restore's target."""

    DONE = "DONE"
    FAILED = "FAILED"
    LOADING = "LOADING"  # begun: a cancellation names the process as partly loaded


@dataclass(frozen=True)
class Loading:
    """An automated restore still loading, with the target's processes that have not loaded yet."""

    job_id: str
    target_group_id: str
    pending: tuple[str, ...]


class DeploymentRestores:
    """A deployment's restore jobs: planned by the daemon, delivered as a download or into a cluster."""

    def __init__(
        self,
        store: Store,
        daemon: BackupDaemon,
        targets: RestoreTargets,
        grants: Grants,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = JobLog(store, DEPLOYMENT_JOBS, clock)
        self.daemon = daemon
        self.clusters = Clusters(store, daemon)
        self.sharded = ShardedBackups(self.clusters, daemon)
        self.targets = targets
        self.grants = grants

    def create(
        self, group_id: str, cluster_id: str, target: Mapping[str, Any], delivery: Delivery
    ) -> dict[str, Any]:
        """Plans first (400 outside the window with the restorable ranges, 409 when blocks are missing), then
        records the job; an automated restore's target is disabled with it. A sharded cluster's job restores
        every part to one point (``backup.sharded``), into the target's replica sets of the same names."""
        self.targets.guard(group_id)
        if isinstance(delivery, IntoDeployment):
            self.targets.guard(delivery.group_id)
        fields = target_fields(target)
        if self.clusters.sharded(group_id, cluster_id) is None:
            job = self._replica_set_job(group_id, cluster_id, fields, delivery)
        else:
            job = self._sharded_job(group_id, cluster_id, fields, delivery)
        if isinstance(delivery, Download):
            expires = job.created + delivery.expiration_hours * 3600 * 1000
            grant = self.grants(job.id, expires, delivery.max_downloads)
            # Nothing to carry out: the download restores on request.
            doc = job.changed(download=grant, status_name=JobState.FINISHED).to_doc()
            self.log.create(doc)
            return doc
        doc = job.to_doc()
        disabled = self._disabled(job)
        self.log.create(doc, lambda t, _: self._disable(t, delivery.group_id, disabled))
        return doc

    def _new_job(
        self, group_id: str, cluster_id: str, fields: dict[str, Any], plan: ResolvedRestore, delivery: Any
    ) -> DeploymentJob:
        return DeploymentJob(
            id=new_id(),
            group_id=group_id,
            cluster_id=cluster_id,
            target=fields,
            plan=plan.to_json(),
            snapshot_id=plan.snapshot.id,
            delivery=JobDelivery.model_validate(delivery),
            created=self.log.now_ms(),
            status_name=JobState.QUEUED,
        )

    def _replica_set_job(
        self, group_id: str, cluster_id: str, fields: dict[str, Any], delivery: Delivery
    ) -> DeploymentJob:
        self.clusters.get(group_id, cluster_id)
        if isinstance(delivery, IntoDeployment):
            replica_set = self.clusters.get(delivery.group_id, delivery.cluster_id)["replicaSetName"]
            delivery_json = delivery.to_json(replica_set)
        else:
            delivery_json = delivery.to_json()
        plan = self.daemon.cluster_restore_plans(group_id, cluster_id, fields)[0]
        job = self._new_job(group_id, cluster_id, fields, plan, delivery_json)
        if isinstance(delivery, Download):
            return job
        procs = self.targets.processes(delivery.group_id, delivery_json["targetReplicaSetName"])
        if not procs:
            raise InvalidInput("the target cluster has no processes", field="delivery.targetClusterId")
        return job.changed(pending=sorted(p["name"] for p in procs))

    def _sharded_job(
        self, group_id: str, cluster_id: str, fields: dict[str, Any], delivery: Delivery
    ) -> DeploymentJob:
        """Every part planned to the one point; into a sharded cluster, each part into the target's replica
        set of its name (400 naming a part the target lacks), the target's mongos disabled too."""
        into, into_group = None, ""
        if isinstance(delivery, IntoDeployment):
            into_group = delivery.group_id
            into = self.clusters.sharded(into_group, delivery.cluster_id)
            if into is None:
                raise InvalidInput(
                    "a sharded cluster is restored into a sharded cluster", field="delivery.targetClusterId"
                )
        plans = self.sharded.plans(group_id, cluster_id, fields)
        parts = []
        for part, resolved in plans:
            rs = part.spec.replica_set
            names: list[str] = []
            if into is not None:
                if into.part(rs) is None:
                    raise InvalidInput(
                        f"the target cluster {into.name} has no replica set {rs} to restore that part into",
                        field="delivery.targetClusterId",
                    )
                names = sorted(p["name"] for p in self.targets.processes(into_group, rs))
                if not names:
                    raise InvalidInput(
                        f"the target's {rs} has no processes",
                        field="delivery.targetClusterId",
                    )
            parts.append(
                JobPart(
                    replica_set_name=rs,
                    type_name=part.spec.type_name,
                    shard_name=part.spec.shard_name,
                    snapshot_id=resolved.snapshot.id,
                    target_replica_set_name=None if into is None else rs,
                    processes=names,
                )
            )
        if isinstance(delivery, IntoDeployment):
            delivery_json = delivery.to_json("")
            delivery_json.pop("targetReplicaSetName")
        else:
            delivery_json = delivery.to_json()
        job = self._new_job(group_id, cluster_id, fields, plans[0][1], delivery_json)
        pending = sorted(n for p in parts for n in p.processes)
        mongos = [] if into is None else list(into.mongos)
        return job.changed(parts=parts, pending=pending, mongos=mongos)

    def _disable(self, t: Txn, group_id: str, names: Sequence[str]) -> None:
        self.targets.set_disabled(t, group_id, names, True)
        t.notify(WORK_CHANGED, group_id)

    def of_cluster(self, group_id: str, cluster_id: str) -> list[dict[str, Any]]:
        """The cluster's restore jobs, newest first."""
        self.clusters.check(group_id, cluster_id)
        jobs = [
            DeploymentJob.from_doc(doc)
            for doc in self.log.store.find(DEPLOYMENT_JOBS, groupId=group_id, clusterId=cluster_id)
        ]
        return [job.to_doc() for job in sorted(jobs, key=lambda j: -j.created)]

    def get(self, group_id: str, cluster_id: str, job_id: str) -> dict[str, Any]:
        job = self.log.lookup(self.log.store, job_id, groupId=group_id, clusterId=cluster_id)
        if job is None:
            raise NotFound(f"no restore job {job_id}", error_code="RESTORE_JOB_NOT_FOUND", jobId=job_id)
        return DeploymentJob.from_doc(job).to_doc()

    def plans(self, job: DeploymentJob) -> list[PartPlan]:
        """The job's restore plans, made afresh (they stay valid until grooming removes what they need): a
        replica set's one (its part None), or each part's of a sharded cluster, all to the one point."""
        if job.parts is None:
            return [(None, self.daemon.cluster_restore_plans(job.group_id, job.cluster_id, job.target)[0])]
        plans = self.sharded.plans(job.group_id, job.cluster_id, job.target)
        return [(part.spec.replica_set, resolved) for part, resolved in plans]

    def documents(
        self, resolved: ResolvedRestore, job_id: str, part: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The restored documents ``(namespace, document)`` (of one part of a sharded cluster's job), the
        progress kept by the daemon under the job's id (:func:`progress_id`)."""
        return self.daemon.restore_documents(resolved, progress_id(job_id, part))

    def parts_json(self, job: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """A sharded cluster's job's parts with their progress (None for a replica set's job): what each
        restores, from which snapshot, and how far it came (loaded processes, or downloaded documents)."""
        typed = DeploymentJob.from_doc(job)
        if typed.parts is None:
            return None
        downloads = {}
        for p in typed.parts:
            done = self.daemon.progress(progress_id(typed.id, p.replica_set_name))
            downloads[p.replica_set_name] = 0.0 if done is None else done.fraction
        progress = part_progress(
            {p.replica_set_name: p.processes for p in typed.parts},
            typed.pending,
            typed.loading,
            typed.status_name.value,
            downloads,
        )
        return [
            p.to_doc() | {"progress": shown.to_json()} for p, shown in zip(typed.parts, progress, strict=True)
        ]

    def use_download_plans(self, job_id: str, spend: Spend) -> tuple[dict[str, Any], list[PartPlan]]:
        """An HTTP job's download: ``spend`` refuses (404, 410) before any work, the plans refuse (409)
        before the grant is used, then the grant is used in one transaction."""
        job = spend(self._by_id(self.log.store, job_id))
        plans = self.plans(DeploymentJob.from_doc(job))
        with self.log.store.tx() as t:
            job = t.put(DEPLOYMENT_JOBS, spend(self._by_id(t, job_id)))
        return job, plans

    def use_download(self, job_id: str, spend: Spend) -> tuple[dict[str, Any], ResolvedRestore]:
        """:meth:`use_download_plans` of a replica set's job: its one plan."""
        job, plans = self.use_download_plans(job_id, spend)
        return job, plans[0][1]

    @staticmethod
    def _by_id(reader: Store | Txn, job_id: str) -> dict[str, Any] | None:
        # Bounded before any lookup: the download route is open to anyone who can reach the server.
        return reader.get(DEPLOYMENT_JOBS, job_id) if job_id.isalnum() and len(job_id) == 24 else None

    # The target's agents.

    def _into(self, reader: Store | Txn, group_id: str, job_id: str) -> DeploymentJob:
        doc = self.log.lookup(reader, job_id)
        job = None if doc is None else DeploymentJob.from_doc(doc)
        if job is None or job.delivery.target_group_id != group_id:
            raise NotFound(
                f"no restore job {job_id} into project {group_id}",
                error_code="RESTORE_JOB_NOT_FOUND",
                jobId=job_id,
            )
        return job

    def loading(self, group_id: str) -> list[Loading]:
        """The automated restores into the project still loading."""
        jobs = [
            DeploymentJob.from_doc(doc)
            for state in (JobState.QUEUED, JobState.RUNNING)
            for doc in self.log.store.find(DEPLOYMENT_JOBS, statusName=state.value)
        ]
        return [
            Loading(job.id, group_id, tuple(job.pending))
            for job in jobs
            if job.delivery.target_group_id == group_id
        ]

    def open_for_loading(self, group_id: str, job_id: str, replica_set: str | None = None) -> ResolvedRestore:
        """The plan an agent of the target loads (409 before its documents start): of a sharded cluster's
        job, the part restored into the target's ``replica_set`` (400 for one the job does not restore
        into). The job is RUNNING from then on."""
        job = self._into(self.log.store, group_id, job_id)
        part = None
        if job.parts is not None:
            found = next((p for p in job.parts if p.target_replica_set_name == replica_set), None)
            if found is None:
                raise InvalidInput(
                    f"restore job {job_id} restores no part into replica set {replica_set}",
                    field="replicaSet",
                )
            part = found.replica_set_name
        resolved = dict(self.plans(job))[part]
        self.log.start(job_id)
        return resolved

    def report(
        self, group_id: str, job_id: str, hostname: str, names: Any, outcome: Any, detail: Any
    ) -> dict[str, Any]:
        """An agent loaded (DONE) or failed to load (FAILED) its ``names`` of the target. The job is FINISHED
        when every process of the target is done; a job that ends enables the target's processes again in
        the same transaction."""
        if not isinstance(names, list) or outcome not in list(LoadOutcome):
            raise InvalidInput("give processes (a list) and state DONE, FAILED or LOADING", field="state")
        with self.log.store.tx() as t:
            job = self._into(t, group_id, job_id)
            self.log.refuse_ended(job.to_doc())
            now = self.log.now_ms()
            if outcome == LoadOutcome.LOADING:
                loading = sorted({*job.loading, *(n for n in names if n in job.pending)})
                job = DeploymentJob.from_doc(t.put(DEPLOYMENT_JOBS, job.changed(loading=loading).to_doc()))
            elif outcome == LoadOutcome.FAILED:
                failure = f"{hostname}: {detail}"[:500]
                job = self.log.move_typed(t, job, JobState.FAILED, finished=now, failure=failure)
            else:
                job = job.changed(pending=[n for n in job.pending if n not in names])
                if job.pending:
                    t.put(DEPLOYMENT_JOBS, job.to_doc())
                else:
                    job = self.log.move_typed(t, job, JobState.FINISHED, finished=now)
            if job.status_name in FINAL:
                self._enable(t, job)
            t.notify(WORK_CHANGED, group_id)
        return job.to_doc()

    def _disabled(self, job: DeploymentJob) -> list[str]:
        """The target's processes the job disables: those it loads and a sharded cluster's mongos."""
        return sorted({*self._target_names(job), *job.mongos})

    def _target_names(self, job: DeploymentJob) -> list[str]:
        """The target's processes the job loads: its replica set's, or each part's."""
        if job.parts is not None:
            return sorted({n for p in job.parts for n in p.processes})
        group_id = str(job.delivery.target_group_id)
        replica_set = str(job.delivery.target_replica_set_name)
        return [p["name"] for p in self.targets.processes(group_id, replica_set)]

    def _enable(self, t: Txn, job: DeploymentJob) -> None:
        """The target's processes enabled again (with the move that ends the job): automation starts them."""
        self.targets.set_disabled(t, str(job.delivery.target_group_id), self._disabled(job), False)

    def cancel(self, group_id: str, cluster_id: str, job_id: str) -> dict[str, Any]:
        """Cancels an automated restore that has not ended (``backup.restore_cancel``): CANCELLED with the
        statement of what its target holds, the target's processes enabled in the same transaction."""
        with self.log.store.tx() as t:
            doc = self.log.lookup(t, job_id, groupId=group_id, clusterId=cluster_id)
            if doc is None:
                raise NotFound(f"no restore job {job_id}", error_code="RESTORE_JOB_NOT_FOUND", jobId=job_id)
            job = DeploymentJob.from_doc(doc)
            if job.delivery.target_group_id is None:
                raise Conflict(f"restore job {job_id} is a download: nothing to cancel", jobId=job_id)
            what = cancellation(job, self._target_names(job))
            job = self.log.move_typed(
                t, job, JobState.CANCELLED, finished=self.log.now_ms(), cancellation=what.to_json()
            )
            self._enable(t, job)
            t.notify(WORK_CHANGED, str(job.delivery.target_group_id))
        return job.to_doc()

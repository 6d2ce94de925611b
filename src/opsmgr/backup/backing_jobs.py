"""Restore jobs of a primary's backing databases (``backing_restore_jobs``), on the secondary that backs them
up: every store planned before the job is recorded, streamed store by store to the restoring host (the
backing agent on the primary's host, ``delivery`` AGENT, or ``opsmgr drill`` into its sandbox, CLI), the
outcome and progress reported by that host, cancelled by the operator (``backup.restore_cancel``). The moves
are :mod:`opsmgr.backup.jobs`' state machine (its ``JobLog`` and transition table), one transaction each.

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup`` and ``opsmgr.automation.protocol``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.backup.backing_reports import backing_choices, parse_agent_report
from opsmgr.backup.clusters import Clusters
from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.job_records import BackingDelivery, BackingJob, BackingStoreEntry, JobState, RestorePurpose
from opsmgr.backup.jobs import BACKING_JOBS, ENDED, FINAL, JobLog, target_fields
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.restore_cancel import backing_cancellation
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store.engine import Store, Txn, new_id

_UNDER_WAY = (JobState.QUEUED, JobState.RUNNING)


class BackingRestores:
    """Restore jobs of the backing databases a secondary backs up: every store planned first, streamed to
    the primary's host store by store, the outcome reported by that host."""

    def __init__(
        self,
        store: Store,
        daemon: BackupDaemon,
        guard: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = JobLog(store, BACKING_JOBS, clock)
        self.daemon = daemon
        self.clusters = Clusters(store, daemon)
        self.guard = guard

    def _plan(self, src: Source, target: Any, name: str) -> ResolvedRestore:
        if not isinstance(target, dict):
            raise InvalidInput(
                f"stores.{name} must be an object with the restore target", field=f"stores.{name}"
            )
        return self.daemon.restore_plan(src.id, target_fields(target))

    def create(
        self,
        group_id: str,
        cluster_id: str,
        targets: Any,
        purpose: Any = None,
        delivery: Any = None,
        force: Any = None,
    ) -> dict[str, Any]:
        """``targets`` maps store names to a restore target each; every store is planned before the job is
        recorded (400 outside its window, 409 when blocks are missing). ``purpose``: RESTORE (the default)
        or DRILL; ``delivery``: CLI (the default) or AGENT (the backing agent carries it out, ``force``
        accepting metadata stores earlier than the application database)."""
        self.guard(group_id)
        purpose, delivery = backing_choices(purpose, delivery, force)
        if delivery is BackingDelivery.AGENT:
            self._refuse_second_agent_job(group_id, cluster_id)
        sources = self.clusters.backing_sources(self.clusters.backing(group_id, cluster_id))
        if not isinstance(targets, dict) or not targets:
            raise InvalidInput(
                "stores must map app, snapshot and/or oplog to a restore target", field="stores"
            )
        stores = {}
        for name, target in targets.items():
            if name not in sources:
                raise InvalidInput(
                    f"no backed-up store {name!r}: use {sorted(sources)}", field=f"stores.{name}"
                )
            resolved = self._plan(sources[name], target, name)
            stores[name] = BackingStoreEntry(
                source_id=sources[name].id,
                target=target,
                target_position=resolved.plan.target,
                plan=resolved.to_json(),
            )
        job = BackingJob(
            id=new_id(),
            group_id=group_id,
            cluster_id=cluster_id,
            stores=stores,
            created=self.log.now_ms(),
            status_name=JobState.QUEUED,
            purpose=purpose,
            **({"delivery": delivery, "force": force is True} if delivery is BackingDelivery.AGENT else {}),
        ).to_doc()
        # An agent's job is in its host's work list from this transaction on.
        self.log.create(job, lambda t, j: t.notify(WORK_CHANGED, group_id))
        return job

    def _refuse_second_agent_job(self, group_id: str, cluster_id: str) -> None:
        for job in self.agent_jobs(group_id):
            if job.cluster_id == cluster_id:
                raise Conflict(
                    f"restore job {job.id} of these backing databases is {job.status_name}: one restore at a "
                    "time",
                    error_code="RESTORE_IN_PROGRESS",
                    jobId=job.id,
                )

    def agent_jobs(self, group_id: str) -> list[BackingJob]:
        """The project's backing restores its agents carry out that have not ended, oldest first."""
        docs = self.log.store.find(BACKING_JOBS, groupId=group_id, delivery=BackingDelivery.AGENT.value)
        jobs = [BackingJob.from_doc(doc) for doc in docs]
        return sorted((j for j in jobs if j.status_name in _UNDER_WAY), key=lambda j: j.created)

    def get(self, group_id: str, cluster_id: str, job_id: str) -> dict[str, Any]:
        return self._get(self.log.store, group_id, cluster_id, job_id).to_doc()

    def of_cluster(self, group_id: str, cluster_id: str) -> list[dict[str, Any]]:
        """The backing deployment's restore jobs, newest first (the restore history)."""
        self.clusters.backing(group_id, cluster_id)
        docs = self.log.store.find(BACKING_JOBS, groupId=group_id, clusterId=cluster_id)
        jobs = [BackingJob.from_doc(doc) for doc in docs]
        return [job.to_doc() for job in sorted(jobs, key=lambda j: -j.created)]

    def _get(self, reader: Store | Txn, group_id: str, cluster_id: str, job_id: str) -> BackingJob:
        return self._found(reader, job_id, "", groupId=group_id, clusterId=cluster_id)

    def _found(self, reader: Store | Txn, job_id: str, which: str, **match: str) -> BackingJob:
        """The job that matches; 404 naming ``which`` jobs were searched for any other."""
        job = self.log.lookup(reader, job_id, **match)
        if job is None:
            raise NotFound(
                f"no restore job {job_id} of backing databases{which}",
                error_code="RESTORE_JOB_NOT_FOUND",
                jobId=job_id,
            )
        return BackingJob.from_doc(job)

    def open_store(self, group_id: str, cluster_id: str, job_id: str, name: str) -> ResolvedRestore:
        """The plan of one store of a job that has not ended (409 before its documents start); the job is
        RUNNING from then on."""
        job = self._get(self.log.store, group_id, cluster_id, job_id)
        entry = job.stores.get(name)
        if entry is None:
            raise NotFound(f"restore job {job_id} does not restore the {name} store", store=name)
        if job.status_name in ENDED:
            raise Conflict(f"restore job {job_id} is already {job.status_name}", jobId=job_id)
        resolved = self._plan(self.daemon.source(entry.source_id), entry.target, name)
        self.log.start(job_id)
        return resolved

    def finish(
        self,
        group_id: str,
        cluster_id: str,
        job_id: str,
        status: Any,
        detail: Any,
        **report: dict[str, Any],
    ) -> dict[str, Any]:
        """The restoring host's outcome; FINISHED asks for a new initial sync of each restored store (the
        restored database goes on from a new history, not from the backed-up one), unless the job restored
        a drill's sandbox: production then goes on as it was, its windows without a new hole. ``report``:
        an agent's last ``progress`` and its ``outcome``."""
        if status not in list(FINAL):
            raise InvalidInput("statusName must be FINISHED or FAILED", field="statusName")
        with self.log.store.tx() as t:
            job = self.log.move_typed(
                t,
                self._get(t, group_id, cluster_id, job_id),
                JobState(status),
                finished=self.log.now_ms(),
                detail=str(detail)[:1000],
                **report,
            )
            if job.delivery is BackingDelivery.AGENT:
                t.notify(WORK_CHANGED, group_id)  # out of its agent's work list
        if status == JobState.FINISHED and job.purpose is RestorePurpose.RESTORE:
            for name, entry in job.stores.items():
                self.daemon.require_resync(
                    entry.source_id,
                    f"the primary's {name} store was restored by job {job_id}: a new initial sync",
                )
        return job.to_doc()

    def cancel(self, group_id: str, cluster_id: str, job_id: str) -> dict[str, Any]:
        """Cancels a restore its agent carries out (``restore_cancel.backing_cancellation``): CANCELLED with
        the statement of what the stores hold, out of the agent's work list in the same transaction (its
        next progress report is answered 409). Restoration Mode does not refuse it: it changes no
        deployment."""
        with self.log.store.tx() as t:
            job = self._get(t, group_id, cluster_id, job_id)
            what = backing_cancellation(job)
            job = self.log.move_typed(
                t, job, JobState.CANCELLED, finished=self.log.now_ms(), cancellation=what.to_json()
            )
            t.notify(WORK_CHANGED, group_id)
        return job.to_doc()

    def agent_job(self, group_id: str, job_id: str) -> BackingJob:
        """A job of the project an agent carries out; 404 for any other."""
        return self._found(
            self.log.store,
            job_id,
            " carried out by an agent",
            groupId=group_id,
            delivery=BackingDelivery.AGENT.value,
        )

    def agent_report(self, group_id: str, job_id: str, report: Mapping[str, Any]) -> dict[str, Any]:
        """The backing agent's report on one of its jobs: its ``progress`` (the job is RUNNING from the first
        on), or its end (``statusName``, ``detail``, ``outcome``). 404 for a job no agent carries out."""
        found = self.agent_job(group_id, job_id)
        fields = parse_agent_report(report)
        cluster_id = found.cluster_id
        if "statusName" in report:
            return self.finish(
                group_id, cluster_id, job_id, report["statusName"], report.get("detail", ""), **fields
            )
        with self.log.store.tx() as t:
            job = self._get(t, group_id, cluster_id, job_id).to_doc()
            if self.log.refuse_ended(job) is JobState.QUEUED:
                return self.log.move(t, job, JobState.RUNNING, started=self.log.now_ms(), **fields)
            return t.put(BACKING_JOBS, {**job, **fields})

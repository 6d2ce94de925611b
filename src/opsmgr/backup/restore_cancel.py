"""What cancelling an automated restore of a deployment does, decided from the job alone (no I/O): the job
ends CANCELLED, the target's processes are enabled again in the transaction that ends it (the automation
cycle of each host starts them, as when a restore finishes), and the job keeps a statement of what each
process of the target now holds:

- QUEUED, or RUNNING with nothing loaded yet: every process still holds its data from before the restore;
- RUNNING with some loaded: the processes an agent reported DONE were restored to the job's point; those an
  agent had begun to load (``loading``) may hold part of the restored data, and are named so (restore again
  or resync them); the others still hold their data from before the restore;
- FINISHED, FAILED or CANCELLED: refused (409), the job says what happened already.

The agents learn of the cancellation from their work list, which no longer carries the job: each stops
before its next process (a process whose load is under way completes it, the only point where the driver's
load leaves a whole data set behind) and reports nothing more.

A restore of a primary's backing databases carried out by its backing agent (``delivery: AGENT``) is
cancelled the same way (``DELETE .../backingDatabases/{cid}/restoreJobs/{jobId}``), decided from the
agent's last progress report, which names the store it writes and those it wrote before it touches the
next (:func:`backing_cancellation`):

- before writing (QUEUED, or a phase before WRITING): every store still holds its data from before the
  restore; the agent removes its fences when it learns of the cancellation;
- while writing: the stores reported written were restored, the one being written may hold only part of
  the restored data, the others are untouched; the agent stops at its next batch boundary and leaves every
  fence, so the primary cannot start on a half-replaced store until a restore completes;
- a job the host that asked carries out (``delivery: CLI``: ``opsmgr drill`` into its sandbox): refused
  (409), it is stopped by stopping that command.

Why ``DELETE .../restoreJobs/{jobId}``: Ops Manager's public API has no route that cancels a restore job
(its statuses include KILLED, which is what a cancelled job shows, ``phase`` CANCELLED); Atlas's cloud
backup cancels one with a DELETE on the job, so that is the least surprising route, and the job stays
listed, as there.

May import ``opsmgr.errors``, ``opsmgr.backup.job_records`` and ``opsmgr.store.backing``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmgr.backup.job_records import BackingDelivery, BackingJob, DeploymentJob, JobState
from opsmgr.errors import Conflict
from opsmgr.store.backing import LABELS, StoreName

CANCELLABLE = frozenset({JobState.QUEUED, JobState.RUNNING})


@dataclass(frozen=True)
class Cancellation:
    """What the target holds once its restore was cancelled, by process name."""

    restored: tuple[str, ...]  # loaded to the job's point
    partial: tuple[str, ...]  # their load had begun: part of the restored data, or all of it
    unchanged: tuple[str, ...]  # their data from before the restore
    restored_to: str
    # How the statement names each (a store's label; a process by its name) and what it says of a partial one.
    labels: Mapping[str, str] = field(default_factory=dict)
    partial_advice: str = "restore again or resync {them}"
    note: str = ""

    def _names(self, names: Sequence[str]) -> str:
        return ", ".join(self.labels.get(n, n) for n in names)

    @property
    def statement(self) -> str:
        parts = []
        if self.restored:
            parts.append(f"{self._names(self.restored)} {_was(self.restored)} restored to {self.restored_to}")
        if self.partial:
            advice = self.partial_advice.format(them="it" if len(self.partial) == 1 else "them")
            parts.append(
                f"{self._names(self.partial)} {_was(self.partial)} being loaded when the restore was "
                f"cancelled and may hold only part of the restored data: {advice}"
            )
        if self.unchanged:
            verb = "still holds its" if len(self.unchanged) == 1 else "still hold their"
            parts.append(f"{self._names(self.unchanged)} {verb} data from before the restore")
        return "; ".join(parts) + (f". {self.note}" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "restored": list(self.restored),
            "partiallyLoaded": list(self.partial),
            "unchanged": list(self.unchanged),
            "restoredTo": self.restored_to,
            "statement": self.statement,
        }


def _was(names: Sequence[str]) -> str:
    return "was" if len(names) == 1 else "were"


def restored_to(job: DeploymentJob) -> str:
    """The job's point as people read it: the target's date and the snapshot it starts from."""
    date = (job.plan.get("targetTimestamp") or {}).get("date")
    return f"{date} (from snapshot {job.snapshot_id})" if date else f"snapshot {job.snapshot_id}"


def cancellation(job: DeploymentJob, target: Sequence[str]) -> Cancellation:
    """What cancelling ``job`` leaves in ``target`` (the names of the target's processes now); 409 for a job
    that ended."""
    refuse_ended(job.id, job.status_name)
    pending = set(job.pending)
    loading = set(job.loading) & pending
    ordered = sorted(target)
    return Cancellation(
        restored=tuple(n for n in ordered if n not in pending),
        partial=tuple(n for n in ordered if n in loading),
        unchanged=tuple(n for n in ordered if n in pending - loading),
        restored_to=restored_to(job),
    )


def refuse_ended(job_id: str, state: JobState) -> None:
    """409 for a job that ended: only a QUEUED or RUNNING restore can be cancelled."""
    if state not in CANCELLABLE:
        raise Conflict(
            f"restore job {job_id} is already {state}: only a QUEUED or RUNNING restore can be cancelled",
            error_code="RESTORE_JOB_NOT_CANCELLABLE",
            jobId=job_id,
            phase=state.value,
        )


STORE_ORDER = [n.value for n in StoreName]
FENCED = (
    "Every store stays fenced (the restore's fences): the primary cannot start until a restore of its "
    "backing databases completes (opsmgr backup restore-stores)"
)


def backing_cancellation(job: BackingJob) -> Cancellation:
    """What cancelling a restore of the backing databases leaves in its stores, from the agent's last
    progress (``written``: the stores it wrote, ``writing``: the one it writes); 409 for a job that ended
    or one the host that asked carries out."""
    refuse_ended(job.id, job.status_name)
    if job.delivery is not BackingDelivery.AGENT:
        raise Conflict(
            f"restore job {job.id} is carried out by the host that asked (opsmgr drill into its sandbox, "
            "delivery CLI): stop that command to cancel it",
            error_code="RESTORE_BY_CLI",
            jobId=job.id,
        )
    names = [n for n in STORE_ORDER if n in job.stores]
    progress = job.progress or {}
    writing = progress.get("phase") == "WRITING"
    written = set(progress.get("written") or []) if writing else set()
    partial = {progress.get("writing")} if writing else set()
    return Cancellation(
        restored=tuple(n for n in names if n in written),
        partial=tuple(n for n in names if n in partial - written),
        unchanged=tuple(n for n in names if n not in written | partial),
        restored_to=_backing_point(job),
        labels=LABELS,
        partial_advice="restore again",
        note=FENCED if writing else "",
    )


def _backing_point(job: BackingJob) -> str:
    """The job's point as sent for its first store (all three go to one point by default)."""
    first = next(n for n in STORE_ORDER if n in job.stores)
    sent = ", ".join(f"{k} {v}" for k, v in sorted(job.stores[first].target.items()))
    return f"the job's point ({sent})"

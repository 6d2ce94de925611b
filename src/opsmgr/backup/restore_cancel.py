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

Why ``DELETE .../restoreJobs/{jobId}``: Ops Manager's public API has no route that cancels a restore job
(its statuses include KILLED, which is what a cancelled job shows, ``phase`` CANCELLED); Atlas's cloud
backup cancels one with a DELETE on the job, so that is the least surprising route, and the job stays
listed, as there.

May import ``opsmgr.errors`` and ``opsmgr.backup.job_records``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsmgr.backup.job_records import DeploymentJob, JobState
from opsmgr.errors import Conflict

CANCELLABLE = frozenset({JobState.QUEUED, JobState.RUNNING})


@dataclass(frozen=True)
class Cancellation:
    """What the target holds once its restore was cancelled, by process name."""

    restored: tuple[str, ...]  # loaded to the job's point
    partial: tuple[str, ...]  # their load had begun: part of the restored data, or all of it
    unchanged: tuple[str, ...]  # their data from before the restore
    restored_to: str

    @property
    def statement(self) -> str:
        parts = []
        if self.restored:
            parts.append(f"{_names(self.restored)} {_was(self.restored)} restored to {self.restored_to}")
        if self.partial:
            parts.append(
                f"{_names(self.partial)} {_was(self.partial)} being loaded when the restore was cancelled "
                "and may hold only part of the restored data: restore again or resync "
                + ("it" if len(self.partial) == 1 else "them")
            )
        if self.unchanged:
            verb = "still holds its" if len(self.unchanged) == 1 else "still hold their"
            parts.append(f"{_names(self.unchanged)} {verb} data from before the restore")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "restored": list(self.restored),
            "partiallyLoaded": list(self.partial),
            "unchanged": list(self.unchanged),
            "restoredTo": self.restored_to,
            "statement": self.statement,
        }


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def _was(names: Sequence[str]) -> str:
    return "was" if len(names) == 1 else "were"


def restored_to(job: DeploymentJob) -> str:
    """The job's point as people read it: the target's date and the snapshot it starts from."""
    date = (job.plan.get("targetTimestamp") or {}).get("date")
    return f"{date} (from snapshot {job.snapshot_id})" if date else f"snapshot {job.snapshot_id}"


def cancellation(job: DeploymentJob, target: Sequence[str]) -> Cancellation:
    """What cancelling ``job`` leaves in ``target`` (the names of the target's processes now); 409 for a job
    that ended."""
    if job.status_name not in CANCELLABLE:
        raise Conflict(
            f"restore job {job.id} is already {job.status_name}: only a QUEUED or RUNNING restore can be "
            "cancelled",
            error_code="RESTORE_JOB_NOT_CANCELLABLE",
            jobId=job.id,
            phase=job.status_name.value,
        )
    pending = set(job.pending)
    loading = set(job.loading) & pending
    ordered = sorted(target)
    return Cancellation(
        restored=tuple(n for n in ordered if n not in pending),
        partial=tuple(n for n in ordered if n in loading),
        unchanged=tuple(n for n in ordered if n in pending - loading),
        restored_to=restored_to(job),
    )

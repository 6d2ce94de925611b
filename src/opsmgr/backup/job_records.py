"""Restore jobs as stored, typed: a deployment's restore job (``backup_restore_jobs``) and a restore job of a
primary's backing databases (``backing_restore_jobs``), with their delivery and their stores.

A stored job is outside input (``store.records.Stored``): a malformed one is a StoreError naming the job and
the field, and a job writes back exactly the keys its document had, so the API's answers (the document less
its internals) do not change. What the client sent as the restore target and the plan's JSON are kept as
given: they are shown as stored and read again only by the planner. May import ``opsmgr.store.records``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field

from opsmgr.store.records import Stored


class JobState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"  # from the first download of its documents on
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # stopped on request before it finished (``backup.restore_cancel``)


# A deployment's restore job's ``statusName`` as Ops Manager names it (FINISHED, IN_PROGRESS, BROKEN, KILLED;
# a cancelled job is KILLED):
# it tells neither a queued job from a running one nor a failure by that name; the public view keeps
# opsmgr's own state beside it as ``phase``.
OPS_MANAGER_STATUS: dict[JobState, str] = {
    JobState.QUEUED: "IN_PROGRESS",
    JobState.RUNNING: "IN_PROGRESS",
    JobState.FINISHED: "FINISHED",
    JobState.FAILED: "BROKEN",
    JobState.CANCELLED: "KILLED",
}


class JobDelivery(Stored):
    """How a deployment's job delivers: ``HTTP`` (a download) or ``AUTOMATED_RESTORE`` (into a cluster)."""

    method_name: str
    expiration_hours: int | None = None
    max_downloads: int | None = None
    target_group_id: str | None = None
    target_cluster_id: str | None = None
    target_replica_set_name: str | None = None


class JobPart(Stored):
    """One part of a sharded cluster's restore job (``backup.sharded``): the replica set restored, the
    snapshot it starts from, and for an automated restore the target's replica set and its processes."""

    replica_set_name: str
    type_name: str
    shard_name: str | None = None
    snapshot_id: str
    target_replica_set_name: str | None = None
    processes: list[str] = Field(default_factory=list)


class DeploymentJob(Stored):
    id: str = Field(alias="_id")
    group_id: str
    cluster_id: str
    target: dict[str, Any]  # the fields of the request that name the target, as sent
    plan: dict[str, Any]  # ``ResolvedRestore.to_json`` when created
    snapshot_id: str
    delivery: JobDelivery
    created: int
    status_name: JobState
    download: dict[str, Any] | None = None  # an HTTP job's grant (``server.download_grants``)
    pending: list[str] = Field(default_factory=list)  # the target's processes not loaded yet
    loading: list[str] = Field(default_factory=list)  # of those, the ones an agent began to load
    started: int | None = None
    finished: int | None = None
    failure: str | None = None
    # A cancelled job's statement of what its target holds (``restore_cancel.Cancellation.to_json``).
    cancellation: dict[str, Any] | None = None
    # A sharded cluster's job: every part restored to the one point, and the target's mongos (disabled with
    # its parts' processes, never loaded).
    parts: list[JobPart] | None = None
    mongos: list[str] = Field(default_factory=list)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> DeploymentJob:
        return cls.parse_stored(doc, f"the stored restore job {doc.get('_id', '?')!r}")


class BackingStoreEntry(Stored):
    """One backing database of a backing job: its backup source, the target as sent, and the plan."""

    source_id: str
    target: dict[str, Any]
    target_position: int
    plan: dict[str, Any]


class RestorePurpose(StrEnum):
    """Why the backing databases are restored: the primary's own stores (RESTORE: the secondary then
    backs them up from a new history), or a drill's sandbox (DRILL: production is left as it is)."""

    RESTORE = "RESTORE"
    DRILL = "DRILL"


class BackingDelivery(StrEnum):
    """Who carries a backing restore out: the host that asked (CLI: ``opsmgr drill`` into its sandbox, which
    downloads the stores and reports the outcome) or the backing agent on the primary's host (AGENT: it
    finds the job in its work list, reports progress and the outcome)."""

    CLI = "CLI"
    AGENT = "AGENT"


class BackingJob(Stored):
    id: str = Field(alias="_id")
    group_id: str
    cluster_id: str
    stores: dict[str, BackingStoreEntry]
    created: int
    status_name: JobState
    purpose: RestorePurpose = RestorePurpose.RESTORE
    delivery: BackingDelivery = BackingDelivery.CLI
    force: bool = False  # AGENT: accept metadata stores earlier than the application database
    started: int | None = None
    finished: int | None = None
    detail: str | None = None
    progress: dict[str, Any] | None = None  # AGENT: {phase, fraction, documents, message}, as reported
    outcome: dict[str, Any] | None = None  # AGENT: what the restore did or why it was refused
    # AGENT: a cancelled job's statement of what its stores hold (``restore_cancel.Cancellation.to_json``).
    cancellation: dict[str, Any] | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> BackingJob:
        return cls.parse_stored(doc, f"the stored restore job of backing databases {doc.get('_id', '?')!r}")

"""Cancelling an automated restore: the decision at each phase (``backup.restore_cancel``, no I/O), then the
move through ``DeploymentRestores.cancel``: CANCELLED with the statement, the target's processes enabled and
the agents' work announced in the same transaction, a job that ended or a download refused (409) with
nothing written, another project's or cluster's job not found, and the agents' reports refused after it."""

# The fixtures of test_jobs are imported by name, and test parameters name them again.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.backup.job_records import (
    BackingDelivery,
    BackingJob,
    BackingStoreEntry,
    DeploymentJob,
    JobDelivery,
    JobState,
)
from opsmgr.backup.jobs import DEPLOYMENT_JOBS, DeploymentRestores, Download
from opsmgr.backup.restore_cancel import backing_cancellation, cancellation
from opsmgr.errors import Conflict, NotFound
from opsmgr.store.engine import Change
from tests.backup.backuptest import Stores
from tests.backup.test_jobs import (  # noqa: F401  (fixtures among them)
    GOAL,
    PROCESSES,
    automated,
    changes,
    cluster_id,
    last_ts,
    restores,
    snapshot_of,
    targets,
)

WHEN = "2026-12-06T07:00:00Z"


def job(state: JobState, pending: list[str], loading: Sequence[str] = ()) -> DeploymentJob:
    return DeploymentJob(
        _id="j1",
        group_id="g1",
        cluster_id="c1",
        target={"snapshotId": "s1"},
        plan={"targetTimestamp": {"date": WHEN, "time": 1, "increment": 0}},
        snapshot_id="s1",
        delivery=JobDelivery(method_name="AUTOMATED_RESTORE", target_group_id="g1"),
        created=1,
        status_name=state,
        pending=pending,
        loading=list(loading),
    )


def test_a_queued_job_leaves_every_member_with_its_old_data() -> None:
    what = cancellation(job(JobState.QUEUED, PROCESSES), PROCESSES)
    assert (what.restored, what.partial, what.unchanged) == ((), (), tuple(PROCESSES))
    assert what.statement == "rs0_0, rs0_1, rs0_2 still hold their data from before the restore"


def test_a_running_job_names_restored_partly_loaded_and_untouched_members() -> None:
    what = cancellation(job(JobState.RUNNING, ["rs0_0", "rs0_2"], loading=["rs0_2"]), PROCESSES)
    assert (what.restored, what.partial, what.unchanged) == (("rs0_1",), ("rs0_2",), ("rs0_0",))
    assert what.statement == (
        f"rs0_1 was restored to {WHEN} (from snapshot s1); rs0_2 was being loaded when the restore was "
        "cancelled and may hold only part of the restored data: restore again or resync it; rs0_0 still "
        "holds its data from before the restore"
    )
    assert what.to_json()["partiallyLoaded"] == ["rs0_2"]


def test_a_member_reported_done_after_loading_counts_as_restored() -> None:
    what = cancellation(job(JobState.RUNNING, ["rs0_2"], loading=["rs0_0", "rs0_2"]), PROCESSES)
    assert (what.restored, what.partial, what.unchanged) == (("rs0_0", "rs0_1"), ("rs0_2",), ())


@pytest.mark.parametrize("state", [JobState.FINISHED, JobState.FAILED, JobState.CANCELLED])
def test_a_job_that_ended_cannot_be_cancelled(state: JobState) -> None:
    with pytest.raises(Conflict) as refused:
        cancellation(job(state, []), PROCESSES)
    assert refused.value.error_code == "RESTORE_JOB_NOT_CANCELLABLE"
    assert f"already {state.value}" in refused.value.detail


def test_cancel_ends_the_job_and_enables_its_target_in_one_transaction(
    restores: DeploymentRestores, cluster_id: str, stores: Stores, changes: list[Change]
) -> None:
    made = automated(restores, cluster_id)
    restores.report("g1", made["_id"], "h1", ["rs0_1"], "DONE", "")
    restores.report("g1", made["_id"], "h2", ["rs0_2"], "LOADING", "")
    changes.clear()
    cancelled = restores.cancel("g1", cluster_id, made["_id"])
    assert cancelled["statusName"] == "CANCELLED" and cancelled["finished"]
    assert cancelled["cancellation"]["restored"] == ["rs0_1"]
    assert cancelled["cancellation"]["partiallyLoaded"] == ["rs0_2"]
    assert cancelled["cancellation"]["unchanged"] == ["rs0_0"]
    assert stores.app.get(DEPLOYMENT_JOBS, made["_id"]) == cancelled
    assert stores.app.get(GOAL, "g1") == {"_id": "g1", "disabled": []}
    assert Change(WORK_CHANGED, "g1") in changes
    assert restores.loading("g1") == []
    before = last_ts(stores.app)
    with pytest.raises(Conflict, match="already CANCELLED"):
        restores.report("g1", made["_id"], "h2", ["rs0_2"], "DONE", "")
    with pytest.raises(Conflict, match="already CANCELLED"):
        restores.cancel("g1", cluster_id, made["_id"])
    assert last_ts(stores.app) == before


def test_a_finished_job_a_download_and_other_owners_are_refused(
    restores: DeploymentRestores, cluster_id: str, stores: Stores
) -> None:
    made = automated(restores, cluster_id)
    with pytest.raises(NotFound):
        restores.cancel("g2", cluster_id, made["_id"])
    with pytest.raises(NotFound):
        restores.cancel("g1", "othercluster", made["_id"])
    restores.report("g1", made["_id"], "h0", PROCESSES, "DONE", "")
    before = last_ts(stores.app)
    with pytest.raises(Conflict, match="already FINISHED"):
        restores.cancel("g1", cluster_id, made["_id"])
    assert last_ts(stores.app) == before
    target: dict[str, Any] = snapshot_of(restores.daemon, restores.daemon.sources("g1", cluster_id)[0].id)
    download = restores.create("g1", cluster_id, target, Download(1, 1))
    with pytest.raises(Conflict, match="download"):
        restores.cancel("g1", cluster_id, download["_id"])
    assert stores.app.get(DEPLOYMENT_JOBS, made["_id"])["statusName"] == "FINISHED"


# Restores of the backing databases by their agent: what a cancellation means at each phase.

STORES = ("app", "snapshot", "oplog")


def backing_job(
    state: JobState, progress: dict[str, Any] | None, delivery: BackingDelivery = BackingDelivery.AGENT
) -> BackingJob:
    entry = BackingStoreEntry(source_id="s", target={"pointInTimeUTCMillis": 5}, target_position=5, plan={})
    return BackingJob(
        _id="b1",
        group_id="g1",
        cluster_id="c1",
        stores={n: entry for n in STORES},
        created=1,
        status_name=state,
        delivery=delivery,
        progress=progress,
    )


@pytest.mark.parametrize(
    "state, phase",
    [
        (JobState.QUEUED, None),
        (JobState.RUNNING, "WAITING"),
        (JobState.RUNNING, "DOWNLOADING"),
        (JobState.RUNNING, "DECIDING"),
        (JobState.RUNNING, "FENCING"),
    ],
)
def test_a_backing_restore_cancelled_before_writing_changed_nothing(
    state: JobState, phase: str | None
) -> None:
    what = backing_cancellation(backing_job(state, {"phase": phase} if phase else None))
    assert (what.restored, what.partial, what.unchanged) == ((), (), STORES)
    assert what.statement == (
        "application database, snapshot metadata store, oplog metadata store still hold their data from "
        "before the restore"
    ), what.statement
    assert "fenced" not in what.statement


def test_a_backing_restore_cancelled_while_writing_names_restored_partial_and_untouched_stores() -> None:
    progress = {"phase": "WRITING", "written": ["app"], "writing": "snapshot"}
    what = backing_cancellation(backing_job(JobState.RUNNING, progress))
    assert (what.restored, what.partial, what.unchanged) == (("app",), ("snapshot",), ("oplog",))
    shown = what.to_json()
    assert shown["restored"] == ["app"] and shown["partiallyLoaded"] == ["snapshot"]
    assert shown["unchanged"] == ["oplog"] and "pointInTimeUTCMillis 5" in shown["restoredTo"]
    statement = what.statement
    assert "application database was restored to the job's point" in statement, statement
    assert "snapshot metadata store was being loaded" in statement and "restore again" in statement
    assert "oplog metadata store still holds its data from before the restore" in statement
    assert "the primary cannot start until a restore of its backing databases completes" in statement


def test_a_backing_restore_cancelled_after_its_last_store_names_all_restored_and_fenced() -> None:
    progress = {"phase": "WRITING", "written": list(STORES), "writing": None}
    what = backing_cancellation(backing_job(JobState.RUNNING, progress))
    assert (what.restored, what.partial, what.unchanged) == (STORES, (), ())
    assert "stays fenced" in what.statement


@pytest.mark.parametrize("state", [JobState.FINISHED, JobState.FAILED, JobState.CANCELLED])
def test_a_backing_restore_that_ended_is_not_cancelled(state: JobState) -> None:
    with pytest.raises(Conflict) as caught:
        backing_cancellation(backing_job(state, None))
    assert caught.value.error_code == "RESTORE_JOB_NOT_CANCELLABLE"


def test_a_drills_restore_is_not_cancelled_here() -> None:
    with pytest.raises(Conflict) as caught:
        backing_cancellation(backing_job(JobState.RUNNING, None, BackingDelivery.CLI))
    assert caught.value.error_code == "RESTORE_BY_CLI" and "opsmgr drill" in caught.value.detail

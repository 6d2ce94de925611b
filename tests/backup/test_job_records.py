"""Restore jobs as typed records: the documents restore jobs of both kinds were stored as before the records
existed read and write back unchanged, and a malformed stored job is a StoreError naming the job and field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opsmgr.backup.job_records import BackingJob, DeploymentJob, JobState
from opsmgr.errors import StoreError

PLAN = {
    "snapshotId": "s1",
    "snapshotTimestamp": {"date": "2026-01-01T00:00:00Z", "increment": 1},
    "targetTimestamp": {"date": "2026-01-01T00:00:00Z", "increment": 1},
    "pointInTimeUTCMillis": 1767225600000,
    "oplogSlices": 0,
    "oplogBound": "inclusive: entries with ts <= target are applied",
}
JOB_ID = "65f0c0ffee0000000000000a"
# As ``DeploymentRestores.create`` and the moves wrote them.
DOWNLOAD = {
    "_id": JOB_ID,
    "groupId": "g1",
    "clusterId": "c1",
    "target": {"snapshotId": "s1"},
    "plan": PLAN,
    "snapshotId": "s1",
    "delivery": {"methodName": "HTTP", "expirationHours": 2, "maxDownloads": 3},
    "created": 1000,
    "statusName": "FINISHED",
    "download": {"for": JOB_ID, "expiresMs": 7201000, "maxDownloads": 3, "used": 1},
}
AUTOMATED = {
    **DOWNLOAD,
    "target": {"pointInTimeUTCMillis": 1767225600000},
    "delivery": {
        "methodName": "AUTOMATED_RESTORE",
        "targetGroupId": "g2",
        "targetClusterId": "c2",
        "targetReplicaSetName": "rs0",
    },
    "statusName": "RUNNING",
    "pending": ["rs0_2"],
    "started": 1500,
}
del AUTOMATED["download"]
FAILED = {**AUTOMATED, "statusName": "FAILED", "finished": 2000, "failure": "h1: disk full"}
BACKING = {
    "_id": JOB_ID,
    "groupId": "g1",
    "clusterId": "stores",
    "stores": {
        "app": {"sourceId": "src1", "target": {"snapshotId": "s1"}, "targetPosition": 123, "plan": PLAN}
    },
    "created": 1000,
    "statusName": "FINISHED",
    "started": 1100,
    "finished": 1200,
    "detail": "ok",
}


@pytest.mark.parametrize("doc", [DOWNLOAD, AUTOMATED, FAILED], ids=["download", "automated", "failed"])
def test_a_stored_deployment_job_round_trips_unchanged(doc: dict[str, Any]) -> None:
    job = DeploymentJob.from_doc(copy.deepcopy(doc))
    assert job.to_doc() == doc
    assert DeploymentJob.from_doc(job.to_doc()) == job
    assert job.status_name is JobState(doc["statusName"])


def test_a_stored_backing_job_round_trips_unchanged() -> None:
    job = BackingJob.from_doc(copy.deepcopy(BACKING))
    assert job.to_doc() == BACKING
    assert BackingJob.from_doc(job.to_doc()) == job
    assert job.stores["app"].source_id == "src1" and job.stores["app"].target_position == 123


def test_a_changed_job_writes_only_the_keys_set() -> None:
    job = DeploymentJob.from_doc(AUTOMATED).changed(pending=[])
    assert job.to_doc() == {**AUTOMATED, "pending": []}
    assert "failure" not in job.to_doc() and "download" not in job.to_doc()


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({**AUTOMATED, "statusName": "PAUSED"}, "statusName"),
        ({k: v for k, v in AUTOMATED.items() if k != "delivery"}, "delivery"),
        ({**AUTOMATED, "delivery": {"targetGroupId": "g2"}}, "delivery.methodName"),
        ({**AUTOMATED, "pending": "rs0_2"}, "pending"),
        ({**AUTOMATED, "created": "yesterday"}, "created"),
    ],
)
def test_a_malformed_deployment_job_is_a_store_error_naming_the_field(
    doc: dict[str, Any], field: str
) -> None:
    with pytest.raises(StoreError) as raised:
        DeploymentJob.from_doc(doc)
    assert raised.value.http_status == 503 and raised.value.error_code == "STORED_RECORD_MALFORMED"
    assert f"restore job '{JOB_ID}' is malformed" in raised.value.detail and field in raised.value.detail


def test_a_malformed_backing_job_is_a_store_error_naming_the_store() -> None:
    broken = copy.deepcopy(BACKING)
    del broken["stores"]["app"]["sourceId"]
    with pytest.raises(StoreError, match=r"backing databases .* is malformed \(stores\.app\.sourceId"):
        BackingJob.from_doc(broken)

"""The rules of restoring the three backing databases (``backup.store_restore.decide``) as a table, and the
facts read from restored documents."""

from __future__ import annotations

import pytest

from opsmgr.backup.store_restore import (
    RESTORE_JOBS,
    Facts,
    JobRef,
    Plan,
    Points,
    Refusal,
    SnapshotRef,
    StoreName,
    decide,
    jobs_from,
    snapshots_from,
)
from opsmgr.errors import InvalidInput
from opsmgr.server import backup_api

S = 1_000_000  # one second in store positions
T = 1_700_000_000 * S  # the application database's restore point

JOBS = (
    JobRef("job-old", "snap-old", None),  # its snapshot is older than every point below
    JobRef("job-new", "snap-new", None),  # snapshot taken between T - 10 s and T
    JobRef("job-pit", "snap-old", (T - 5 * S) // 1000),  # replays slices up to T - 5 s
)
FACTS = Facts(
    jobs=JOBS,
    restored_snapshots=frozenset({"snap-old"}),
    current_snapshots=(
        SnapshotRef("snap-old", "src", (T - 100 * S) // 1000),
        SnapshotRef("snap-new", "src", (T - 8 * S) // 1000),
        SnapshotRef("snap-later", "src", (T + 60 * S) // 1000),
    ),
)
ALL = (StoreName.APP, StoreName.SNAPSHOT, StoreName.OPLOG)


@pytest.mark.parametrize(
    ("points", "force", "stores", "jobs_409", "unavailable", "refused_jobs"),
    [
        # All three to the same point: the default, nothing to say.
        (Points(T, T, T), False, ALL, (), (), None),
        # Metadata later than the app DB: allowed.
        (Points(T, T + 30 * S, T + 30 * S), False, ALL, (), (), None),
        (Points(T, T, T + 1), False, ALL, (), (), None),
        # Snapshot metadata earlier: refused, naming the job whose snapshot it would not have.
        (Points(T, T - 10 * S, T), False, None, None, None, ("job-new",)),
        # Oplog metadata earlier than a job's point in time: refused, naming it.
        (Points(T, T, T - 10 * S), False, None, None, None, ("job-pit",)),
        # Both earlier: both kinds of job named.
        (Points(T, T - 10 * S, T - 10 * S), False, None, None, None, ("job-new", "job-pit")),
        # Earlier by a little (after the job's point): refused even though no job is affected.
        (Points(T, T, T - 1 * S), False, None, None, None, ()),
        # Forced: carried out, the jobs that will answer 409 named in the plan.
        (Points(T, T - 10 * S, T - 10 * S), True, ALL, ("job-new", "job-pit"), (), None),
        # Only the application database: the snapshots taken after T may be unavailable.
        (Points(T, None, None), False, (StoreName.APP,), (), ("snap-later",), None),
        # App DB and snapshot metadata; the oplog metadata left as it is.
        (Points(T, T, None), False, (StoreName.APP, StoreName.SNAPSHOT), (), (), None),
    ],
)
def test_decide(
    points: Points,
    force: bool,
    stores: tuple[StoreName, ...] | None,
    jobs_409: tuple[str, ...] | None,
    unavailable: tuple[str, ...] | None,
    refused_jobs: tuple[str, ...] | None,
) -> None:
    decision = decide(points, FACTS, force)
    if refused_jobs is not None:
        assert isinstance(decision, Refusal)
        assert decision.jobs == refused_jobs
        assert "earlier point than the application database" in decision.reason
        assert "--force" in decision.reason
        for job in refused_jobs:
            assert job in decision.reason
        return
    assert isinstance(decision, Plan)
    assert decision.stores == stores
    assert decision.jobs_answering_409 == jobs_409
    assert decision.snapshots_may_be_unavailable == unavailable
    if force:
        assert any("forced" in w and "409" in w for w in decision.warnings)


def test_app_only_with_lost_metadata_says_it_cannot_tell() -> None:
    plan = decide(Points(T, None, None), Facts(jobs=JOBS), force=False)
    assert isinstance(plan, Plan) and plan.snapshots_may_be_unavailable == ()
    assert any("cannot be read" in w for w in plan.warnings)


def test_later_metadata_is_reported() -> None:
    plan = decide(Points(T, T + 2 * S, T), FACTS, force=False)
    assert isinstance(plan, Plan)
    assert plan.warnings == ("the snapshot metadata store is restored 2.000 s later than the app DB",)


def test_negative_points_are_invalid() -> None:
    with pytest.raises(InvalidInput):
        decide(Points(-1, None, None), FACTS, force=False)


def test_facts_from_documents() -> None:
    assert RESTORE_JOBS == backup_api.JOBS
    app_docs = [
        ("groups", {"_id": "g"}),
        (
            RESTORE_JOBS,
            {"_id": "j1", "snapshotId": "s1", "plan": {"oplogSlices": 0, "pointInTimeUTCMillis": 5}},
        ),
        (
            RESTORE_JOBS,
            {"_id": "j2", "snapshotId": "s2", "plan": {"oplogSlices": 3, "pointInTimeUTCMillis": 9}},
        ),
    ]
    assert jobs_from(app_docs) == (JobRef("j1", "s1", None, ""), JobRef("j2", "s2", 9, ""))
    snaps = [
        ("backup_snapshots.src1", {"_id": "s1", "createdAt": 7}),
        ("backup_snapshot_blocks", {"_id": "x"}),
    ]
    assert snapshots_from(snaps) == (SnapshotRef("s1", "src1", 7),)

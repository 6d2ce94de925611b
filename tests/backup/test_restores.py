"""backup.restores: the PITR window (with the holes gaps leave, and a cluster's sources together), restore
plans on both sides of the bound, and blocks the integrity job reported, verified again before a restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.backup.errors import BlockCorrupt, OutsideWindow, SnapshotBlocksMissing
from opsmgr.backup.grooming import INTEGRITY
from opsmgr.backup.restores import Restores
from opsmgr.backup.snapshots import ProgressBoard
from opsmgr.errors import NotFound
from opsmgr.store import Store
from tests.backup.backuptest import FakeClock, StoreAgent, at, restored


def test_the_bound_is_inclusive(daemon: BackupDaemon, source: Source, agent: StoreAgent) -> None:
    agent.sync()
    daemon.take_snapshot(source.id)
    agent.store.insert("things", {"_id": "first"})
    agent.store.insert("things", {"_id": "second"})
    agent.ship()
    second_ts = agent.store.oplog_bounds().last_ts or 0
    assert set(restored(daemon, source, at(second_ts))) == {("things", "first"), ("things", "second")}
    assert set(restored(daemon, source, at(second_ts - 1))) == {("things", "first")}
    with pytest.raises(OutsideWindow):
        daemon.restore_plan(source.id, at(second_ts + 1))


def test_a_gap_healed_by_a_resync_leaves_a_hole_in_the_window(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, clock: FakeClock
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    daemon.take_snapshot(source.id)
    agent.store.insert("things", {"_id": "b"})
    agent.ship()
    before_gap = agent.acked or 0
    # The source's oplog rolls over before the agent ships this write: a gap.
    agent.store.insert("things", {"_id": "lost"})
    lost_ts = agent.store.oplog_bounds().last_ts or 0
    agent.store.cap(max_bytes=0)
    daemon.report_gap(source.id, None)
    status = daemon.status(source.id)
    assert status["syncRequired"] and status["gap"]["afterTs"] == before_gap
    agent.store.insert("things", {"_id": "c"})
    agent.sync()
    clock.advance(60)
    daemon.take_snapshot(source.id)
    agent.store.insert("things", {"_id": "d"})
    agent.ship()
    window = daemon.pitr_window(source.id)
    assert len(window) == 2 and window[0].end == before_gap and window[1].start > lost_ts
    assert daemon.status(source.id)["windowHoles"] == 1
    with pytest.raises(OutsideWindow) as err:
        daemon.restore_plan(source.id, at(lost_ts))
    assert len(err.value.parameters["restorableRanges"]) == 2
    assert set(restored(daemon, source, at(window[1].end))) == {("things", k) for k in "abcd" if k} | {
        ("things", "lost")
    }
    assert set(restored(daemon, source, at(before_gap))) == {("things", "a"), ("things", "b")}


def test_a_cluster_of_sources_restores_where_every_window_overlaps(
    daemon: BackupDaemon, tmp_path: Path
) -> None:
    stores = [Store(f"sqlite:///{tmp_path / f's{i}.db'}") for i in range(2)]
    try:
        agents = []
        for i, store in enumerate(stores):
            src = daemon.register_source("g1", "backing", f"db{i}", SourceKind.BACKING_DATABASE)
            store.insert("c", {"_id": "x"})
            agents.append(StoreAgent(daemon, src.id, store))
            agents[-1].sync()
            daemon.take_snapshot(src.id)
        for store, agent in zip(stores, agents, strict=True):
            for n in range(20):  # several milliseconds: the windows overlap by whole milliseconds
                store.insert("c", {"_id": f"y{n}"})
            agent.ship()
        common = daemon.cluster_window("g1", "backing")
        windows = [daemon.window_json(s.id) for s in daemon.sources("g1", "backing")]
        lo = max(w[0]["startUTCMillis"] for w in windows)
        hi = min(w[0]["endUTCMillis"] for w in windows)
        assert common == ([(lo, hi)] if lo <= hi else [])
        assert common, "the sources' windows overlap"
        plans = daemon.cluster_restore_plans("g1", "backing", {"pointInTimeUTCMillis": common[0][1]})
        assert sorted(p.snapshot.sourceId for p in plans) == sorted(s.id for s in daemon.sources("g1"))
        second = daemon.sources("g1", "backing")[1]
        snap = daemon.snapshots(second.id)[0]
        [plan] = daemon.cluster_restore_plans("g1", "backing", {"snapshotId": snap.id})
        assert plan.snapshot.sourceId == second.id
        with pytest.raises(SnapshotBlocksMissing):
            daemon.cluster_restore_plans("g1", "backing", {"snapshotId": "0123456789abcdef01234567"})
        with pytest.raises(NotFound):
            daemon.cluster_restore_plans("g1", "nope", {"snapshotId": snap.id})
    finally:
        for store in stores:
            store.close()


@pytest.fixture
def restores(daemon: BackupDaemon, tmp_path: Path) -> Restores:
    """The daemon's part alone, over its stores."""
    return Restores(
        daemon.registry,
        daemon.snapshot_catalog,
        daemon.slice_catalog,
        daemon.blockstore,
        tmp_path / "scratch",
        ProgressBoard(),
    )


def test_a_restore_reports_its_progress_under_the_id_it_is_given(
    restores: Restores, daemon: BackupDaemon, source: Source, agent: StoreAgent
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    snap = daemon.take_snapshot(source.id)
    plan = restores.plan(source.id, {"snapshotId": snap.id})
    assert [doc["_id"] for _, doc in restores.documents(plan, "job1")] == ["a"]
    progress = restores.progress.get("job1")
    assert progress is not None and progress.fraction == 1.0
    assert [(r.start, r.end) for r in restores.pitr_window(source.id)] == [(snap.position, snap.position)]
    with pytest.raises(NotFound):
        restores.cluster_plans("g1", "nope", {"snapshotId": snap.id})


def test_a_block_the_integrity_job_reported_is_verified_again_before_a_restore(
    restores: Restores, daemon: BackupDaemon, source: Source, agent: StoreAgent
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    snap = daemon.take_snapshot(source.id)
    (block,) = daemon.snapshot_catalog.blocks(snap.id) or []
    daemon.snapshot_catalog.store.put(
        INTEGRITY,
        {"_id": "last", "checkedAt": 0, "problems": [{"blockId": block, "problem": "x", "usedBy": []}]},
    )
    assert restores.plan(source.id, {"snapshotId": snap.id}).snapshot.id == snap.id  # repaired since
    path = daemon.blockstore.files.path(block)
    path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    with pytest.raises(BlockCorrupt):
        restores.plan(source.id, {"snapshotId": snap.id})

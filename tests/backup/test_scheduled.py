"""backup.scheduled: heads brought up to the slices and the snapshots taken from them, on schedule, on demand
and for each new chain; snapshot failures kept until the next success; a lost head rebuilt from the catalog,
or else a resync asked."""

from __future__ import annotations

import pytest

from opsmgr.backup import scheduled as scheduled_module
from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.backup.scheduled import Snapshots, TickReport
from opsmgr.backup.slices import SliceStatus
from opsmgr.backup.snapshots import ProgressBoard, SnapshotType
from opsmgr.backup.sources import SourceLocks
from opsmgr.errors import NotFound
from tests.backup.backuptest import FakeClock, StoreAgent


def test_ticks_take_the_first_snapshot_at_once_then_on_schedule(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, clock: FakeClock
) -> None:
    assert daemon.tick().snapshots == []  # nothing synced yet: nothing to snapshot, no failure
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    first = daemon.tick().snapshots
    assert len(first) == 1
    clock.advance(5 * 3600)
    assert daemon.tick().snapshots == []
    clock.advance(3600)
    agent.store.insert("things", {"_id": "b"})
    agent.ship()
    report = daemon.tick()
    assert len(report.snapshots) == 1
    newest = daemon.snapshot(source.id, report.snapshots[0])
    assert newest.type is SnapshotType.SCHEDULED and newest.records == 2


def test_on_demand_snapshots_are_queued_and_taken_at_the_next_tick(
    daemon: BackupDaemon, source: Source, agent: StoreAgent
) -> None:
    agent.sync()
    daemon.tick()
    other = daemon.register_source("g1", "c2", "rs", SourceKind.REPLICA_SET)  # not synced yet
    queued = daemon.enqueue_on_demand("g1")
    assert len(queued) == 2
    progress = daemon.progress(queued[0])
    assert progress is not None and progress.message == "queued"
    taken = daemon.tick().snapshots
    mine = daemon.snapshots(source.id)
    assert {m.id for m in mine if m.type is SnapshotType.ON_DEMAND} & set(queued) == set(taken)
    # The unsynced source's request waits for its initial sync.
    assert [r["sourceId"] for r in daemon.snapshot_catalog.requests()] == [other.id]
    daemon.initial_sync(other.id, 1 << 32, [("db.c", {"_id": 1})], 1 << 32)
    assert daemon.tick().snapshots[0] in queued
    assert daemon.snapshot_catalog.requests() == []
    with pytest.raises(NotFound):
        daemon.request_cluster_snapshot("g1", "no-such-cluster")


def test_status_reports_snapshot_failures_until_the_next_success(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    daemon.apply_pending(source.id)  # the job's owner builds the head from the finished sync
    status = daemon.status(source.id)
    assert status["lastSnapshot"] is None and status["snapshotDue"] is True
    assert status["head"]["consistent"] is True and status["head"]["applyLagMs"] == 0

    def disk_full(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(scheduled_module, "write_snapshot", disk_full)
        report = daemon.tick()
    assert "No space left" in report.failures[source.id]
    failure = daemon.status(source.id)["lastSnapshotFailure"]
    assert failure is not None and "No space left" in failure["message"]
    clock.advance(10)
    daemon.tick()
    status = daemon.status(source.id)
    assert status["lastSnapshotFailure"] is None
    assert status["lastSnapshot"] is not None and status["lastSnapshotAgeMs"] == 0
    assert status["windowEndUTCMillis"] is not None and status["syncRequired"] is None


def test_a_lost_head_is_rebuilt_or_else_asks_the_agent_for_a_new_initial_sync(
    daemon: BackupDaemon, source: Source, agent: StoreAgent
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    daemon.tick()
    agent.store.insert("things", {"_id": "b"})
    agent.ship()
    daemon.heads.remove(source.id)  # the blockstore disk lost the head file
    daemon.tick()  # rebuilt from the chain's snapshot and the slice after it
    assert daemon.acknowledged(source.id).status is SliceStatus.ACCEPTED
    assert daemon.take_snapshot(source.id).records == 2

    # Nothing to rebuild from: a finished sync whose record is gone, no snapshot of its chain.
    result = agent.sync()
    daemon.ingest.syncs.delete([str(result.chain)])
    daemon.tick()
    assert daemon.acknowledged(source.id).status is SliceStatus.SYNC_REQUIRED
    assert "head copy" in (daemon.status(source.id)["syncRequired"] or "")
    agent.sync()
    assert daemon.acknowledged(source.id).status is SliceStatus.ACCEPTED
    assert daemon.take_snapshot(source.id).records == 2


@pytest.fixture
def snapshots(daemon: BackupDaemon) -> Snapshots:
    """The daemon's part alone, over its stores."""
    return Snapshots(
        daemon.registry,
        daemon.snapshot_catalog,
        daemon.slice_catalog,
        daemon.blockstore,
        daemon.heads,
        SourceLocks(),
        ProgressBoard(),
        daemon.clock,
        512,
    )


def test_a_tick_snapshots_a_new_chain_at_once_and_waits_for_a_head_to_be_consistent(
    snapshots: Snapshots, daemon: BackupDaemon, source: Source, agent: StoreAgent, clock: FakeClock
) -> None:
    broken = daemon.register_source("g1", "c1", "other", SourceKind.BACKING_DATABASE)
    daemon.initial_sync(broken.id, 1, [], 5)  # consistent only once slices reach 5: none come
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    report = TickReport()
    snapshots.tick(daemon.now_ms(), report)
    assert len(report.snapshots) == 1 and report.applied == {source.id: 0, broken.id: 0}
    clock.advance(60)
    agent.sync()  # a resync: a new chain, not due by the schedule, snapshotted at once
    report = TickReport()
    snapshots.tick(daemon.now_ms(), report)
    assert len(report.snapshots) == 1 and report.failures == {}
    assert len({m.chain for m in snapshots.of_source(source.id)}) == 2
    assert snapshots.of_source(broken.id) == []


def test_a_request_for_an_unknown_source_or_cluster_is_not_found(snapshots: Snapshots) -> None:
    with pytest.raises(NotFound):
        snapshots.request("nope")
    with pytest.raises(NotFound):
        snapshots.request_cluster("g1", "nope")
    with pytest.raises(NotFound):
        snapshots.get("nope", "0123456789abcdef01234567")
    assert snapshots.last_failure("nope") is None

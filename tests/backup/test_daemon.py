"""The daemon as the server drives it: sources, ticks (heads, scheduled and on-demand snapshots), grooming,
restarts, gaps healed by a resync, restores on both sides of the bound, and the facts alerts read."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsmgr.backup import daemon as daemon_module
from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.backup.errors import OutsideWindow, SnapshotBlocksMissing
from opsmgr.backup.policy import HOUR_MS
from opsmgr.backup.positions import PositionKind, to_oplog
from opsmgr.backup.slices import SliceStatus, encode_slice
from opsmgr.backup.snapshots import SnapshotType
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store import Store
from tests.backup.backuptest import FakeClock, StoreAgent, store_documents


def at(position: int) -> dict[str, int]:
    ts, inc = to_oplog(PositionKind.STORE, position)
    return {"oplogTs": ts, "oplogInc": inc}


def restored(daemon: BackupDaemon, source: Source, target: dict[str, Any]) -> dict[tuple[str, str], Any]:
    plan = daemon.restore_plan(source.id, target)
    return {(ns, doc["_id"]): doc for ns, doc in daemon.restore_documents(plan)}


def test_sources_register_once_and_validate(daemon: BackupDaemon) -> None:
    a = daemon.register_source("g1", "c1", "appdb", "BACKING_DATABASE")
    assert daemon.register_source("g1", "c1", "appdb", SourceKind.BACKING_DATABASE).id == a.id
    b = daemon.register_source("g1", "c1", "snapshotdb", SourceKind.BACKING_DATABASE)
    daemon.register_source("g2", "c9", "rs0", SourceKind.REPLICA_SET)
    assert {s.id for s in daemon.sources("g1", "c1")} == {a.id, b.id}
    assert len(daemon.sources()) == 3
    with pytest.raises(InvalidInput):
        daemon.register_source("g1", "c1", "x", "SHARDED")
    with pytest.raises(InvalidInput):
        daemon.register_source("g1", "", "x", SourceKind.REPLICA_SET)
    with pytest.raises(NotFound):
        daemon.source("nope")
    assert daemon.set_schedule(a.id, {"snapshotIntervalHours": 12}).snapshotIntervalHours == 12
    assert daemon.source(a.id).schedule.snapshotIntervalHours == 12


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


def test_no_snapshot_until_the_head_is_consistent(daemon: BackupDaemon, source: Source) -> None:
    sync_id = daemon.start_sync(source.id, 100)
    daemon.sync_documents(source.id, sync_id, [("things", {"_id": "a"})])
    with pytest.raises(Conflict):
        daemon.take_snapshot(source.id)
    # The documents were read while the source moved on to 120: consistent once slices reach 120.
    daemon.finish_sync(source.id, sync_id, 120)
    with pytest.raises(Conflict, match="consistent"):
        daemon.take_snapshot(source.id)
    entry = {"ts": 110, "op": "u", "ns": "things", "_id": "a", "doc": {"_id": "a", "n": 1}}
    daemon.ingest_slice(source.id, 100, 120, [entry])
    snap = daemon.take_snapshot(source.id)
    assert snap.position == 120 and snap.records == 1
    assert daemon.finish_sync(source.id, sync_id, 120).acknowledged == 120  # again: harmless
    with pytest.raises(Conflict):
        daemon.sync_documents(source.id, sync_id, [])
    with pytest.raises(NotFound):
        daemon.sync_documents(source.id, "0123abc", [])


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


def test_a_restarted_daemon_applies_what_was_acknowledged(
    make_daemon: Callable[..., BackupDaemon], source: Source, agent: StoreAgent, source_store: Store
) -> None:
    agent.sync()
    source_store.insert("things", {"_id": "acked-before-restart"})
    agent.ship()
    restarted = make_daemon()
    assert restarted.acknowledged(source.id).acknowledged == agent.acked
    snap = restarted.take_snapshot(source.id)
    assert snap.records == 1 and snap.position == agent.acked


def test_slices_in_the_wire_format(daemon: BackupDaemon, source: Source) -> None:
    daemon.initial_sync(source.id, 10, [], 10)
    entry = {"ts": 15, "op": "i", "ns": "things", "_id": "a", "doc": {"_id": "a"}}
    result = daemon.ingest_slice_bytes(source.id, encode_slice(10, 20, [entry]))
    assert (result.status, result.acknowledged) == (SliceStatus.ACCEPTED, 20)


def test_grooming_frees_only_blocks_no_retained_snapshot_or_needed_slice_uses(
    make_daemon: Callable[..., BackupDaemon], source: Source, source_store: Store, clock: FakeClock
) -> None:
    daemon = make_daemon(block_target=2048)
    daemon.set_schedule(
        source.id,
        {
            "snapshotRetentionDays": 1,
            "dailySnapshotRetentionDays": 3,
            "weeklySnapshotRetentionWeeks": 0,
            "monthlySnapshotRetentionMonths": 0,
            "pointInTimeWindowHours": 12,
        },
    )
    rnd = random.Random(7)
    with source_store.tx() as t:
        for i in range(400):
            t.put("things", {"_id": f"d{i:04d}", "body": "x" * 200, "v": 0})
    agent = StoreAgent(daemon, source.id, source_store, page=500)
    agent.sync()
    states: dict[str, dict[tuple[str, str], Any]] = {}
    for _ in range(6 * 4):  # six days of six-hourly ticks
        with source_store.tx() as t:
            for i in rnd.sample(range(400), 8):
                t.update("things", f"d{i:04d}", {"v": rnd.randint(1, 10**6)})
        agent.ship()
        for snapshot_id in daemon.tick().snapshots:
            states[snapshot_id] = store_documents(source_store)
        clock.advance(6 * 3600)
    before = set(daemon.blockstore)
    report = daemon.groom()
    kept = {m.id for m in daemon.snapshots(source.id)}
    assert report.snapshots_deleted and kept and not kept & set(report.snapshots_deleted)
    assert 4 <= len(kept) <= 8  # the last day's four, the first of each of the last three days, the base
    assert report.blocks_freed > 0
    referenced = daemon.snapshot_catalog.referenced_blocks() | daemon.slice_catalog.referenced_blocks()
    assert set(daemon.blockstore) == referenced
    assert before - set(daemon.blockstore)
    for snapshot_id in kept:
        assert restored(daemon, source, {"snapshotId": snapshot_id}) == states[snapshot_id]
    # The whole window is still restorable after grooming, up to the last write.
    window = daemon.pitr_window(source.id)
    assert window[-1].end == agent.acked
    now_ms = int(clock.now() * 1000)
    base = [m for m in daemon.snapshots(source.id) if m.createdAt <= now_ms - 12 * HOUR_MS]
    assert base and any(r.start <= max(b.position for b in base) for r in window)
    assert restored(daemon, source, at(window[-1].end)) == store_documents(source_store)


def test_status_reports_snapshot_failures_until_the_next_success(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    status = daemon.status(source.id)
    assert status["lastSnapshot"] is None and status["snapshotDue"] is True
    assert status["head"]["consistent"] is True and status["head"]["applyLagMs"] == 0

    def disk_full(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(daemon_module, "write_snapshot", disk_full)
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


def test_terminating_a_backup_deletes_its_data_and_grooming_frees_its_blocks(
    daemon: BackupDaemon, source: Source, agent: StoreAgent
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    daemon.take_snapshot(source.id)
    agent.store.insert("things", {"_id": "b"})
    agent.ship()
    assert list(daemon.blockstore)
    daemon.remove_source(source.id)
    with pytest.raises(NotFound):
        daemon.source(source.id)
    assert daemon.snapshots(source.id) == [] and daemon.slice_catalog.slices(source.id) == []
    assert daemon.heads.current(source.id) is None
    daemon.groom()
    assert list(daemon.blockstore) == []


def test_the_integrity_job_runs_daily_from_the_tick(daemon: BackupDaemon, clock: FakeClock) -> None:
    assert daemon.tick().integrity_problems == 0
    clock.advance(3600)
    assert daemon.tick().integrity_problems is None
    clock.advance(24 * 3600)
    assert daemon.tick().integrity_problems == 0


def test_a_lost_head_asks_the_agent_for_a_new_initial_sync(
    daemon: BackupDaemon, source: Source, agent: StoreAgent
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    daemon.tick()
    daemon.heads.remove(source.id)  # the blockstore disk lost the head file
    daemon.tick()
    assert daemon.acknowledged(source.id).status is SliceStatus.SYNC_REQUIRED
    assert "head copy" in (daemon.status(source.id)["syncRequired"] or "")
    agent.sync()
    assert daemon.acknowledged(source.id).status is SliceStatus.ACCEPTED
    assert daemon.take_snapshot(source.id).records == 1

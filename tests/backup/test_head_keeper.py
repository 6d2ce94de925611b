"""backup.head_keeper and backup.syncs: ingestion at any server only records; the backup job's owner keeps
the heads, rebuilt from the shared catalog (the chain's latest snapshot, else its finished initial sync,
then the slices after it) when missing, of another chain or behind what grooming kept.

Two daemons stand for two servers: the same three stores and blocks, each its own folder of heads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmgr.backup.daemon import BackupDaemon, SourceKind
from opsmgr.backup.daemon_jobs import daemon_jobs
from opsmgr.backup.head import HeadState
from opsmgr.backup.head_keeper import Verdict, base, verdict
from opsmgr.backup.positions import PositionKind
from opsmgr.backup.slices import Chain, SliceStatus
from opsmgr.backup.snapshots import SnapshotMeta, SnapshotType
from opsmgr.backup.syncs import ABANDONED_MS, SyncRecord, dropped
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store import Store
from tests.backup.backuptest import FakeClock, StoreAgent, Stores, store_documents


def _chain(chain: str | None, tip: int | None) -> Chain:
    return Chain("s", chain, 0, tip, None, None, None, None)


def test_verdict_keeps_only_a_whole_head_of_the_chain_that_its_stored_slices_can_catch_up() -> None:
    head = HeadState("c1", 10, 10, loaded=True)
    assert verdict(head, _chain("c1", 20), next_slice_stored=True) is Verdict.KEEP
    assert verdict(head, _chain("c1", 10), next_slice_stored=False) is Verdict.KEEP  # at the tip
    assert verdict(None, _chain("c1", 20), True) is Verdict.REBUILD
    assert verdict(HeadState("c1", 10, 10, loaded=False), _chain("c1", 20), True) is Verdict.REBUILD
    assert verdict(head, _chain("c2", 20), True) is Verdict.REBUILD  # a newer initial sync's chain
    assert verdict(head, _chain("c1", 5), True) is Verdict.REBUILD  # the catalog went back
    assert verdict(head, _chain("c1", 20), next_slice_stored=False) is Verdict.REBUILD  # groomed away


def _meta(snapshot_id: str, chain: str, position: int) -> SnapshotMeta:
    return SnapshotMeta(
        snapshot_id, "s", "g", "c", "n", PositionKind.STORE, chain, position, position, SnapshotType.SCHEDULED
    )


def _sync(sync_id: str, loaded: bool, created: int = 0) -> SyncRecord:
    return SyncRecord(sync_id, "s", 5, 7, loaded, ("b",), created)


def test_base_is_the_chains_latest_snapshot_else_its_finished_sync() -> None:
    snaps = [_meta("old", "c1", 10), _meta("new", "c1", 30), _meta("other", "c0", 99)]
    assert base("c1", snaps, [_sync("c1", True)]) == ("snapshot:new", 30, 30)
    assert base("c2", snaps, [_sync("c2", True)]) == ("sync:c2", 5, 7)
    assert base("c2", snaps, [_sync("c2", False)]) is None  # not finished: no chain of it yet
    assert base("c3", snaps, []) is None


def test_grooming_drops_syncs_snapshotted_superseded_or_abandoned() -> None:
    syncs = [_sync("snap", True), _sync("old", True), _sync("cur", True), _sync("young", True, 950)]
    syncs += [_sync("going", False, 0), _sync("gone", False, -ABANDONED_MS)]
    assert dropped(syncs, "cur", {"snap"}, now_ms=1_000, grace_ms=100) == ["snap", "old", "gone"]


@pytest.fixture
def servers(stores: Stores, clock: FakeClock, tmp_path: Path) -> Iterator[tuple[BackupDaemon, BackupDaemon]]:
    """Two daemons over the same stores and blocks (``b``'s blocks folder is ``a``'s), heads apart."""
    (tmp_path / "a" / "blocks").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "blocks").symlink_to(tmp_path / "a" / "blocks")
    a = BackupDaemon(stores, tmp_path / "a", clock, groom_grace_s=0.0)
    b = BackupDaemon(stores, tmp_path / "b", clock, groom_grace_s=0.0)
    yield a, b
    a.close()
    b.close()


def test_an_initial_sync_split_over_two_servers_builds_one_head_at_the_jobs_owner(
    servers: tuple[BackupDaemon, BackupDaemon], source_store: Store
) -> None:
    a, b = servers
    src = a.register_source("g1", "c1", "appdb", SourceKind.BACKING_DATABASE)
    for i in range(4):
        source_store.insert("things", {"_id": f"d{i}"})
    docs = [(c, d) for c in source_store.collections() for d in source_store.find(c)]
    position = source_store.oplog_bounds().last_ts or 0
    sync_id = a.start_sync(src.id, position)
    assert b.sync_documents(src.id, sync_id, docs[:2]) == 2  # the batches reach either server
    assert a.sync_documents(src.id, sync_id, docs[2:]) == 2
    assert b.sync_documents(src.id, sync_id, docs[:1]) == 1  # a batch sent again after a lost answer
    done = a.finish_sync(src.id, sync_id, position)
    assert (done.status, done.acknowledged) == (SliceStatus.ACCEPTED, position)
    assert b.finish_sync(src.id, sync_id, position).acknowledged == position  # again: harmless
    with pytest.raises(Conflict):
        b.sync_documents(src.id, sync_id, docs)
    with pytest.raises(NotFound):
        a.sync_documents(src.id, "0123abc", docs)
    with pytest.raises(InvalidInput):
        a.sync_documents(src.id, a.start_sync(src.id, position), [("things", {"no": "id"})])
    assert a.heads.current(src.id) is None and b.heads.current(src.id) is None  # ingestion only records

    taken = b.tick().snapshots  # b owns the job: builds the head from the sync, snapshots the new chain
    assert len(taken) == 1 and b.snapshot(src.id, taken[0]).records == 4
    assert a.heads.current(src.id) is None
    # Either server reads the owner's head, as the owner published it.
    assert a.status(src.id)["head"] == b.status(src.id)["head"]
    assert a.status(src.id)["head"]["consistent"] is True and a.status(src.id)["head"]["applyLagMs"] == 0
    # So does the daemon's jobs view (``opsmgr backup daemon``, the exporter) on the server without the head.
    (seen_by_a,) = daemon_jobs(a, [a.source(src.id)])
    assert seen_by_a.head_consistent and seen_by_a.slices_pending == 0
    a.remove_source(src.id)
    assert b.head_state(src.id) is None


def test_the_job_moving_between_servers_rebuilds_or_catches_up_the_head_applying_each_slice_once(
    servers: tuple[BackupDaemon, BackupDaemon], source_store: Store, clock: FakeClock
) -> None:
    a, b = servers
    src = a.register_source("g1", "c1", "appdb", SourceKind.BACKING_DATABASE)
    via_a, via_b = StoreAgent(a, src.id, source_store, page=2), StoreAgent(b, src.id, source_store, page=2)
    source_store.insert("things", {"_id": "x", "n": 0})
    via_a.sync()
    first = a.tick().snapshots  # a owns the job
    for n in range(1, 6):  # agents' uploads reach both servers in turn
        source_store.update("things", "x", {"n": n})
        source_store.insert("things", {"_id": f"y{n}"})
        agent, other = (via_a, via_b) if n % 2 else (via_b, via_a)
        agent.acked = a.acknowledged(src.id).acknowledged
        agent.ship()
        other.acked = agent.acked
    # b takes the job over with no head of its own: rebuilt from a's snapshot, then the slices after it.
    applied = b.apply_pending(src.id)
    assert applied == 10  # every entry after the snapshot, once (an update and an insert per round)
    mid = b.take_snapshot(src.id, on_demand=True)
    assert mid.position == a.acknowledged(src.id).acknowledged and mid.records == 6
    want = store_documents(source_store)
    got = {(ns, d["_id"]): d for ns, d in b.restore_documents(b.restore_plan(src.id, {"snapshotId": mid.id}))}
    assert got == want

    source_store.delete("things", "y1")
    via_b.acked = b.acknowledged(src.id).acknowledged
    via_b.ship()
    # a gets the job back: its head is behind (taken at its first snapshot), caught up by the slices only.
    state = a.heads.current(src.id)
    assert state is not None and (behind := state.state()) is not None
    assert behind.applied == a.snapshot(src.id, first[0]).position
    assert a.apply_pending(src.id) == 11
    clock.advance(60)
    last = a.take_snapshot(src.id, on_demand=True)
    assert last.records == 5 and last.position == b.acknowledged(src.id).acknowledged
    assert len(a.pitr_window(src.id)) == 1  # no hole

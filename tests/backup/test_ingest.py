"""backup.ingest: initial syncs (a head consistent once the slices reach its minValid), slices in the wire
format, the acknowledged position a restarted daemon keeps, gaps the agent reports, and agent contact."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.ingest import CONTACT_WRITE_S, Ingest
from opsmgr.backup.slices import SliceStatus, encode_slice
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store import Store
from tests.backup.backuptest import FakeClock, StoreAgent


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


def test_slices_in_the_wire_format(daemon: BackupDaemon, source: Source) -> None:
    daemon.initial_sync(source.id, 10, [], 10)
    entry = {"ts": 15, "op": "i", "ns": "things", "_id": "a", "doc": {"_id": "a"}}
    result = daemon.ingest_slice_bytes(source.id, encode_slice(10, 20, [entry]))
    assert (result.status, result.acknowledged) == (SliceStatus.ACCEPTED, 20)


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


@pytest.fixture
def ingest(daemon: BackupDaemon) -> Ingest:
    """The daemon's part alone, over its stores."""
    return Ingest(daemon.registry, daemon.slice_catalog, daemon.blockstore, daemon.clock)


def test_an_initial_sync_refuses_what_it_cannot_take(ingest: Ingest, source: Source) -> None:
    with pytest.raises(InvalidInput):
        ingest.start_sync(source.id, -1)
    with pytest.raises(NotFound):
        ingest.start_sync("nope", 0)
    with pytest.raises(NotFound):
        ingest.sync_documents(source.id, "not-an-id!", [])
    assert ingest.acknowledged(source.id).status is SliceStatus.SYNC_REQUIRED
    sync_id = ingest.start_sync(source.id, 5)
    assert ingest.sync_documents(source.id, sync_id, [("things", {"_id": "a"})]) == 1
    done = ingest.finish_sync(source.id, sync_id, 5)
    assert (done.status, done.acknowledged) == (SliceStatus.ACCEPTED, 5)
    assert ingest.acknowledged(source.id).acknowledged == 5


def test_a_reported_gap_asks_for_a_new_initial_sync(ingest: Ingest, source: Source) -> None:
    ingest.initial_sync(source.id, 10, [], 10)
    ingest.report_gap(source.id, 40, "rolled over")
    ack = ingest.acknowledged(source.id)
    assert ack.status is SliceStatus.SYNC_REQUIRED and ack.detail == "rolled over"
    chain = ingest.slices.chain(source.id)
    assert chain is not None and chain.gap == {
        "afterTs": 10,
        "firstAvailable": 40,
        "detectedAt": 1_700_000_000_000,
    }
    refused = ingest.ingest_slice(source.id, 10, 20, [])
    assert refused.status is SliceStatus.SYNC_REQUIRED


def test_agent_contact_keeps_the_newest_source_entry_it_saw(
    ingest: Ingest, source: Source, clock: FakeClock
) -> None:
    assert ingest.contact(source.id) == (None, None)
    ingest.note_agent(source.id, 42)
    clock.advance(5)
    ingest.note_agent(source.id)  # an upload says nothing of the source: the last word stands
    assert ingest.contact(source.id) == (int(clock.now() * 1000), 42)


def test_agent_contact_heard_by_one_server_is_seen_by_every_other(
    daemon: BackupDaemon, ingest: Ingest, source: Source, clock: FakeClock
) -> None:
    """Servers sharing the stores: the agents' calls reach any of them (a load balancer; a ``daemon``-only
    server gets none), while the backup alerts run on the one holding their job, so the contact one server
    hears is recorded where the others read it (at most one write per source every few seconds)."""
    other = Ingest(daemon.registry, daemon.slice_catalog, daemon.blockstore, daemon.clock)
    assert other.contact(source.id) == (None, None)
    ingest.note_agent(source.id, 42)
    assert other.contact(source.id) == (int(clock.now() * 1000), 42)
    clock.advance(1)
    ingest.note_agent(source.id, 43)  # soon after: this server knows, the shared record waits
    assert ingest.contact(source.id) == (int(clock.now() * 1000), 43)
    assert other.contact(source.id)[1] == 42
    clock.advance(CONTACT_WRITE_S)
    ingest.note_agent(source.id, 44)
    assert other.contact(source.id) == (int(clock.now() * 1000), 44)
    # What a server heard itself counts when it is newer than the shared record.
    clock.advance(1)
    other.note_agent(source.id, 45)
    assert other.contact(source.id) == (int(clock.now() * 1000), 45)

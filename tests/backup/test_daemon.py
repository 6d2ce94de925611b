"""The daemon as the server drives it: a façade over its parts (each tested in its own module), and what spans
them: terminating a source's backup, the tick, and the facts alerts read."""

from __future__ import annotations

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.errors import NotFound
from tests.backup.backuptest import FakeClock, StoreAgent


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


def test_a_tick_snapshots_then_grooms_and_checks_the_blocks_when_each_is_due(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, clock: FakeClock
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    first = daemon.tick()
    assert len(first.snapshots) == 1 and first.groomed and first.integrity_problems == 0
    clock.advance(60)
    second = daemon.tick()
    assert second.snapshots == [] and not second.groomed and second.integrity_problems is None
    clock.advance(600)
    assert daemon.tick().groomed


def test_the_alerts_facts_gather_every_part(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, clock: FakeClock
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    snap = daemon.take_snapshot(source.id)
    daemon.note_agent(source.id, snap.position)
    clock.advance(2)
    status = daemon.status(source.id)
    assert status["lastSnapshot"]["id"] == snap.id and status["lastSnapshotAgeMs"] == 2000
    assert status["lastAgentContact"] == daemon.now_ms() - 2000
    assert status["sourceLastUTCMillis"] == status["tipUTCMillis"] == status["windowEndUTCMillis"]
    assert status["head"]["consistent"] and status["syncRequired"] is None
    assert (status["integrityProblems"], status["sourceIntegrityProblems"]) == (0, 0)

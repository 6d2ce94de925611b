"""backup.sources: the sources' documents (registered once, validated, found, deleted, their schedules)
and the lock each source has."""

from __future__ import annotations

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.backup.positions import PositionKind
from opsmgr.backup.sources import SOURCES, SourceLocks, Sources
from opsmgr.errors import InvalidInput, NotFound
from tests.backup.backuptest import FakeClock, Stores


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


def test_sources_are_documents_of_the_application_database(stores: Stores, clock: FakeClock) -> None:
    sources = Sources(stores.app, clock)
    a = sources.register("g1", "c1", "rs0", SourceKind.REPLICA_SET)
    assert a.createdAt == int(clock.now() * 1000) and a.position_kind is PositionKind.BSON
    b = sources.register("g1", "c2", "app", SourceKind.BACKING_DATABASE)
    assert b.position_kind is PositionKind.STORE
    assert [s.id for s in sources.find("g1", "c2")] == [b.id] and len(sources.find("g1")) == 2
    assert Source.from_doc(stores.app.get(SOURCES, a.id) or {}) == a
    sources.delete(a.id)
    with pytest.raises(NotFound):
        sources.get(a.id)
    with pytest.raises(NotFound):
        sources.set_schedule(a.id, {"snapshotIntervalHours": 12})
    with pytest.raises(InvalidInput):
        sources.register("g1", "c1", "x" * 65, SourceKind.REPLICA_SET)


def test_each_source_has_one_lock() -> None:
    locks = SourceLocks()
    assert locks("a") is locks("a") and locks("a") is not locks("b")
    with locks("a"), locks("a"):  # re-entrant: a snapshot applies pending slices under the same lock
        pass

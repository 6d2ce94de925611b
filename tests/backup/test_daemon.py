"""The daemon as the server drives it: a façade over its parts (each tested in its own module), and what spans
them: terminating a source's backup, the tick, and the facts alerts read."""

from __future__ import annotations

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.errors import NotFound
from tests.backup.backuptest import StoreAgent


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

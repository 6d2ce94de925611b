"""The primary's application database backed up the way a secondary backs up a backing database, and rolled
back with the restore path the secondary uses: an initial sync of the database's documents, its oplog
shipped as abutting slices, a snapshot, and ``BackupDaemon.restore_into_store`` to a point in time (the
newest snapshot at or before it, then the slices replayed up to it).

The daemon here lives in the calling process with stores of its own: the benchmark stages its rollback this
way so that no second server and agent compete with the fleet for the CPU. The end-to-end scenarios stage
it through a real secondary (``Secondary`` in ``tests/e2e/test_restoration_mode.py``).
Reads of the primary's database happen while its server runs (SQLite WAL readers); the restore itself
requires the primary stopped, as the real restore's fence does.
"""

from __future__ import annotations

from pathlib import Path

from opsmgr.backup.daemon import BackupDaemon, SourceKind
from opsmgr.backup.positions import PositionKind, to_oplog
from opsmgr.store import Store
from tests.backup.backuptest import StoreAgent, open_stores

APPDB_FILE = "appdb.sqlite"


class AppDbBackup:
    """Continuous backup of ``data_dir``'s application database into a daemon rooted at ``root``."""

    def __init__(self, data_dir: Path, root: Path) -> None:
        self.appdb = Store(f"sqlite:///{data_dir / APPDB_FILE}", name="primary application database")
        self.stores = open_stores(root / "stores")
        self.daemon = BackupDaemon(self.stores, root / "blockstore")
        self.source = self.daemon.register_source("secondary", "appdb", "appdb", SourceKind.BACKING_DATABASE)
        self.agent = StoreAgent(self.daemon, self.source.id, self.appdb, page=500)
        self.agent.sync()
        # Writes during the sync make the copy consistent only once the slices up to its end are applied.
        self.agent.ship()
        self.daemon.apply_pending(self.source.id)
        self.daemon.take_snapshot(self.source.id)

    def mark(self) -> int:
        """Ships the oplog so far; the position reached is a point in time to restore to later."""
        self.agent.ship()
        assert self.agent.acked is not None
        return self.agent.acked

    def restore_to(self, position: int) -> dict[str, int]:
        """Rolls the (stopped) primary's application database back to ``position``."""
        self.agent.ship()
        ts, inc = to_oplog(PositionKind.STORE, position)
        plan = self.daemon.restore_plan(self.source.id, {"oplogTs": ts, "oplogInc": inc})
        return self.daemon.restore_into_store(plan, self.appdb)

    def close(self) -> None:
        self.daemon.close()
        self.stores.close()
        self.appdb.close()

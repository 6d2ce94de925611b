"""Child process of the snapshot SIGKILL test: takes a snapshot of a source whose head is already synced and
stops dead after every block is written and before the metadata commit, announcing it on stdout; the test
then SIGKILLs it.

    python snapshot_killer.py SERVER_DIR BLOCKSTORE_DIR SOURCE_ID
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.snapshots import SnapshotCatalog
from tests.backup.backuptest import FakeClock, open_stores


def main() -> None:
    server, blockstore, source_id = sys.argv[1:4]
    stores = open_stores(Path(server))
    daemon = BackupDaemon(stores, blockstore, FakeClock(), block_target=256)

    def stop_before_commit(self: SnapshotCatalog, meta: object, blocks: list[str]) -> None:
        print(f"blocks-written {len(blocks)}", flush=True)
        sys.stdin.read()  # blocks until the parent kills us

    SnapshotCatalog.commit = stop_before_commit  # type: ignore[method-assign]
    daemon.take_snapshot(source_id)


if __name__ == "__main__":
    main()

"""The PostgreSQL blockstore (``mms.blockstore.uri``) against the folder blockstore, in the same run (issue
18): a first snapshot of N generated documents of about S bytes (every block compressed, hashed and written
once) and the restore's block pipeline over it (``snapshots.read_blocks``: blocks read, decompressed and
verified on every core, what a download streams; best of 3), timed on both.

The PostgreSQL server is started here (Debian's packages, as the tests start it) on a loopback port, with its
data in a temporary folder, and stopped at the end. Prints figures; asserts nothing.

    python benchmarks/blockstore_pg.py                          # 100 MB
    python benchmarks/blockstore_pg.py --docs 1000000           # 1 GB
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backup_common import bench_daemon, mb, synced_source

from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.snapshots import read_blocks
from tests.pgserver import PgServer


def _snapshot_and_restore(daemon: BackupDaemon, n: int, size: int) -> tuple[float, float, int]:
    src, _ = synced_source(daemon, n, size)
    started = time.perf_counter()
    snap = daemon.take_snapshot(src.id)
    snapshot_s = time.perf_counter() - started
    plan = daemon.restore_plan(src.id, {"snapshotId": snap.id})
    restore_s = []
    for _ in range(3):
        started = time.perf_counter()
        delivered = sum(len(data) for data in read_blocks(daemon.blockstore, plan.blocks))
        restore_s.append(time.perf_counter() - started)
        assert delivered == snap.sizeBytes, (delivered, snap.sizeBytes)
    return snapshot_s, min(restore_s), snap.sizeBytes


def main() -> None:
    how = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=how)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--doc-bytes", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PgServer() as pg:
        figures = {}
        for name, uri in (("folder", None), ("PostgreSQL", pg.create_database())):
            with bench_daemon(Path(tmp) / name, blocks_uri=uri) as daemon:
                figures[name] = _snapshot_and_restore(daemon, args.docs, args.doc_bytes)
        size = figures["folder"][2]
        print(f"{args.docs:,} documents, a {mb(size)} snapshot (first snapshot; restore blocks best of 3):")
        for name, (snap_s, restore_s, _) in figures.items():
            rates = f"snapshot {size / 1e6 / snap_s:7,.0f} MB/s   restore {size / 1e6 / restore_s:7,.0f} MB/s"
            print(f"  {name:<11} {rates}")
        (fs, fr, _), (ps, pr, _) = figures["folder"], figures["PostgreSQL"]
        print(f"  PostgreSQL / folder time: snapshot {ps / fs:.2f}x, restore {pr / fr:.2f}x")


if __name__ == "__main__":
    main()

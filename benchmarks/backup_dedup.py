"""Snapshot deduplication: the share of new blocks a snapshot stores for an unchanged dataset and for one
with 1% of its documents changed since the previous snapshot.

For each block size: a dataset of N generated documents of about S bytes is initial-synced into a source and
snapshotted; then snapshotted again unchanged; then 1% of the documents are rewritten and shipped as oplog
slices before the next snapshot, in two patterns: **clustered** (the 1% most recently inserted documents, the
way applications mostly update recent data) and **scattered** (documents picked at random). Prints figures;
asserts nothing. Target: an unchanged dataset's new snapshot stores under 1% new blocks.

    python benchmarks/backup_dedup.py                                  # 20,000 x 1 kB (about 20 MB): seconds
    python benchmarks/backup_dedup.py --docs 1000000 --doc-bytes 1000  # about 1 GB: tens of minutes

Scattered changes are the worst case of any block-level deduplication: with ~1,000 documents per 1 MiB
block, 1% of documents changed at random touches nearly every block. Smaller blocks (``--block-kib 64``)
trade more blocks (files, metadata) for better deduplication of such changes.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backup_common import START, bench_daemon, mb, ship_updates, synced_source


def run(n: int, size: int, block_kib: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, bench_daemon(Path(tmp), block_kib) as daemon:
        src, load_s = synced_source(daemon, n, size)
        started = time.perf_counter()
        base = daemon.take_snapshot(src.id)
        snap_s = time.perf_counter() - started
        print(
            f"\nblocks of {block_kib} KiB: {n:,} documents, {mb(base.sizeBytes)} in {base.blockCount:,} "
            f"blocks ({mb(base.storedBytes)} stored); loaded in {load_s:.1f}s, "
            f"first snapshot in {snap_s:.1f}s ({base.sizeBytes / 1e6 / snap_s:,.0f} MB/s)",
            flush=True,
        )
        rows = [("first snapshot", base)]
        rows.append(("unchanged", daemon.take_snapshot(src.id)))
        changed = max(n // 100, 1)
        position = ship_updates(daemon, src, list(range(n - changed, n)), size, START)
        rows.append(("1% changed, clustered", daemon.take_snapshot(src.id)))
        ship_updates(daemon, src, random.Random(3).sample(range(n), changed), size, position)
        rows.append(("1% changed, scattered", daemon.take_snapshot(src.id)))
        for label, snap in rows:
            print(
                f"  {label:<24} {snap.blockCount:8,} blocks  {snap.newBlocks:8,} new  "
                f"{snap.newBlocks / snap.blockCount:8.2%} new blocks  {mb(snap.storedBytes):>10} written",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--doc-bytes", type=int, default=1000)
    ap.add_argument("--block-kib", type=int, action="append", help="block target size (repeatable)")
    args = ap.parse_args()
    for block_kib in args.block_kib or [1024, 64]:
        run(args.docs, args.doc_bytes, block_kib)


if __name__ == "__main__":
    main()

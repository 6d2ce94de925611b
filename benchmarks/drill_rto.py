"""Restore drill RTO and RPO for application databases of several sizes.

For each size: a primary ``opsmgr server`` with a secondary backing up its three stores through the real
backing agent (``tests.secondary_support.primary_with_secondary``, as the drill's e2e test sets them up); the
primary's application database is filled with generated documents of about 1 KB written through the store
API (a collection of its own, in transactions of 1,000, 64 MB at a time with the secondary caught up between
chunks so that the oplog cap never cuts what the agent has not shipped); an on-demand snapshot of the
backing databases is taken (as a scheduled one would be) and the secondary caught up again; then ``opsmgr
drill run --json`` restores the stores to the latest point into a sandbox, starts a sandbox server on them
and proves it reconciles. Prints, per size: the fill and catch-up times, RPO (restore point to the drill's
start) and RTO (drill start to sandbox reconciled) as the drill reports them, the restored stores' sizes and
each step's time. Asserts only that the drill passed.

    .venv/bin/python benchmarks/drill_rto.py                       # 10 MB: about a minute
    .venv/bin/python benchmarks/drill_rto.py --sizes 10,100,1000   # the issue's sizes: about 25 minutes

The app DB files are about 2.7x the documents' bytes (each write is a document and its oplog entry).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import print_header, table, workdir
from backup_common import document

from opsmgr.store import Store
from tests.procs import run_cli
from tests.secondary_support import SecondaryPair, primary_with_secondary

COLLECTION = "drill_bench_documents"
DOC_BYTES = 1000
PER_TX = 1000
CHUNK_MB = 64


def fill(pair: SecondaryPair, size_mb: int) -> tuple[float, float]:
    """Writes ``size_mb`` MB of documents into the primary's app DB; returns (write s, catch-up wait s)."""
    docs = size_mb * 1_000_000 // DOC_BYTES
    rnd = random.Random(size_mb)
    write_s = wait_s = 0.0
    store = Store(f"sqlite:///{pair.primary.data_dir / 'appdb.sqlite'}")
    try:
        per_chunk = CHUNK_MB * 1_000_000 // DOC_BYTES
        for start in range(0, docs, per_chunk):
            began = time.perf_counter()
            for first in range(start, min(start + per_chunk, docs), PER_TX):
                batch = [document(i, DOC_BYTES, rnd) for i in range(first, min(first + PER_TX, docs))]
                with store.tx() as t:
                    for doc in batch:
                        t.insert(COLLECTION, doc)
            write_s += time.perf_counter() - began
            wait_s += caught_up(pair, size_mb)
    finally:
        store.close()
    return write_s, wait_s


def caught_up(pair: SecondaryPair, size_mb: int) -> float:
    began = time.perf_counter()
    pair.wait_caught_up(timeout=120 + size_mb)
    return time.perf_counter() - began


def snapshot(pair: SecondaryPair, size_mb: int) -> float:
    """An on-demand snapshot of the three stores after the fill; returns the seconds until it is there."""
    began = time.perf_counter()
    count = min(len(s["snapshots"]) for s in pair.backing()["stores"])
    with pair.secondary_api() as api:
        r = api.post(f"/groups/{pair.group_id}/clusters/{pair.cluster_id}/snapshots/onDemandSnapshot")
        assert r.status_code in (200, 201, 202), r.text
    pair.wait_snapshots(count + 1, timeout=120 + size_mb)
    pair.wait_caught_up(timeout=120 + size_mb)
    return time.perf_counter() - began


def drill(pair: SecondaryPair, sandbox: Path, size_mb: int) -> dict[str, Any]:
    key, primary = pair.secondary_key, pair.primary_key
    done = run_cli(
        "drill",
        "run",
        *("--url", pair.secondary.url, "--public-key", key["publicKey"], "--private-key", key["privateKey"]),
        *("--group", pair.group_id, "--cluster", pair.cluster_id),
        *("--gen-key", str(pair.primary.data_dir / "gen.key"), "--sandbox-dir", str(sandbox)),
        *("--primary-url", pair.primary.url, "--primary-public-key", primary["publicKey"]),
        *("--primary-private-key", primary["privateKey"], "--timeout", str(120 + size_mb), "--json"),
        timeout=600 + 3 * size_mb,
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"drill printed nothing (exit {done.returncode}): {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def app_db_bytes(pair: SecondaryPair) -> int:
    return sum(p.stat().st_size for p in pair.primary.data_dir.glob("appdb.sqlite*") if p.is_file())


def one_size(root: Path, size_mb: int) -> dict[str, Any]:
    folder = root / f"{size_mb}mb"
    folder.mkdir()
    with primary_with_secondary(folder) as pair:
        pair.wait_snapshots()
        write_s, wait_s = fill(pair, size_mb)
        snap_s = snapshot(pair, size_mb)
        report = drill(pair, folder / "sandbox", size_mb)
        return {
            "size_mb": size_mb,
            "app_db": app_db_bytes(pair),
            "write_s": write_s,
            "wait_s": wait_s,
            "snapshot_s": snap_s,
            "report": report,
        }


def show(result: dict[str, Any]) -> None:
    report = result["report"]
    rpo = report.get("rpoSeconds")
    sizes = ", ".join(f"{n} {b / 1e6:,.2f} MB" for n, b in report.get("storeBytes", {}).items())
    print(
        f"{result['size_mb']:,} MB of documents "
        f"(the primary's app DB files: {result['app_db'] / 1e6:,.1f} MB): "
        f"written in {result['write_s']:.1f} s, secondary caught up after {result['wait_s']:.1f} s more, "
        f"on-demand snapshot {result['snapshot_s']:.1f} s",
        flush=True,
    )
    print(
        f"  drill {'PASSED' if report['passed'] else 'FAILED'}: RTO {report['rtoSeconds']:.1f} s, "
        f"RPO {'-' if rpo is None else f'{rpo:.1f} s'}; restored stores: {sizes}",
        flush=True,
    )
    rows = [(s["name"], f"{s['seconds']:.1f}", "ok" if s["passed"] else "FAILED") for s in report["steps"]]
    print(table(["step", "seconds", ""], rows), flush=True)
    if not report["passed"]:
        print(f"  failed step: {report['steps'][-1]['detail']}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10", help="application database sizes in MB, comma-separated")
    ap.add_argument("--keep", type=Path, default=None, help="keep the data dirs and logs under this folder")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print_header("restore drill RTO and RPO by application database size")
    failed = []
    with workdir(args.keep, "drill-rto-") as root:
        for size_mb in sizes:
            result = one_size(root, size_mb)
            show(result)
            if not result["report"]["passed"]:
                failed.append(size_mb)
    if failed:
        raise SystemExit(f"the drill failed at {failed} MB")


if __name__ == "__main__":
    main()

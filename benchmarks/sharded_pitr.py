"""Point-in-time restore of a sharded cluster to a random instant: does every shard hold exactly the documents
written before it?

The cluster is ``tests.maintenance.sharded_fleet``'s (a config server set and ``--shards`` shards of three
members on three simulated hosts, two mongos, ``app.users`` sharded on ``uid``), on a fake clock. The
balancer first spreads the chunks over the shards, then is stopped, so that each document stays on the shard
its chunk maps it to. Its backup runs in process: the daemon of ``opsmgr.backup`` with one source per part
(``backup.sharded``), each shipped as the agent does (an initial sync of the part's primary, then its oplog
in slices after what the daemon acknowledged), each part snapshotted at its own random moments. Meanwhile
documents are written through a mongos at known (simulated) instants, several per second.

Then a random instant T (the end of one second of the run) is restored: one plan per part, every part to the
same point (``ShardedBackups.plans``), and each shard's restored ``app.users`` is compared with the documents
written up to T that the shard holds now (no document moves or is deleted once the balancer stops). Printed:
documents written, T, each part's restored documents and time, mismatches (the target: 0), the cluster's
window. ``--restores`` restores that many random instants.

    python benchmarks/sharded_pitr.py
    python benchmarks/sharded_pitr.py --shards 3 --seconds 120 --rate 20 --restores 10
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opsmgr.backup.clusters import Clusters
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.positions import PositionKind, from_millis
from opsmgr.backup.sharded import specs_of
from opsmgr.backup.sharded_backups import ShardedBackups
from opsmgr.drivers.base import MemberState
from tests.backup.backuptest import open_stores
from tests.maintenance.sharded_fleet import HOSTS, ShardedFleet

GROUP = "a" * 24


class PartShipper:
    """One part's backup as the agent ships it: an initial sync of its primary, then slices of its oplog."""

    def __init__(self, fleet: ShardedFleet, daemon: BackupDaemon, rs: str, source_id: str) -> None:
        self.fleet = fleet
        self.daemon = daemon
        self.rs = rs
        self.source_id = source_id
        self.acked: int | None = None

    def _primary(self) -> tuple[str, str]:
        view = next(v for v in self.fleet.world.replica_sets() if v.name == self.rs)
        member = next(m for m in view.members if m.state is MemberState.PRIMARY and m.process)
        host, _, name = str(member.process).partition("/")
        return host, name

    def ship(self) -> int:
        host, name = self._primary()
        driver = self.fleet.drivers[host]
        if self.acked is None:
            window = driver.oplog_window(name)
            position = window.last_ts if window is not None else 0
            docs = driver.dump(name)  # the world stands still between two ticks: the dump is at ``position``
            self.acked = self.daemon.initial_sync(self.source_id, position, docs, position).acknowledged
            return len(docs)
        shipped = 0
        while records := driver.oplog_read(name, self.acked or 0, 1000):
            entries = [
                {"ts": r.ts, "op": r.op, "ns": r.ns, "o": r.o, **({"o2": r.o2} if r.o2 is not None else {})}
                for r in records
            ]
            result = self.daemon.ingest_slice(self.source_id, self.acked or 0, records[-1].ts, entries)
            self.acked = result.acknowledged
            shipped += len(entries)
        return shipped


def run(shards: int, seconds: int, rate: int, restores: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        fleet = ShardedFleet(Path(tmp), shards=shards, routers=2, tick_s=0.5)
        stores = open_stores(Path(tmp) / "backup")
        daemon = BackupDaemon(stores, Path(tmp) / "blockstore", fleet.clock, groom_grace_s=0.0)
        try:
            fleet.deploy()
            fleet.run_until(lambda: False, 60)  # the balancer spreads the initial chunks
            fleet.drivers[HOSTS[0]].set_balancer("mongos0", running=False)
            clusters = Clusters(stores.app, daemon)
            (spec,) = specs_of(GROUP, fleet.goal)
            clusters.ensure_sharded(GROUP, [spec])
            clusters.set_status(GROUP, spec.cluster_id, "STARTED")
            sharded = ShardedBackups(clusters, daemon)
            shippers = [
                PartShipper(fleet, daemon, part.spec.replica_set, part.source.id)
                for part in sharded.parts(GROUP, spec.cluster_id)
            ]
            written = _write_and_ship(fleet, daemon, shippers, seconds, rate, rnd)
            return _restore_instants(fleet, sharded, spec.cluster_id, written, restores, rnd)
        finally:
            daemon.close()
            stores.close()
            fleet.close()


def _write_and_ship(
    fleet: ShardedFleet,
    daemon: BackupDaemon,
    shippers: list[PartShipper],
    seconds: int,
    rate: int,
    rnd: random.Random,
) -> dict[int, float]:
    """Documents written through a mongos, ``rate`` a second at known instants, while every part ships and
    is snapshotted at its own moments; each document's write instant by its ``_id``."""
    for s in shippers:
        s.ship()
        daemon.take_snapshot(s.source_id)
    written: dict[int, float] = {}
    step = 1.0 / rate
    start = fleet.clock.now()
    while fleet.clock.now() < start + seconds:
        k = len(written)
        written[k] = fleet.clock.now()
        fleet.world.mongos_write(
            HOSTS[0], "mongos0", "app.users", "i", {"_id": k, "uid": rnd.randrange(10**6)}
        )
        fleet.clock.advance(step)
        if k % rate == 0:
            for s in shippers:
                s.ship()
                if rnd.random() < 0.1:  # each part's snapshots at moments of its own
                    daemon.take_snapshot(s.source_id)
    fleet.clock.advance(2.0)  # idle primaries' no-ops carry every part's oplog past the last write
    fleet.world.replica_sets()
    for s in shippers:
        s.ship()
    return written


def _restore_instants(
    fleet: ShardedFleet,
    sharded: ShardedBackups,
    cluster_id: str,
    written: dict[int, float],
    restores: int,
    rnd: random.Random,
) -> dict[str, Any]:
    now_on = {
        part.spec.replica_set: _users(fleet, part.spec.replica_set)
        for part in sharded.parts(GROUP, cluster_id)
    }
    window = sharded.window(sharded.parts(GROUP, cluster_id))
    first, last = int(min(written.values())), int(max(written.values()))
    runs = []
    for _ in range(restores):
        second = rnd.randrange(first, last)
        target_ms = second * 1000 + 999  # the end of that second
        before = {k for k, at in written.items() if int(at) <= second}
        started = time.perf_counter()
        restored = {
            part.spec.replica_set: {
                doc["_id"] for ns, doc in sharded.daemon.restore_documents(plan) if ns == "app.users"
            }
            for part, plan in sharded.plans(GROUP, cluster_id, {"pointInTimeUTCMillis": target_ms})
        }
        elapsed = time.perf_counter() - started
        mismatches = sum(len(restored.get(rs, set()) ^ (now_on[rs] & before)) for rs in now_on)
        runs.append(
            {
                "instant": second,
                "position": from_millis(PositionKind.BSON, target_ms),
                "writtenBefore": len(before),
                "restoredPerShard": {rs: len(ids) for rs, ids in restored.items()},
                "mismatches": mismatches,
                "seconds": round(elapsed, 3),
            }
        )
    return {"written": len(written), "windowRanges": len(window), "restores": runs}


def _users(fleet: ShardedFleet, rs: str) -> set[int]:
    view = next(v for v in fleet.world.replica_sets() if v.name == rs)
    member = next(m for m in view.members if m.state is MemberState.PRIMARY and m.process)
    host, _, name = str(member.process).partition("/")
    return {doc["_id"] for ns, doc in fleet.drivers[host].dump(name) if ns == "app.users"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=60, help="simulated seconds of writes")
    parser.add_argument("--rate", type=int, default=10, help="documents written a second")
    parser.add_argument("--restores", type=int, default=5, help="random instants restored")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    started = time.perf_counter()
    out = run(args.shards, args.seconds, args.rate, args.restores, args.seed)
    print(f"documents written through mongos: {out['written']}; cluster window ranges: {out['windowRanges']}")
    for r in out["restores"]:
        print(
            f"T = end of second {r['instant']}: {r['writtenBefore']} written before it, restored per shard "
            f"{r['restoredPerShard']}, mismatches {r['mismatches']} (target 0), restored in {r['seconds']} s"
        )
    total = sum(r["mismatches"] for r in out["restores"])
    print(f"total mismatches: {total}; run took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

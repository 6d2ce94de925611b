"""A MongoDB version change across a sharded cluster in the sim, in simulated seconds: 3 shards of 3 members,
a 3-member config server replica set and 2 mongos, under a write load through the mongos.

Each host is driven by the agent's own maintenance executor through the sim driver, the server's
maintenance service answers in process (``tests.maintenance.sharded_fleet``), and the world runs on a fake
clock, so the figures are the sim's time, not this machine's. Printed: the total time of the cluster's
change, each member's time out, the elections per replica set (target: 1 each, the planned one of its
primary), the time each set had no writable primary (sampled every ``--tick`` seconds, and as the
procedure reported it), the writes through the mongos and how many failed, and the most sets ever out at
once (1, or ``--parallel`` shards).

    python benchmarks/sharded_upgrade.py
    python benchmarks/sharded_upgrade.py --rate 200 --tick 0.25 --parallel 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opsmgr.maintenance.sharded import ShardedPolicy
from opsmgr.maintenance.snapshot import Policy
from opsmgr.sim.model import WriteLoad
from tests.maintenance.sharded_fleet import CLUSTER_KEY, Sample, ShardedFleet


def no_primary_s(samples: list[Sample], rs: str, tick: float) -> float:
    return sum(tick for s in samples if s.primaries.get(rs) is None)


def run(rate: float, tick: float, parallel: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        fleet = ShardedFleet(
            Path(tmp),
            shards=3,
            routers=2,
            tick_s=tick,
            policy=Policy(default_out_s=60.0),
            sharded=ShardedPolicy(parallel_shards=parallel),
            write_load=WriteLoad(rate=rate, namespaces=("app.users",), keys=5000, clients=20),
        )
        try:
            fleet.deploy()
            fleet.run_until(lambda: False, 10)  # the load runs a while before the change
            started, wall = fleet.clock.now(), time.perf_counter()
            records = fleet.play(fleet.config("7.0.6"))
            total_s, wall = fleet.clock.now() - started, time.perf_counter() - wall
            samples = list(fleet.samples)
            sets = fleet.sets
        finally:
            fleet.close()
    per_set = {}
    for rs in sets:
        report = records[rs]["report"]
        per_set[rs] = {
            "memberSecsOut": report["memberSecsOut"],
            "elections": report["elections"],
            "plannedElections": report["plannedElections"],
            "noPrimarySecsReported": report["noPrimarySecs"],
            "noPrimarySecsSampled": no_primary_s(samples, rs, tick),
        }
    return {
        "totalSecs": total_s,
        "wallSecs": wall,
        "cluster": records[CLUSTER_KEY]["report"],
        "sets": per_set,
        "writes": samples[-1].writes - samples[0].writes,
        "writesFailed": samples[-1].writes_failed - samples[0].writes_failed,
        "mostSetsOut": max(len(s.sets_out) for s in samples),
        "mostMembersOutOfASet": max(n for s in samples for n in s.out.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="writes per second through the mongos")
    parser.add_argument("--tick", type=float, default=0.5, help="simulated seconds per agent cycle")
    parser.add_argument("--parallel", type=int, default=1, help="mms.maintenance.sharded.parallelShards")
    args = parser.parse_args()
    r = run(args.rate, args.tick, args.parallel)
    print(
        f"version change of 3 shards x 3 + 3 config servers + 2 mongos, {args.rate:g} writes/s through the "
        f"mongos, parallelShards {args.parallel}, tick {args.tick:g} s"
    )
    print(f"  total {r['totalSecs']:.1f} s simulated ({r['wallSecs']:.1f} s wall)")
    print(
        f"  balancer off {r['cluster']['balancerOffSecs']:.1f} s; mongos restarted "
        f"{', '.join(r['cluster']['mongosRestarted'])}"
    )
    print(
        f"  most sets out at once {r['mostSetsOut']}, most members of one set out {r['mostMembersOutOfASet']}"
    )
    print(f"  writes through the mongos {r['writes']}, failed {r['writesFailed']}")
    header = f"{'set':<6} {'elections':>9} {'planned':>7} {'no primary (reported/sampled)':>30}"
    print(f"  {header}  time out per member")
    for rs, s in r["sets"].items():
        out = ", ".join(f"{m} {t:.1f} s" for m, t in sorted(s["memberSecsOut"].items()))
        no_primary = f"{s['noPrimarySecsReported']:.1f} s / {s['noPrimarySecsSampled']:.1f} s"
        print(f"  {rs:<6} {s['elections']:>9} {s['plannedElections']:>7} {no_primary:>30}  {out}")


if __name__ == "__main__":
    main()

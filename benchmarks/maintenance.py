"""Rolling maintenance of 3-, 5- and 7-member replica sets in the sim, in simulated seconds.

Each host is driven by the agent's own maintenance executor (``opsmgr.agent.maintenance``) through the sim
driver, the server's maintenance service answers in process (``tests.agent.rolling_fleet``), and the world
runs on a fake clock, so the figures are the sim's time, not this machine's: a version change under a
steady write load (clients connected to the primary), until the rolling change is done.

Printed per set size: total maintenance time, each member's time out, the step-down's time without a
writable primary and the client connections it dropped (as the procedure reported them, from the agents'
observations every ``--tick`` seconds), the elections, and the sim's own count of elections, time without a
primary and dropped connections as a cross-check, plus the most members ever out at once and whether the
majority was ever lost. Target (issue 4): one election per change, zero time without a majority.

    python benchmarks/maintenance.py
    python benchmarks/maintenance.py --sizes 3 5 7 --rate 200 --tick 0.25
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opsmgr.maintenance.snapshot import Policy
from opsmgr.sim.model import WriteLoad
from tests.agent.rolling_fleet import RollingFleet


def upgrade(config: dict[str, Any]) -> None:
    for p in config["processes"]:
        p["version"] = "7.0.6"


def run(size: int, rate: float, tick: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        fleet = RollingFleet(
            Path(tmp),
            members=size,
            tick_s=tick,
            policy=Policy(default_out_s=60.0),
            write_load=WriteLoad(rate=rate, clients=20),
        )
        try:
            fleet.deploy()
            fleet.run_until(lambda: False, 10)  # the load runs a while before the change
            before = fleet.view()
            started = time.perf_counter()
            change = fleet.play(upgrade)
            wall = time.perf_counter() - started
            after = fleet.view()
        finally:
            fleet.close()
    report = change["report"]
    step_downs = report["stepDowns"]
    return {
        "size": size,
        "total": report["totalSecs"],
        "out": report["memberSecsOut"],
        "elections": report["elections"],
        "planned": report["plannedElections"],
        "no_writable": [s["noWritablePrimarySecs"] for s in step_downs],
        "dropped": [s["connectionsDropped"] for s in step_downs],
        "sim_elections": after.elections - before.elections,
        "sim_no_primary": after.no_primary_s - before.no_primary_s,
        "sim_dropped": after.connections_dropped - before.connections_dropped,
        "most_out": max(s.out for s in fleet.samples),
        "majority_lost": not all(s.majority for s in fleet.samples),
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument("--rate", type=float, default=200.0, help="writes per second on the primary")
    parser.add_argument("--tick", type=float, default=0.5, help="agent cycle, simulated seconds")
    args = parser.parse_args()
    print(f"version change 7.0.5 -> 7.0.6 under {args.rate:g} writes/s, agents cycling every {args.tick:g} s")
    print("(simulated seconds; sim columns are the simulated world's own counters)\n")
    header = (
        f"{'members':>7} {'total s':>8} {'elections':>9} {'planned':>7} {'no writable s':>13} "
        f"{'dropped':>7} {'sim elect':>9} {'sim no-primary s':>16} {'sim dropped':>11} {'max out':>7} "
        f"{'majority lost':>13} {'wall s':>6}"
    )
    print(header)
    results = [run(size, args.rate, args.tick) for size in args.sizes]
    for r in results:
        print(
            f"{r['size']:>7} {r['total']:>8.1f} {r['elections']:>9} {r['planned']:>7} "
            f"{', '.join(f'{s:.2f}' for s in r['no_writable']):>13} "
            f"{', '.join(str(d) for d in r['dropped']):>7} {r['sim_elections']:>9} "
            f"{r['sim_no_primary']:>16.2f} {r['sim_dropped']:>11} {r['most_out']:>7} "
            f"{r['majority_lost']!s:>13} {r['wall']:>6.1f}"
        )
    print("\neach member's time out (s):")
    for r in results:
        print(f"  {r['size']} members: " + ", ".join(f"{m} {s:.1f}" for m, s in sorted(r["out"].items())))


if __name__ == "__main__":
    main()

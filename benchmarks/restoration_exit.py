"""Time from the primary's start to Restoration Mode's exit with 10, 100 and 1,000 simulated agents, in agent
poll intervals, and the time from the LAST agent's first report to the exit (target, issues 6 and 18: the
exit within 2 poll intervals after the last agent has reported).

Each scale gets a fresh ``opsmgr server`` and a simulated fleet in a process of its own (``_harness``), staged
as the seed's disaster:

1. the agents are 3-member replica sets, one project each (the remainder joins the last set); config v1 is
   PUT and every process reaches goal;
2. the application database is backed up the way a secondary backs up a backing database
   (``tests/restoration/appdb_backup.py``: initial sync, snapshot, oplog slices); T0 is its position now;
3. every project gets config v2 (a member's priority lowered) and every process reaches goal on it;
4. the server stops, its application database is restored to T0 through ``BackupDaemon.restore_into_store``
   (the restore path: the snapshot, then the slices replayed up to T0), and the server starts. The clock
   starts when the server process is launched. Agents holding v2 poll a server at v1: each project enters
   Restoration Mode, collects every agent's version, has the chosen agent upload its config, and exits.

Readings come from each project's ``restoration_mode`` record, as the server wrote it (read from the
application database by this process, so that watching adds no load on the server):

- start -> exit: from the server's launch to the project's ``exitedAt``; "all" is the last project;
- last report -> exit: from the last agent's first report (the latest ``claimedAt`` of the project's agents:
  when each agent's status report first claimed the version it holds) to ``exitedAt``, for every project
  that exited (records written before ``claimedAt`` existed: from ``uploadRequestedAt``, which the last
  claim sets in the same transaction). A failed collection round keeps what it heard, so projects with
  failed rounds count too; the failed rounds are shown beside;
- ask -> exit: from the upload request (``uploadRequestedAt``) to ``exitedAt``: how long the chosen agent
  took to hear the request and upload (a request in the answer to the report that completed collection
  makes it the time of one more round trip to the server);
- load: the machine's 1-minute load average while the exits were awaited (mean and max), since the machine
  is shared.

The agents back off while the server is down (exponential, capped at 30 poll intervals or 60 s), so the
start -> exit time includes how long the last agent's backoff outlasted the downtime; the downtime is shown.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/restoration_exit.py [--agents 10 100 1000] [--poll-interval 5]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    Api,
    Fleet,
    GoalWatch,
    MetricsReading,
    Project,
    create_projects,
    histogram_quantile,
    ms,
    print_header,
    put_config,
    read_metrics,
    replica_set_config,
    running_fleet,
    running_server,
    set_sizes,
    share_above,
    summarise_samples,
    table,
    workdir,
)

from opsmgr.restoration.service import RESTORATION
from tests.procs import ServerProcess
from tests.restoration.appdb_backup import AppDbBackup

SET_SIZE = 3
TARGET_POLLS = 2.0


def configs_v1_v2(project: Project) -> tuple[dict[str, Any], dict[str, Any]]:
    """v1, and v2 with the last member's priority lowered: a reconfig by the primary's agent, no restart (an
    index build is a rolling maintenance now, which takes many poll intervals at 1,000 agents)."""
    v1 = replica_set_config(list(project.hosts), rs=f"rs-{project.name}")
    v2 = copy.deepcopy(v1)
    v2["replicaSets"][0]["members"][-1]["priority"] = 0.5
    return v1, v2


def put_everywhere(api: Api, projects: list[Project], configs: dict[str, dict[str, Any]]) -> dict[str, int]:
    sent = api.map(lambda p: put_config(api, p, configs[p.group_id]), projects)
    return {p.group_id: version for p, (_, version) in zip(projects, sent, strict=True)}


def wait_goal(
    api: Api, projects: list[Project], versions: dict[str, int], timeout_s: float, what: str
) -> None:
    watch = GoalWatch(api, projects, versions)
    if not watch.wait(timeout_s):
        raise RuntimeError(f"{what}: only {len(watch.reached)}/{len(projects)} projects at goal")


def watch_exits(
    backup: AppDbBackup, group_ids: set[str], since_ms: int, timeout_s: float, fleet: Fleet, load: list[float]
) -> dict[str, dict[str, Any]]:
    """Each project's record once it has left Restoration Mode entered after ``since_ms``; the 1-minute load
    average is sampled into ``load`` meanwhile."""
    deadline = time.monotonic() + timeout_s
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(group_ids) and time.monotonic() < deadline:
        fleet.check()
        load.append(os.getloadavg()[0])
        for rec in backup.appdb.find(RESTORATION):
            exited = rec.get("exitedAt") or 0
            if rec["_id"] in group_ids and rec["state"] == "INACTIVE" and exited >= since_ms:
                done[rec["_id"]] = rec
        time.sleep(0.25)
    return done


def measure_scale(
    agents: int, poll_s: float, timeout_polls: float, keep: Path | None, fleet_processes: int, sample: bool
) -> dict[str, Any]:
    with workdir(keep, f"rx{agents}-") as tmp:
        samples = tmp / "samples-server"
        with running_server(tmp, poll_s, sample_to=samples if sample else None) as server:
            row = _measure(server, tmp, agents, poll_s, timeout_polls * poll_s, fleet_processes)
        if sample:  # the server restarted after the restore: its own file, the newest
            *_, restarted = sorted(tmp.glob("samples-server.*"), key=lambda p: p.stat().st_mtime)
            print("\nbusiest functions of the restarted server (samples every 5 ms: in stack, on top):")
            for name, inclusive, own in summarise_samples([restarted], top=40):
                print(f"  {inclusive:7d} {own:7d}  {name}")
        return row


def _measure(
    server: ServerProcess, tmp: Path, agents: int, poll_s: float, timeout_s: float, fleet_processes: int
) -> dict[str, Any]:
    api = Api(server)
    try:
        projects = create_projects(api, set_sizes(agents, SET_SIZE), f"rx{agents}")
        pairs = {p.group_id: configs_v1_v2(p) for p in projects}
        v1 = put_everywhere(api, projects, {g: c[0] for g, c in pairs.items()})
        fleet = Fleet.split(server.url, projects, tmp, poll_s, processes=fleet_processes)
        with running_fleet(fleet):
            wait_goal(api, projects, v1, 60 + timeout_s, "v1")
            backup = AppDbBackup(server.data_dir, tmp / "secondary")
            try:
                t0 = backup.mark()
                v2 = put_everywhere(api, projects, {g: c[1] for g, c in pairs.items()})
                wait_goal(api, projects, v2, 60 + timeout_s, "v2")
                backup.mark()
                stopped = time.time()
                server.stop()
                restored = backup.restore_to(t0)
                launched = time.time()
                # The clock runs from the launch; under the fleet's stampede a readiness probe may wait
                # longer than the harness's default minute, which must not end the measurement.
                server.start(wait=False)
                server.wait_ready(timeout_s)
                ready = time.time()
                print(
                    f"  {agents} agents: server down {launched - stopped:.1f} s "
                    f"(restore {restored['documents']} documents), ready {ready - launched:.1f} s "
                    "after launch; waiting for every project to leave Restoration Mode",
                    flush=True,
                )
                group_ids = {p.group_id for p in projects}
                load: list[float] = []
                exits = watch_exits(backup, group_ids, int(launched * 1000), timeout_s, fleet, load)
                lapsed = time.time() - launched
                latencies = route_latencies(read_metrics(server.url))
            finally:
                backup.close()
        row = summarise(agents, len(projects), poll_s, launched, stopped, ready, exits, v2, lapsed)
        return row | {
            "load_mean": statistics.mean(load or [0.0]),
            "load_max": max(load or [0.0]),
            "latencies": latencies,
        }
    finally:
        api.close()


def summarise(
    agents: int,
    projects: int,
    poll_s: float,
    launched: float,
    stopped: float,
    ready: float,
    exits: dict[str, dict[str, Any]],
    versions: dict[str, int],
    lapsed: float,
) -> dict[str, Any]:
    poll_ms = poll_s * 1000
    launched_ms = launched * 1000

    def polls(ms: float) -> float:
        return ms / poll_ms

    start_to_exit = [polls(r["exitedAt"] - launched_ms) for r in exits.values()]
    start_to_entry = [polls(r["triggeredAt"] - launched_ms) for r in exits.values()]
    clean = [r for r in exits.values() if not r.get("failureCount")]
    last_to_exit = [polls(r["exitedAt"] - last_report(r)) for r in exits.values()]
    ask_to_exit = [polls(r["exitedAt"] - r["uploadRequestedAt"]) for r in exits.values()]
    kept = sum(1 for g, r in exits.items() if (r.get("authoritativeVersion") or 0) >= versions[g])
    return {
        "agents": agents,
        "projects": projects,
        "exited": f"{len(exits)}/{projects}",
        "downtime_s": launched - stopped,
        "ready_s": ready - launched,
        "entry_median": statistics.median(start_to_entry) if exits else None,
        "exit_median": statistics.median(start_to_exit) if exits else None,
        "exit_all": max(start_to_exit) if len(exits) == projects else None,
        "last_median": statistics.median(last_to_exit) if last_to_exit else None,
        "last_max": max(last_to_exit) if last_to_exit else None,
        "ask_median": statistics.median(ask_to_exit) if ask_to_exit else None,
        "ask_max": max(ask_to_exit) if ask_to_exit else None,
        "failed": projects - len(clean) if len(exits) == projects else len(exits) - len(clean),
        "kept_v2": f"{kept}/{len(exits)}",
        "lapsed_s": lapsed,
    }


# The agent routes Restoration Mode's exit waits on: each agent's status report (its claim) and the chosen
# agent's upload.
ROUTES = {
    "status": "/agents/api/automation/status/v1/{group_id}",
    "upload": "/agents/api/automation/restoration/v1/{group_id}/config",
}


def route_latencies(reading: MetricsReading) -> dict[str, str]:
    """Each route's requests since the server's start and their time inside the server (the queue for a
    worker thread included, the client's own queue and the network not): p50, p99, share above 1 s."""
    out = {}
    for name, route in ROUTES.items():
        cumulative = reading.buckets.get(route, {})
        p50, p99 = histogram_quantile(cumulative, 0.5), histogram_quantile(cumulative, 0.99)
        out[name] = (
            f"{reading.count(route)} requests, p50 {ms(p50)} ms, p99 {ms(p99)} ms, "
            f"{share_above(cumulative, 1.0):.1%} above 1 s"
        )
    return out


def last_report(rec: dict[str, Any]) -> int:
    """When the project's last agent first reported (claimed the version it holds), epoch ms."""
    claims = [a.get("claimedAt") or 0 for a in (rec.get("agents") or {}).values()]
    return max(claims) if any(claims) else int(rec["uploadRequestedAt"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, nargs="+", default=[10, 100, 1000], help="scales to measure")
    ap.add_argument("--poll-interval", type=float, default=5.0, help="agent poll interval, seconds")
    ap.add_argument("--timeout-polls", type=float, default=60, help="give up a scale after this many polls")
    ap.add_argument("--fleet-processes", type=int, default=1, help="fleet processes (projects split)")
    ap.add_argument("--sample", action="store_true", help="sample the restarted server's stacks")
    ap.add_argument("--keep", type=Path, help="keep data dirs and logs under this directory")
    args = ap.parse_args()
    poll = args.poll_interval
    print_header(
        f"Restoration Mode exit after an application database rollback, agents polling every {poll:g} s"
    )
    rows = []
    for n in args.agents:
        try:
            rows.append(
                measure_scale(n, poll, args.timeout_polls, args.keep, args.fleet_processes, args.sample)
            )
        except RuntimeError as exc:
            print(f"  {n} agents: not measured: {exc}", flush=True)
            continue
        r = rows[-1]
        print(
            f"  {n} agents: {r['exited']} projects exited; start->exit median {_f(r['exit_median'])}, "
            f"all {_f(r['exit_all'])}; last report->exit max {_f(r['last_max'])} poll intervals",
            flush=True,
        )
    print()
    print(f"poll interval {poll:g} s; times in poll intervals unless marked s")
    print(
        table(
            [
                "agents",
                "projects",
                "exited",
                "down s",
                "ready s",
                "start->entry median",
                "start->exit median",
                "start->exit all",
                "last report->exit median",
                "last report->exit max",
                "ask->exit median",
                "ask->exit max",
                "failed rounds",
                "config >= v2",
                "load mean",
                "load max",
            ],
            [
                (
                    r["agents"],
                    r["projects"],
                    r["exited"],
                    r["downtime_s"],
                    r["ready_s"],
                    r["entry_median"],
                    r["exit_median"],
                    r["exit_all"],
                    r["last_median"],
                    r["last_max"],
                    r["ask_median"],
                    r["ask_max"],
                    r["failed"],
                    r["kept_v2"],
                    r["load_mean"],
                    r["load_max"],
                )
                for r in rows
            ],
        )
    )
    for r in rows:
        for name, text in r["latencies"].items():
            print(f"{r['agents']} agents, server time of each {name} request: {text}")
    for r in rows:
        everyone = r["exited"] == f"{r['projects']}/{r['projects']}"
        met = r["last_max"] is not None and r["last_max"] <= TARGET_POLLS and everyone
        print(
            f"target: {r['agents']} agents, exit within {TARGET_POLLS:g} poll intervals after the last "
            f"agent's first report: {'met' if met else 'MISSED'} (max {_f(r['last_max'])})"
        )


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()

"""Time to goal state for 1, 10 and 100 projects of 3-member simulated replica sets, in agent poll intervals.

For each scale, a fresh ``opsmgr server`` (agents told to poll every ``--poll-interval`` seconds) and a
simulated fleet in a process of its own (one agent loop per host, all polling before anything changes).
Then, for every project at once (the PUTs go out from a few client threads):

1. from nothing: the first replica set config is PUT to agents that hold an empty config;
2. a change to a running set: a secondary's priority goes from 1 to 0.5 (one reconfig by the primary's agent);
3. a change that moves the primary: another secondary's priority goes from 1 to 2 (reconfig, then MongoDB's
   priority takeover, which waits ``electionTimeoutMillis``, 10 s by default, whatever the poll interval).

A project's time runs from the moment its PUT was sent to the moment every one of its processes reported
``lastGoalVersionAchieved == goalVersion`` (``GET /groups/{id}/automationStatus``: the ``lastReport`` of the
first reading that shows the process at goal). "all" is the slowest project. Target (issue 3): goal within
3 poll intervals of a change for 100 projects. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/time_to_goal.py [--projects 1 10 100] [--poll-interval 1.0]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    CONF_ROUTE,
    Api,
    Fleet,
    GoalWatch,
    Project,
    cpu_seconds,
    create_projects,
    print_header,
    put_config,
    read_metrics,
    replica_set_config,
    running_fleet,
    running_server,
    table,
    wait_for,
    workdir,
)

SET_SIZE = 3
TARGET_POLLS = 3.0


def rs_name(project: Project) -> str:
    return f"rs-{project.name}"


def with_priority(config: dict[str, Any], process: str, priority: float) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    for member in changed["replicaSets"][0]["members"]:
        if member["host"] == process:
            member["priority"] = priority
    return changed


def secondaries(api: Api, project: Project) -> list[str]:
    hosts = api.call("GET", f"/groups/{project.group_id}/hosts")["results"]
    return sorted(h["processName"] for h in hosts if h["replicaStateName"] == "SECONDARY")


def run_phase(
    label: str,
    api: Api,
    projects: list[Project],
    configs: dict[str, dict[str, Any]],
    server_pid: int,
    fleet: Fleet,
    poll_s: float,
    timeout_s: float,
) -> dict[str, Any]:
    cpu0, fleet0, t0 = cpu_seconds(server_pid), fleet.cpu_seconds(), time.monotonic()
    sent = dict(
        zip(
            [p.group_id for p in projects],
            api.map(lambda p: put_config(api, p, configs[p.group_id]), projects),
            strict=True,
        )
    )
    watch = GoalWatch(api, projects, {g: v for g, (_, v) in sent.items()})
    complete = watch.wait(timeout_s)
    elapsed = time.monotonic() - t0
    server_cpu = (cpu_seconds(server_pid) - cpu0) / elapsed
    fleet_cpu = (fleet.cpu_seconds() - fleet0) / elapsed
    per_project = [(watch.reached[g] - s) / poll_s for g, (s, _) in sent.items() if g in watch.reached]
    put_times = [s for s, _ in sent.values()]
    return {
        "phase": label,
        "projects": len(projects),
        "done": f"{len(watch.reached)}/{len(projects)}",
        "median": statistics.median(per_project) if per_project else None,
        "max": max(per_project) if complete else None,
        "puts_spread_s": max(put_times) - min(put_times),
        "server_cpu": server_cpu,
        "fleet_cpu": fleet_cpu,
        "complete": complete,
    }


def measure_scale(
    n: int,
    poll_s: float,
    timeout_polls: float,
    keep: Path | None,
    fleet_processes: int,
    connections: int | None,
) -> list[dict[str, Any]]:
    with workdir(keep, f"ttg{n}-") as tmp, running_server(tmp, poll_s) as server:
        api = Api(server)
        try:
            projects = create_projects(api, [SET_SIZE] * n, f"ttg{n}")
            fleet = Fleet.split(
                server.url, projects, tmp, poll_s, processes=fleet_processes, max_connections=connections
            )
            with running_fleet(fleet):

                def all_polling() -> bool:
                    fleet.check()
                    return read_metrics(server.url).count(CONF_ROUTE) >= 2 * fleet.agents

                # Every agent polling before anything changes: each has polled about twice.
                wait_for(
                    all_polling,
                    60 + 3 * poll_s,
                    interval=0.2,
                    what="every agent polling",
                )
                assert server.proc is not None
                pid, timeout_s = server.proc.pid, timeout_polls * poll_s
                configs = {p.group_id: replica_set_config(list(p.hosts), rs=rs_name(p)) for p in projects}
                rows = [run_phase("from nothing", api, projects, configs, pid, fleet, poll_s, timeout_s)]
                secs = dict(
                    zip(
                        [p.group_id for p in projects],
                        api.map(lambda p: secondaries(api, p), projects),
                        strict=True,
                    )
                )
                for label, pick, priority in (
                    ("priority 1->0.5 of a secondary", 0, 0.5),
                    ("priority 1->2 (primary moves)", -1, 2.0),
                ):
                    for p in projects:
                        if secs[p.group_id]:
                            configs[p.group_id] = with_priority(
                                configs[p.group_id], secs[p.group_id][pick], priority
                            )
                    rows.append(run_phase(label, api, projects, configs, pid, fleet, poll_s, timeout_s))
                fleet.check()
                return rows
        finally:
            api.close()


def _polls(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projects", type=int, nargs="+", default=[1, 10, 100], help="scales to measure")
    ap.add_argument("--poll-interval", type=float, default=1.0, help="agent poll interval, seconds")
    ap.add_argument("--timeout-polls", type=float, default=60, help="give up a phase after this many polls")
    ap.add_argument("--fleet-processes", type=int, default=1, help="fleet processes (projects split)")
    ap.add_argument(
        "--fleet-connections",
        type=int,
        help="pooled HTTP connections per fleet process (default: the fleet's)",
    )
    ap.add_argument("--keep", type=Path, help="keep data dirs and logs under this directory")
    args = ap.parse_args()
    print_header(f"Time to goal state, {SET_SIZE}-member simulated replica sets, one project per set")
    rows = []
    for n in args.projects:
        scale = measure_scale(
            n, args.poll_interval, args.timeout_polls, args.keep, args.fleet_processes, args.fleet_connections
        )
        for row in scale:
            rows.append(row)
            print(
                f"  {n} project(s), {row['phase']}: {row['done']} at goal, median {_polls(row['median'])}, "
                f"all {_polls(row['max'])} poll intervals",
                flush=True,
            )
    print()
    print(
        f"poll interval {args.poll_interval} s; "
        "times in poll intervals from the PUT to the last process at goal"
    )
    print(
        table(
            [
                "projects",
                "agents",
                "what was PUT",
                "at goal",
                "median",
                "all (slowest)",
                "all, s",
                "PUT spread s",
                "server CPU",
                "fleet CPU",
            ],
            [
                (
                    r["projects"],
                    r["projects"] * SET_SIZE,
                    r["phase"],
                    r["done"],
                    r["median"],
                    r["max"],
                    None if r["max"] is None else r["max"] * args.poll_interval,
                    r["puts_spread_s"],
                    f"{r['server_cpu']:.0%}",
                    f"{r['fleet_cpu']:.0%}",
                )
                for r in rows
            ],
        )
    )
    changes = [r for r in rows if r["phase"] != "from nothing" and r["projects"] == max(args.projects)]
    for r in changes:
        verdict = "met" if r["max"] is not None and r["max"] <= TARGET_POLLS else "MISSED"
        print(
            f"target: a change at goal within {TARGET_POLLS:g} poll intervals for {r['projects']} projects "
            f"({r['phase']}): {verdict} (all: {_polls(r['max'])})"
        )


if __name__ == "__main__":
    main()

"""Agent requests per agent per poll interval, idle and with backup running, read from a real server's
``/metrics`` while a real fleet (a process of its own, one agent loop per simulated host) runs.

Every project is a 3-member simulated replica set. Once all are at goal, a window of ``--window-polls`` poll
intervals is measured with nothing to do (idle); then backup is started for every project's cluster, and
once each has a first snapshot, a second window is measured. Prints, per window, the requests per agent per
poll interval in all and per agent route. Target (issue 11): at most 2 per agent per interval idle (the poll
and the status report). Asserts nothing.

    .venv/bin/python benchmarks/agent_requests.py [--agents 30] [--poll-interval 2] [--window-polls 6]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import (
    Api,
    Fleet,
    GoalWatch,
    MetricsReading,
    create_projects,
    print_header,
    put_config,
    read_metrics,
    running_fleet,
    running_server,
    set_sizes,
    table,
    workdir,
)

from opsmgr.automation.templates import replica_set_config


def per_route(before: MetricsReading, after: MetricsReading) -> dict[str, int]:
    return {
        route: after.count(route) - before.count(route)
        for route in after.buckets
        if route.startswith("/agents/") and after.count(route) > before.count(route)
    }


def window(server_url: str, fleet: Fleet, seconds: float) -> tuple[dict[str, int], float]:
    before, t0 = read_metrics(server_url), time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        fleet.check()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    return per_route(before, read_metrics(server_url)), time.monotonic() - t0


def show(label: str, counts: dict[str, int], elapsed: float, agents: int, poll: float) -> None:
    intervals = elapsed / poll
    total = sum(counts.values()) / agents / intervals
    print(f"\n{label}: {total:.2f} requests per agent per poll interval ({elapsed:.0f} s window)")
    rows = [
        (route, f"{n / agents / intervals:.2f}") for route, n in sorted(counts.items(), key=lambda kv: -kv[1])
    ]
    print(table(["agent route", "per agent per interval"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=30)
    ap.add_argument("--poll-interval", type=float, default=2.0)
    ap.add_argument("--window-polls", type=float, default=6)
    ap.add_argument("--keep", type=Path, help="keep data dirs and logs under this directory")
    args = ap.parse_args()
    poll = args.poll_interval
    print_header(f"agent requests: {args.agents} simulated agents polling every {poll:g} s")
    with workdir(args.keep, "agentreq-") as tmp, running_server(tmp, poll) as server:
        api = Api(server)
        try:
            projects = create_projects(api, set_sizes(args.agents, 3), "req")
            versions = {
                p.group_id: put_config(api, p, replica_set_config(list(p.hosts), rs=f"rs-{p.name}"))[1]
                for p in projects
            }
            fleet = Fleet.split(server.url, projects, tmp, poll, processes=1)
            with running_fleet(fleet):
                if not GoalWatch(api, projects, versions).wait(30 * poll):
                    raise SystemExit("the deployments did not reach goal")
                time.sleep(poll)  # let the last moves' follow-up requests settle
                idle, idle_s = window(server.url, fleet, args.window_polls * poll)
                for p in projects:
                    cid = api.call("GET", f"/groups/{p.group_id}/clusters")["results"][0]["id"]
                    api.call("PATCH", f"/groups/{p.group_id}/backupConfigs/{cid}", {"statusName": "STARTED"})
                    p_snapshots = f"/groups/{p.group_id}/clusters/{cid}/snapshots"
                    deadline = time.monotonic() + 60 * poll
                    while not api.call("GET", p_snapshots)["totalCount"] and time.monotonic() < deadline:
                        time.sleep(0.2)
                backup, backup_s = window(server.url, fleet, args.window_polls * poll)
        finally:
            api.close()
    show("idle", idle, idle_s, args.agents, poll)
    show("backup running", backup, backup_s, args.agents, poll)


if __name__ == "__main__":
    main()

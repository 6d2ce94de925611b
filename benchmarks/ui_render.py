"""Web UI page render times with 100 projects and 1,000 processes, against the public API's reads of the same
data in the same run.

A fresh ``opsmgr server`` and a simulated fleet of ``--projects`` x ``--hosts-per-project`` agents (each
project two replica sets of five members) brought to goal state; then a logged-in UI user fetches each page
for projects picked at random (the organizations and projects page, a project's deployment page and its live
fragment, rolling maintenance, Continuous Backup, alerts) while a Digest-authenticated API client reads
``automationStatus`` and ``hosts`` of the same projects. Each request's wall time is measured by the client,
one request at a time, while the fleet keeps polling and reporting. Target (issue 13): page p95 < 300 ms.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/ui_render.py [--projects 100] [--hosts-per-project 10] [--rounds 200]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import (
    Api,
    Fleet,
    GoalWatch,
    Project,
    create_projects,
    print_header,
    put_config,
    replica_set_config,
    running_fleet,
    running_server,
    table,
    workdir,
)

PASSWORD = "benchmark password"
SET_SIZE = 5


def two_sets(project: Project) -> dict[str, Any]:
    """The project's hosts as replica sets of ``SET_SIZE`` members (one automation config)."""
    config: dict[str, Any] = {"processes": [], "replicaSets": []}
    for i in range(0, len(project.hosts), SET_SIZE):
        part = replica_set_config(list(project.hosts[i : i + SET_SIZE]), rs=f"rs{i // SET_SIZE}")
        config["processes"] += part["processes"]
        config["replicaSets"] += part["replicaSets"]
    return config


def ui_client(url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    form = client.get("/ui/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    done = client.post(
        "/ui/login", data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    if done.status_code != 303:
        raise RuntimeError(f"login failed: {done.status_code} {done.text[:300]}")
    return client


def timed(fetch: Callable[[str], httpx.Response], group_id: str) -> float:
    started = time.perf_counter()
    r = fetch(group_id)
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{r.request.url}: HTTP {r.status_code}: {r.text[:300]}")
    return elapsed


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def measure(args: argparse.Namespace) -> list[list[Any]]:
    with workdir(args.keep, "uirender-") as tmp, running_server(tmp, args.poll_interval) as server:
        server.create_user("bench", PASSWORD, "ORG_OWNER")
        api = Api(server)
        try:
            projects = create_projects(api, [args.hosts_per_project] * args.projects, "ui")
            fleet = Fleet.split(server.url, projects, tmp, args.poll_interval, processes=args.fleet_processes)
            with running_fleet(fleet):
                sent = api.map(lambda p: put_config(api, p, two_sets(p)), projects)
                watch = GoalWatch(
                    api, projects, {p.group_id: v for p, (_, v) in zip(projects, sent, strict=True)}
                )
                reached = watch.wait(args.goal_timeout)
                print(f"  {len(watch.reached)}/{len(projects)} projects at goal (all: {reached})", flush=True)
                ui = ui_client(server.url, "bench")
                pages: dict[str, Callable[[str], httpx.Response]] = {
                    "UI organizations and projects": lambda g: ui.get("/ui/"),
                    "UI deployment": lambda g: ui.get(f"/ui/projects/{g}/deployment"),
                    "UI deployment live fragment": lambda g: ui.get(f"/ui/projects/{g}/deployment/live"),
                    "UI rolling maintenance": lambda g: ui.get(f"/ui/projects/{g}/maintenance"),
                    "UI Continuous Backup": lambda g: ui.get(f"/ui/projects/{g}/backup"),
                    "UI alerts": lambda g: ui.get(f"/ui/projects/{g}/alerts"),
                    "API automationStatus": lambda g: api.client.get(f"/groups/{g}/automationStatus"),
                    "API hosts": lambda g: api.client.get(f"/groups/{g}/hosts"),
                }
                times: dict[str, list[float]] = {name: [] for name in pages}
                rng = random.Random(13)
                for _ in range(args.rounds):
                    group_id = rng.choice(projects).group_id
                    for name, fetch in pages.items():
                        times[name].append(timed(fetch, group_id))
                fleet.check()
                ui.close()
        finally:
            api.close()
    baseline = p95(times["API automationStatus"]) + p95(times["API hosts"])
    rows = []
    for name, values in times.items():
        rows.append(
            [
                name,
                len(values),
                f"{statistics.median(values) * 1000:.1f}",
                f"{p95(values) * 1000:.1f}",
                f"{max(values) * 1000:.1f}",
                f"{p95(values) / baseline:.2f}",
            ]
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projects", type=int, default=100)
    ap.add_argument("--hosts-per-project", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=200, help="requests per page")
    ap.add_argument("--poll-interval", type=float, default=2.0, help="agent poll interval, seconds")
    ap.add_argument("--fleet-processes", type=int, default=1)
    ap.add_argument("--goal-timeout", type=float, default=300.0)
    ap.add_argument("--keep", type=Path, help="keep data dirs and logs under this directory")
    args = ap.parse_args()
    print_header(
        f"UI page render, {args.projects} projects x {args.hosts_per_project} processes "
        f"({args.projects * args.hosts_per_project} processes)"
    )
    rows = measure(args)
    print()
    print(
        table(
            ["page", "requests", "p50 ms", "p95 ms", "max ms", "p95 / (API automationStatus + hosts p95)"],
            rows,
        )
    )
    print("\ntarget: every UI page p95 < 300 ms")


if __name__ == "__main__":
    main()

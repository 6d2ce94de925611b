"""N simulated agents (default 2,000) polling every 10 s against one ``opsmgr server``: the server's CPU
share, p50/p99 poll latency on the server side and as a few probe clients see it, and the fleet process's
memory.

The agents are 3-member simulated replica sets, one project each (the remainder joins the last set), run by
a fleet in a process of its own (``agent.fleet``; ``--fleet-processes`` splits it by project). The configs
are PUT before the fleet starts; after a warm-up (every project at goal, or ``--warmup-polls`` poll
intervals), a window of ``--window-polls`` poll intervals is measured:

- server CPU share: user+system time of the server process (all threads) over the window, from
  /proc/<pid>/stat, as a share of one core (the machine has two);
- server-side latency: quantiles of the change of the ``/metrics`` histogram of the conf route over the
  window, interpolated inside buckets as Prometheus' ``histogram_quantile`` does (buckets: 1, 2.5, 5, 10,
  25, 50, 100, 250 ms ...); also the status route and every agent route's rate;
- probe latency: ``--probes`` clients in this process, each sending an "unchanged" conf poll (HTTP/1.1
  keep-alive) every ``--probe-interval`` seconds, timed from request to answer;
- fleet memory: VmRSS and VmHWM of the fleet process(es) from /proc/<pid>/status at the end of the window.

Target (issue 3): 2,000 agents with server p99 under 100 ms. Prints figures; asserts nothing. With
``--sample`` a stack sampler (``_harness.StackSampler``) watches the server and the fleet and the busiest
functions of each are printed; ``--no-backup-task`` idles the agents' backup task, for diagnosis only.

    .venv/bin/python benchmarks/fleet_load.py [--agents 2000] [--poll-interval 10] [--window-polls 6]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    CONF_ROUTE,
    STATUS_ROUTE,
    Api,
    Fleet,
    GoalWatch,
    MetricsReading,
    Project,
    cpu_seconds,
    create_projects,
    histogram_delta,
    histogram_quantile,
    memory_mb,
    ms,
    print_header,
    put_config,
    quantile,
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

TARGET_P99_S = 0.100


class Probe(threading.Thread):
    """One client polling the conf route with the goal version ("unchanged"), timing each answer."""

    def __init__(self, port: int, project: Project, version: int, index: int, interval_s: float) -> None:
        super().__init__(name=f"probe-{index}", daemon=True)
        self.port, self.interval_s = port, interval_s
        auth = base64.b64encode(f"{project.group_id}:{project.agent_key}".encode()).decode()
        self.path = (
            f"/agents/api/automation/conf/v1/{project.group_id}?hostname=probe{index}.bench&cv={version}"
        )
        self.headers = {"Authorization": f"Basic {auth}"}
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        next_at = time.monotonic()
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", self.path, headers=self.headers)
                response = conn.getresponse()
                response.read()
                if response.status != 304:
                    self.errors.append(f"HTTP {response.status}")
                else:
                    self.latencies.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            next_at += self.interval_s
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        conn.close()


def route_rates(
    before: MetricsReading, after: MetricsReading, seconds: float
) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for route in sorted(after.buckets):
        if not route.startswith("/agents/"):
            continue
        delta = histogram_delta(before, after, route)
        n = delta.get(float("inf"), 0)
        if n:
            statuses = {
                status: count - before.statuses.get((r, status), 0)
                for (r, status), count in after.statuses.items()
                if r == route and count - before.statuses.get((r, status), 0)
            }
            rows.append(
                (
                    route,
                    f"{n / seconds:.1f}",
                    " ".join(f"{s}:{c}" for s, c in sorted(statuses.items())),
                    ms(histogram_quantile(delta, 0.5)),
                    ms(histogram_quantile(delta, 0.99)),
                )
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--poll-interval", type=float, default=10.0, help="agent poll interval, seconds")
    ap.add_argument("--set-size", type=int, default=3, help="members per replica set (one project each)")
    ap.add_argument("--warmup-polls", type=float, default=15, help="longest wait for goal, in poll intervals")
    ap.add_argument("--window-polls", type=float, default=6, help="measurement window, in poll intervals")
    ap.add_argument("--probes", type=int, default=4)
    ap.add_argument("--probe-interval", type=float, default=0.5, help="seconds between a probe's polls")
    ap.add_argument("--fleet-processes", type=int, default=1)
    ap.add_argument("--fleet-connections", type=int, help="pooled HTTP connections per fleet process")
    ap.add_argument("--no-backup-task", action="store_true", help="diagnosis: idle the agents' backup task")
    ap.add_argument("--sample", action="store_true", help="sample the stacks of the server and the fleet")
    ap.add_argument("--keep", type=Path, help="keep data dirs and logs under this directory")
    args = ap.parse_args()
    poll = args.poll_interval
    print_header(f"{args.agents} simulated agents polling every {poll:g} s against one opsmgr server")
    with workdir(args.keep, "fleetload-") as tmp:
        sample_server = tmp / "samples-server" if args.sample else None
        with running_server(tmp, poll, sample_to=sample_server) as server:
            assert server.proc is not None
            api = Api(server)
            try:
                t0 = time.monotonic()
                projects = create_projects(api, set_sizes(args.agents, args.set_size), "load")
                versions = dict(
                    zip(
                        [p.group_id for p in projects],
                        [
                            v
                            for _, v in api.map(
                                lambda p: put_config(
                                    api, p, replica_set_config(list(p.hosts), rs=f"rs-{p.name}")
                                ),
                                projects,
                            )
                        ],
                        strict=True,
                    )
                )
                print(
                    f"  {len(projects)} projects created and configured in {time.monotonic() - t0:.0f} s",
                    flush=True,
                )
                env = {}
                if args.sample:
                    env["OPSMGR_BENCH_SAMPLE"] = str(tmp / "samples-fleet")
                if args.no_backup_task:
                    env["OPSMGR_BENCH_NO_BACKUP_TASK"] = "1"
                fleet = Fleet.split(
                    server.url,
                    projects,
                    tmp,
                    poll,
                    processes=args.fleet_processes,
                    max_connections=args.fleet_connections,
                    env=env,
                )
                print(f"  fleet: {fleet.describe()}{'; backup task idled' if args.no_backup_task else ''}")
                with running_fleet(fleet):
                    t0 = time.monotonic()
                    watch = GoalWatch(api, projects, versions)
                    all_at_goal = watch.wait(args.warmup_polls * poll)
                    fleet.check()
                    warmup_s = time.monotonic() - t0
                    print(
                        f"  warm-up: {len(watch.reached)}/{len(projects)} projects at goal "
                        f"after {warmup_s:.0f} s",
                        flush=True,
                    )
                    result = measure(server, fleet, projects, versions, args)
                    fleet.check()
                    result.update(warmup_s=warmup_s, at_goal=len(watch.reached), all_at_goal=all_at_goal)
            finally:
                api.close()
        report(result, args, len(projects))
        if args.sample:
            for label, prefix in (("server", "samples-server"), ("fleet", "samples-fleet")):
                print(f"\nbusiest functions of the {label} (stack samples every 5 ms; in stack / on top):")
                for name, inclusive, own in summarise_samples(tmp.glob(f"{prefix}.*"), top=30):
                    print(f"  {inclusive:7d} {own:7d}  {name}")


def measure(
    server: Any, fleet: Fleet, projects: list[Project], versions: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    window = args.window_polls * args.poll_interval
    probes = [
        Probe(
            server.port,
            projects[i % len(projects)],
            versions[projects[i % len(projects)].group_id],
            i,
            args.probe_interval,
        )
        for i in range(args.probes)
    ]
    before = read_metrics(server.url)
    cpu0, fleet0, t0 = cpu_seconds(server.proc.pid), fleet.cpu_seconds(), time.monotonic()
    for p in probes:
        p.start()
    deadline = t0 + window
    while time.monotonic() < deadline:
        fleet.check()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    elapsed = time.monotonic() - t0
    server_cpu = (cpu_seconds(server.proc.pid) - cpu0) / elapsed
    fleet_cpu = (fleet.cpu_seconds() - fleet0) / elapsed
    after = read_metrics(server.url)
    rss, peak = fleet.memory_mb()
    server_rss, server_peak = memory_mb(server.proc.pid)
    for p in probes:
        p.stop.set()
    for p in probes:
        p.join(35)
    conf = histogram_delta(before, after, CONF_ROUTE)
    status = histogram_delta(before, after, STATUS_ROUTE)
    probe_latencies = [x for p in probes for x in p.latencies]
    return {
        "window_s": elapsed,
        "server_cpu": server_cpu,
        "fleet_cpu": fleet_cpu,
        "conf": conf,
        "status": status,
        "routes": route_rates(before, after, elapsed),
        "probe": probe_latencies,
        "probe_errors": [e for p in probes for e in p.errors],
        "fleet_rss": rss,
        "fleet_peak": peak,
        "server_rss": server_rss,
        "server_peak": server_peak,
    }


def report(r: dict[str, Any], args: argparse.Namespace, projects: int) -> None:
    window, poll = r["window_s"], args.poll_interval
    conf, status, probe = r["conf"], r["status"], r["probe"]
    conf_n = conf.get(float("inf"), 0)
    nominal = args.agents / poll
    p99 = histogram_quantile(conf, 0.99)
    print()
    print(
        f"window {window:.0f} s ({window / poll:.1f} poll intervals) "
        f"after a warm-up of {r['warmup_s']:.0f} s "
        f"({r['at_goal']}/{projects} projects at goal)"
    )
    print(
        table(
            ["figure", "value"],
            [
                ("agents / projects", f"{args.agents} / {projects}"),
                ("conf polls answered per second (nominal)", f"{conf_n / window:.1f} ({nominal:.0f})"),
                ("status reports per second", f"{status.get(float('inf'), 0) / window:.1f}"),
                ("server CPU (share of one core; 2 cores)", f"{r['server_cpu']:.0%}"),
                ("fleet CPU (share of one core, all fleet processes)", f"{r['fleet_cpu']:.0%}"),
                (
                    "server-side conf poll latency p50 / p99, ms",
                    f"{ms(histogram_quantile(conf, 0.5))} / {ms(p99)}",
                ),
                ("server-side conf polls slower than 100 ms", f"{share_above(conf, 0.1):.2%}"),
                (
                    "server-side status report latency p50 / p99, ms",
                    f"{ms(histogram_quantile(status, 0.5))} / {ms(histogram_quantile(status, 0.99))}",
                ),
                (
                    f"probe conf poll latency p50 / p99 / max, ms ({len(probe)} polls)",
                    f"{ms(quantile(probe, 0.5))} / {ms(quantile(probe, 0.99))} "
                    f"/ {ms(max(probe) if probe else None)}",
                ),
                (
                    "probe errors",
                    str(len(r["probe_errors"]))
                    + (f" (first: {r['probe_errors'][0]})" if r["probe_errors"] else ""),
                ),
                ("fleet memory RSS / peak, MiB", f"{r['fleet_rss']:.0f} / {r['fleet_peak']:.0f}"),
                ("fleet memory per agent, KiB", f"{r['fleet_rss'] * 1024 / args.agents:.0f}"),
                ("server memory RSS / peak, MiB", f"{r['server_rss']:.0f} / {r['server_peak']:.0f}"),
            ],
        )
    )
    print("\nagent routes over the window (server side):")
    print(table(["route", "per s", "statuses", "p50 ms", "p99 ms"], r["routes"]))
    verdict = (
        "met" if p99 is not None and p99 < TARGET_P99_S and conf_n / window >= 0.9 * nominal else "MISSED"
    )
    print(
        f"\ntarget: {args.agents} agents with server p99 under {TARGET_P99_S * 1000:.0f} ms: {verdict} "
        f"(p99 {ms(p99)} ms at {conf_n / window:.0f} of {nominal:.0f} nominal polls/s)"
    )
    if p99 is not None and p99 < TARGET_P99_S and conf_n / window < 0.9 * nominal:
        print(
            "  the latency is under target but the fleet did not produce the nominal poll rate: see fleet CPU"
        )


if __name__ == "__main__":
    main()

"""Scale-out (issue 18): simulated agents polling every ``--interval`` seconds (10 s, Ops Manager's default)
through a real HAProxy to 1, 2 and 3 ``opsmgr server`` processes sharing one real PostgreSQL set, then
``--big-agents`` (10,000) agents over ``--big-servers`` (2) servers. For each run: the agents' poll and
report latency p50/p99 (through HAProxy, as agents see it), failed requests, each server's share of the
polls, its server-side latency and its CPU share, and the CPU of HAProxy, PostgreSQL and the load generator.

    .venv/bin/python benchmarks/scale_out.py [--agents 250,500,1000,2000] [--servers 1,2,3]
        [--big-agents 10000] [--big-servers 2] [--interval 10] [--cycles 3] [--connections 128] [--quick]

Deployment. ``tests/pgserver.PgServer`` (fsync off: this machine's disk is not what is measured) holds the
three stores; ``tests/procs.servers_sharing`` configures three servers on them (one gen.key);
``tests/haproxy.HAProxy`` balances round robin over the servers of the run, restarted for each run. The
servers are started as the runs need them (1, then 2, then 3) and the third is stopped (handing its jobs over)
before the big run, so a run's idle servers never share the machine with it.

Agents. ``_ingest_agents``: asyncio tasks of this process speaking raw HTTP/1.1 on ``--connections`` shared
keep-alive connections to HAProxy (0: one per cycle), each cycle the conf poll
(``/agents/api/automation/conf/v1/{group}`` holding the project's goal version, answered 304) and the status
report an agent at goal sends, from a seeded random phase per agent. A real agent loop does much more per
cycle than an agent at goal asks of the server, and thousands of them would not fit beside the servers on
this machine. One replica set of ``--set-size`` members per project; the projects of the fixed fleets are
made (through the first server, before any run) for the largest of ``--agents``, those of the big run
before it. Each run is ``--warmup-cycles`` cycles, then ``--cycles`` measured ones.

Largest fleet. For each server count the sizes of ``--agents`` run in order until one misses the target
(poll p99 under 100 ms, as agents see it); the largest that met it is printed. On a machine of two cores
shared by the servers, HAProxy, PostgreSQL and the load generator, more servers add no cores: what scales
is the CPU each server spends, so the figures per server (polls/s, CPU share, CPU per 1,000 agents) and the
ratios between runs of the same invocation are the comparable figures; the load average is printed. The
figure that says how many agents a core holds is the CPU per agent cycle (one poll and one report): the
servers' CPU over the measured cycles divided by the polls answered, in the summary for all servers and per
server, there also with the server's idle CPU (its periodic jobs, read before the run) taken out.

Method. Client latency: first byte written to last byte read (pool wait excluded), exact quantiles; it
includes HAProxy and this process's event loop (its lateness p99 printed: a late loop means the load
generator, not the servers, was the limit). Server side: the change of each server's ``/metrics``
histograms over the measured cycles, interpolated in their buckets. CPU: utime+stime from
/proc/<pid>/stat before and after the measured cycles over their wall time, a share of one core; PostgreSQL
is the postmaster's tree: itself, its children alive and those it reaped. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import (
    CLOCK_TICKS,
    CONF_ROUTE,
    STATUS_ROUTE,
    Api,
    MetricsReading,
    Project,
    cpu_seconds,
    create_projects,
    histogram_delta,
    histogram_quantile,
    ms,
    print_header,
    put_config,
    quantile,
    read_metrics,
    replica_set_config,
    set_sizes,
    table,
)
from benchmarks._ingest_agents import Agent, Connections, Tally, Workload, run_cycles

from tests.haproxy import HAProxy
from tests.pgserver import FAST, PgServer
from tests.procs import STORE_KEYS, ServerProcess, servers_sharing

TARGET_P99_S = 0.100
# Three servers' pools (each up to 40 connections to the application database) and the other stores.
PG_SETTINGS = {**FAST, "max_connections": "400"}

Histogram = dict[float, int]
_HELD = re.compile(r'^opsmgr_job_held\{job="[^"]+"\} 1$', re.MULTILINE)


# --- the deployment -----------------------------------------------------------------------------------------


@dataclass
class Deployment:
    """PostgreSQL, three servers configured on it (started as runs need them) and HAProxy over those a run
    uses."""

    root: Path
    pg: PgServer
    servers: list[ServerProcess]
    proxy: HAProxy | None = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, root: Path, interval_s: float) -> Iterator[Deployment]:
        with PgServer(PG_SETTINGS) as pg:
            stores = {label: pg.create_database() for label in STORE_KEYS}
            extra = {"mms.agent.pollIntervalSeconds": f"{interval_s:g}"}
            deployment = cls(root, pg, servers_sharing(root, stores, ["s0", "s1", "s2"], extra))
            try:
                yield deployment
            finally:
                deployment.stop()

    def serve(self, count: int) -> HAProxy:
        """Exactly the first ``count`` servers running, HAProxy (restarted) in front of them."""
        for server in self.servers[count:]:
            server.stop()
        for server in self.servers[:count]:
            if server.proc is None or server.proc.poll() is not None:
                server.start()
        if self.proxy is not None:
            self.proxy.stop()
        self.proxy = HAProxy(self.root / f"haproxy-{count}", [s.port for s in self.servers[:count]]).start()
        return self.proxy

    def postmaster_pid(self) -> int:
        return int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for server in self.servers:
            server.stop()


def tree_cpu_seconds(parent: int) -> float:
    """CPU seconds of ``parent`` and all its children, those alive and those it has reaped (its cutime and
    cstime): PostgreSQL's backends come and go with the servers' pools, and each one's time is counted once,
    alive or reaped, so the difference of two readings is exact."""
    fields = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                total += cpu_seconds(int(stat.parent.name))
    return total


@dataclass(frozen=True)
class CpuReading:
    servers: list[float]
    proxy: float
    postgres: float
    loadgen: float
    at: float

    @classmethod
    def take(cls, deployment: Deployment, count: int) -> CpuReading:
        assert deployment.proxy is not None and deployment.proxy.proc is not None
        servers = []
        for server in deployment.servers[:count]:
            assert server.proc is not None
            servers.append(cpu_seconds(server.proc.pid))
        postmaster = deployment.postmaster_pid()
        postgres = tree_cpu_seconds(postmaster)
        proxy = cpu_seconds(deployment.proxy.proc.pid)
        return cls(servers, proxy, postgres, cpu_seconds(os.getpid()), time.monotonic())


# --- the agents ---------------------------------------------------------------------------------------------


@dataclass
class Agents:
    """The simulated agents, their projects made through ``api`` as runs need more of them."""

    api: Api
    interval_s: float
    set_size: int
    rng: random.Random
    agents: list[Agent] = field(default_factory=list)
    projects: int = 0

    def first(self, count: int) -> list[Agent]:
        if len(self.agents) < count:
            self._add(count - len(self.agents))
        return self.agents[:count]

    def _add(self, count: int) -> None:
        t0 = time.monotonic()
        projects = create_projects(self.api, set_sizes(count, self.set_size), f"scale{len(self.agents)}")

        def configure(p: Project) -> int:
            return put_config(self.api, p, replica_set_config(list(p.hosts), rs=f"rs-{p.name}"))[1]

        versions = self.api.map(configure, projects)
        for project, version in zip(projects, versions, strict=True):
            writes, clients = self.rng.lognormvariate(4, 1), self.rng.randint(5, 200)
            for member in range(len(project.hosts)):
                workload = Workload.start(member == 0, writes, clients, 0, self.rng.randrange(2**32))
                offset = self.rng.uniform(0, self.interval_s)
                self.agents.append(Agent(project, member, version, offset, workload))
        self.projects += len(projects)
        print(
            f"  {len(projects)} projects ({count} agents) created and configured "
            f"in {time.monotonic() - t0:.0f} s",
            flush=True,
        )


# --- one run ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    servers: int
    agents: int
    wall_s: float
    tally: Tally
    cpu: tuple[CpuReading, CpuReading]
    metrics: list[tuple[MetricsReading | None, MetricsReading | None]]  # each server's, before and after
    jobs: list[int | None]  # periodic jobs each server held at the end
    idle_cpu: list[float]  # each server's CPU share before the agents started (its periodic jobs)
    load_average: float

    def share(self, before: float, after: float) -> float:
        return (after - before) / self.wall_s

    @property
    def server_cpu(self) -> list[float]:
        a, b = self.cpu
        return [self.share(x, y) for x, y in zip(a.servers, b.servers, strict=True)]

    @property
    def postgres_cpu(self) -> float:
        a, b = self.cpu
        return self.share(a.postgres, b.postgres)

    def histograms(self, route: str) -> list[Histogram]:
        pairs = self.metrics
        return [histogram_delta(before, after, route) if before and after else {} for before, after in pairs]

    def summed(self, route: str) -> Histogram:
        total: Histogram = {}
        for h in self.histograms(route):
            for le, n in h.items():
                total[le] = total.get(le, 0) + n
        return total

    @property
    def poll_p99(self) -> float | None:
        return quantile(self.tally.latencies["poll"], 0.99)

    @property
    def met(self) -> bool:
        p99 = self.poll_p99
        return p99 is not None and p99 < TARGET_P99_S and not self.tally.failures


def measure(
    label: str, agents: list[Agent], deployment: Deployment, count: int, args: argparse.Namespace
) -> Run:
    proxy = deployment.serve(count)
    servers = deployment.servers[:count]
    print(f"  run {label}: {len(agents)} agents, {count} server(s) ...", flush=True)
    t0 = time.monotonic()
    idle0 = CpuReading.take(deployment, count)
    time.sleep(args.idle_seconds)  # a measurement window with no agents, not a synchronisation
    idle1 = CpuReading.take(deployment, count)
    idle_s = idle1.at - idle0.at
    idle = [(b - a) / idle_s for a, b in zip(idle0.servers, idle1.servers, strict=True)]

    async def cycles() -> tuple[Tally, float, CpuReading, CpuReading, list[MetricsReading | None]]:
        pool = Connections(proxy.port, args.connections)
        warm = await run_cycles(agents, pool, args.warmup_cycles, args.interval, False)
        before = [metrics_of(s.url) for s in servers]
        cpu0 = CpuReading.take(deployment, count)
        tally = await run_cycles(agents, pool, args.cycles, args.interval, False)
        cpu1 = CpuReading.take(deployment, count)
        tally.failures[:0] = warm.failures
        return tally, cpu1.at - cpu0.at, cpu0, cpu1, before

    tally, wall, cpu0, cpu1, before = asyncio.run(cycles())
    after = [metrics_of(s.url) for s in servers]
    run = Run(
        label, count, len(agents), wall, tally, (cpu0, cpu1), list(zip(before, after, strict=True)),
        [jobs_held(s.url) for s in servers], idle, os.getloadavg()[0],
    )  # fmt: skip
    print(
        f"    poll p99 {ms(run.poll_p99)} ms, {len(tally.failures)} failed requests, "
        f"servers' CPU {' + '.join(f'{c:.0%}' for c in run.server_cpu)}, "
        f"load average {run.load_average:.1f}, {time.monotonic() - t0:.0f} s",
        flush=True,
    )
    return run


def metrics_of(url: str) -> MetricsReading | None:
    """A server's ``/metrics``, None when a swamped server does not answer it in time (the run's server-side
    figures are then missing, the agents' own still stand)."""
    try:
        return read_metrics(url)
    except httpx.HTTPError as exc:
        print(f"    {url}/metrics not read: {exc!r}", flush=True)
        return None


def jobs_held(url: str) -> int | None:
    """How many periodic jobs a server holds the lease of (``opsmgr_job_held``): their work is in its CPU."""
    try:
        return len(_HELD.findall(httpx.get(f"{url}/metrics", timeout=30).text))
    except httpx.HTTPError:
        return None


def scale_runs(deployment: Deployment, agents: Agents, args: argparse.Namespace, runs: list[Run]) -> None:
    """For each server count, the fleet sizes in order until one misses the target; then the big run. Each
    run is appended to ``runs`` as it ends, so that a run that breaks leaves the others reported."""
    for count in args.servers:
        for size in args.agents:
            run = measure(f"{count}x{size}", agents.first(size), deployment, count, args)
            runs.append(run)
            if not run.met:
                break
    if args.big_agents:
        runs.append(measure("big", agents.first(args.big_agents), deployment, args.big_servers, args))


# --- the report ---------------------------------------------------------------------------------------------


def summary_rows(runs: Sequence[Run], args: argparse.Namespace) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in runs:
        polls, reports = r.tally.latencies["poll"], r.tally.latencies["report"]
        conf = r.summed(CONF_ROUTE)
        total_cpu = sum(r.server_cpu)
        a, b = r.cpu
        rows.append(
            [
                r.label,
                r.servers,
                r.agents,
                f"{len(polls) / r.wall_s:.0f} ({r.agents / args.interval:.0f})",
                f"{ms(quantile(polls, 0.5))} / {ms(r.poll_p99)}",
                f"{ms(quantile(reports, 0.5))} / {ms(quantile(reports, 0.99))}",
                f"{ms(histogram_quantile(conf, 0.99))}",
                len(r.tally.failures),
                f"{total_cpu:.0%}",
                f"{total_cpu / r.servers:.0%}",
                f"{total_cpu * 1000 / r.agents:.1%}",
                f"{total_cpu * r.wall_s * 1000 / len(polls):.2f}" if polls else "-",
                f"{r.share(a.proxy, b.proxy):.0%}",
                f"{r.postgres_cpu:.0%}",
                f"{r.share(a.loadgen, b.loadgen):.0%}",
                ms(quantile(r.tally.late_s, 0.99)),
                f"{r.load_average:.1f}",
                "yes" if r.met else "NO",
            ]
        )
    return rows


SUMMARY = [
    "run", "servers", "agents", "polls/s (nominal)", "poll p50/p99 ms", "report p50/p99 ms",
    "server poll p99 ms", "failed", "servers CPU", "CPU/server", "CPU/1k agents", "CPU ms/cycle",
    "haproxy CPU", "postgres CPU", "loadgen CPU", "late p99 ms", "load", "p99<100ms",
]  # fmt: skip


def server_rows(runs: Sequence[Run]) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in runs:
        confs, statuses = r.histograms(CONF_ROUTE), r.histograms(STATUS_ROUTE)
        all_polls = sum(h.get(float("inf"), 0) for h in confs) or 1
        each = zip(confs, statuses, r.server_cpu, r.jobs, strict=True)
        for i, (conf, status, cpu, jobs) in enumerate(each):
            n = conf.get(float("inf"), 0)
            rows.append(
                [
                    r.label,
                    f"s{i}",
                    f"{n / r.wall_s:.0f}",
                    f"{n / all_polls:.0%}",
                    f"{ms(histogram_quantile(conf, 0.5))} / {ms(histogram_quantile(conf, 0.99))}",
                    f"{ms(histogram_quantile(status, 0.5))} / {ms(histogram_quantile(status, 0.99))}",
                    jobs,
                    f"{r.idle_cpu[i]:.0%}",
                    f"{cpu:.0%}",
                    f"{cpu * r.wall_s * 1000 / n:.2f}" if n else "-",
                    f"{(cpu - r.idle_cpu[i]) * r.wall_s * 1000 / n:.2f}" if n else "-",
                ]
            )
    return rows


SERVERS = [
    "run", "server", "polls/s", "share", "poll p50/p99 ms", "report p50/p99 ms", "jobs held", "idle CPU",
    "CPU", "CPU ms per poll+report", "idle CPU taken out",
]  # fmt: skip


def largest_rows(runs: Sequence[Run], args: argparse.Namespace) -> list[list[object]]:
    rows: list[list[object]] = []
    for count in args.servers:
        ran = [r for r in runs if r.label != "big" and r.servers == count]
        met = [r.agents for r in ran if r.met]
        missed = [r.agents for r in ran if not r.met]
        rows.append(
            [count, max(met) if met else "none", min(missed) if missed else f"none up to {max(args.agents)}"]
        )
    return rows


def report(runs: Sequence[Run], args: argparse.Namespace) -> None:
    cycles = f"{args.warmup_cycles} warm-up + {args.cycles} measured cycles of {args.interval:g} s each"
    print(f"\nruns ({cycles};")
    print(" CPU as a share of one core, the machine has 2; latency as the agents see it, through HAProxy):")
    print(table(SUMMARY, summary_rows(runs, args)))
    print("\neach server (server side, from its /metrics; CPU from /proc/<pid>/stat):")
    print(table(SERVERS, server_rows(runs)))
    target = f"poll p99 under {TARGET_P99_S * 1000:.0f} ms and no failure"
    print(f"\nlargest fleet with {target}, of {args.agents}:")
    print(table(["servers", "largest that met it", "smallest that missed"], largest_rows(runs, args)))
    for r in runs:
        if r.tally.failures:
            print(f"  {r.label}: first failures: {r.tally.failures[:3]}")


# --- the command --------------------------------------------------------------------------------------------


def counts(text: str) -> list[int]:
    return sorted(int(x) for x in text.split(","))


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=counts, default=[250, 500, 1000, 2000], help="fleets per server count")
    ap.add_argument("--servers", type=counts, default=[1, 2, 3], help="server counts (at most 3)")
    ap.add_argument("--big-agents", type=int, default=10_000, help="the big run's agents (0: no big run)")
    ap.add_argument("--big-servers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=10.0, help="agent poll interval, seconds")
    ap.add_argument("--warmup-cycles", type=int, default=1)
    ap.add_argument("--cycles", type=int, default=3, help="measured cycles per run")
    ap.add_argument(
        "--connections", type=int, default=128, help="shared keep-alive connections (0: one per cycle)"
    )
    ap.add_argument("--set-size", type=int, default=3, help="members per replica set (one project each)")
    ap.add_argument("--idle-seconds", type=float, default=5.0, help="servers' idle CPU read before a run")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--keep", type=Path, help="keep data dirs and logs under this directory")
    ap.add_argument(
        "--quick", action="store_true", help="a smoke run in under 2 minutes (small fleets, 3 s interval)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.agents, args.big_agents, args.interval, args.cycles, args.idle_seconds = [120], 300, 3.0, 1, 2.0
    if max(args.servers) > 3 or args.big_servers > 3 or min(args.servers) < 1:
        ap.error("between 1 and 3 servers")
    return args


def main() -> None:
    args = parse()
    print_header(
        f"agents polling every {args.interval:g} s through HAProxy to 1-3 opsmgr servers on one PostgreSQL"
    )
    print(
        f"  fleets {args.agents} on {args.servers} server(s); big run {args.big_agents} on {args.big_servers}"
    )
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="scaleout-", dir=args.keep))
            print(f"  keeping {root}")
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaleout-")))
        deployment = stack.enter_context(Deployment.running(root, args.interval))
        deployment.serve(1)
        api = Api(deployment.servers[0])
        stack.callback(api.close)
        agents = Agents(api, args.interval, args.set_size, random.Random(args.seed))
        agents.first(max(args.agents))
        runs: list[Run] = []
        try:
            scale_runs(deployment, agents, args, runs)
        except Exception as exc:  # the runs that ended are still worth their table
            print(f"  the runs stopped: {exc!r}", flush=True)
    report(runs, args)
    print(f"\n{agents.projects} projects; whole run {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()

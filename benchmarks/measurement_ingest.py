"""Measurement ingestion cost (issue 15): N agents (default 2,000) polling and reporting every ``--interval``
seconds to one ``opsmgr server``, twice in one run: reports without ``measurements`` (the baseline), then
with a full sample per process (host measurements, its data partition, ``--databases`` databases' dbStats)
whose values move each cycle as under a write load. Prints for both the poll and report latency p50/p99,
the p99 ratio against the target (with measurements within 20% of without), the server's CPU share, and
the bytes the application database keeps per process per day.

One replica set of ``--set-size`` members per project, made through the public API and at its goal version
before any agent starts. The agents (``_ingest_agents``) are asyncio tasks of this process on
``--connections`` shared keep-alive connections (0: one per cycle), each cycle a conf poll and a status
report, from a seeded random phase per agent. Time is real: a 10 s interval is 10 s. Each phase runs
``--warmup-cycles`` cycles, then ``--cycles`` measured ones (the warm-up opens every process's buckets:
the phase sees the steady state); ``--rounds N`` alternates the two phases N times and pools each kind
(less drift from other work).

Method. Latency, client side: first byte written to last byte read (connect and pool wait excluded), exact
quantiles; server side: the change of the ``/metrics`` histograms, interpolated in their coarse buckets.
CPU: utime+stime of the server process from /proc/<pid>/stat over the phase's wall time, a share of one
core. Stored bytes, read from the store once the run is over: per measurement collection
(``automation.measurements.COLLECTIONS``, granularity G), the mean payload of a row (length of ``id`` +
``doc``; a row is one process's bucket) times 86,400 / G buckets a day, summed over the collections; and
times the buckets retention keeps (``RETENTION_S``). The b-tree overhead: the growth of the ``documents``
table and its key index (SQLite ``dbstat``; PostgreSQL ``pg_total_relation_size``) over the phase against
the measurement payload's growth. The store's oplog: its entries for the measurement collections per
report, per process per day, and how soon they fill the oplog's default size cap.

Exit status 1 if a request failed (connection error, timeout, a poll not answered 304 or a report not 200).

    .venv/bin/python benchmarks/measurement_ingest.py [--agents 2000] [--interval 10] [--cycles 6]
        [--rounds 1] [--connections 128] [--databases 5] [--postgres] [--sample]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import (
    CONF_ROUTE,
    STATUS_ROUTE,
    Api,
    MetricsReading,
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
    running_server,
    set_sizes,
    summarise_samples,
    table,
    workdir,
)
from benchmarks._ingest_agents import Agent, Connections, Tally, Workload, run_cycles

from opsmgr.automation.measurements import COLLECTIONS, RETENTION_S
from opsmgr.conf import read_conf
from opsmgr.server.settings import CONF_NAME
from opsmgr.store.backing import APP
from opsmgr.store.engine import normalise_url
from tests.pgserver import FAST, PgServer
from tests.procs import ServerProcess

TARGET_RATIO = 1.20
DAY_S = 86_400
MB = 1024 * 1024
OPLOG_CAP_MB = 512  # mms.store.oplogMaxSizeMB by default
LABELS = ("without", "with")  # the phases: reports without measurements, then with them


# --- readings -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreReading:
    payload: dict[str, int]  # measurement collection -> bytes of id + doc of its rows
    rows: dict[str, int]
    oplog_entries: int
    oplog_bytes: int  # the entries' ``size``: doc + id + 32
    table_bytes: int | None  # documents (and its key index) as allocated; None where not read


class StoreProbe:
    """Read-only queries on the server's application database (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(normalise_url(url))
        self.colls = list(COLLECTIONS.values())

    def read(self) -> StoreReading:
        colls: Any = sa.bindparam("colls", expanding=True)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT coll, count(*), sum(length(id) + length(doc)) FROM documents"
                    " WHERE coll IN :colls GROUP BY coll"
                ).bindparams(colls),
                {"colls": self.colls},
            ).all()
            entries, size = conn.execute(
                sa.text("SELECT count(*), coalesce(sum(size), 0) FROM oplog WHERE ns IN :colls").bindparams(
                    colls
                ),
                {"colls": self.colls},
            ).one()
            table_bytes = self._table_bytes(conn)
        return StoreReading(
            {c: int(n or 0) for c, _, n in rows},
            {c: int(k) for c, k, _ in rows},
            int(entries),
            int(size),
            table_bytes,
        )

    def _table_bytes(self, conn: sa.Connection) -> int | None:
        if self.engine.dialect.name == "postgresql":
            return int(conn.execute(sa.text("SELECT pg_total_relation_size('documents')")).scalar_one())
        try:
            value = conn.execute(
                sa.text(
                    "SELECT sum(pgsize) FROM dbstat"
                    " WHERE name IN ('documents', 'sqlite_autoindex_documents_1')"
                )
            ).scalar_one()
        except sa.exc.OperationalError:  # an SQLite built without dbstat
            return None
        return int(value or 0)

    def close(self) -> None:
        self.engine.dispose()


def app_db_url(server: ServerProcess) -> str:
    uri = read_conf(server.data_dir / CONF_NAME)[APP.conf_key]
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(server.data_dir / uri[len(prefix) :])
    return uri


@dataclass
class Phase:
    """One measured phase (or several of a kind, :meth:`then`): the agents' tally, the server's readings over
    it, the store's around the (first) phase and its warm-up (what its reports stored) and how many reports
    that was."""

    label: str
    tally: Tally
    wall_s: float
    server_cpu_s: float
    loadgen_cpu_s: float
    histograms: dict[str, dict[float, int]]  # route -> the change of its /metrics histogram
    server_errors: int  # 5xx answers on the agent routes (/metrics)
    store: tuple[StoreReading, StoreReading]
    reports: int

    def cpu_per_cycle_s(self) -> float:
        return self.server_cpu_s / max(1, len(self.tally.late_s))

    def server_side(self, route: str, q: float) -> float | None:
        return histogram_quantile(self.histograms[route], q)

    def then(self, later: Phase) -> Phase:
        """This phase and a later one of its kind as one; the store's readings stay this one's."""
        mine, theirs = self.tally, later.tally
        tally = Tally(
            {route: v + theirs.latencies[route] for route, v in mine.latencies.items()},
            mine.late_s + theirs.late_s,
            mine.failures + theirs.failures,
        )
        histograms = {
            route: {le: n + later.histograms[route].get(le, 0) for le, n in h.items()}
            for route, h in self.histograms.items()
        }
        wall, cpu = self.wall_s + later.wall_s, self.server_cpu_s + later.server_cpu_s
        own, errors = self.loadgen_cpu_s + later.loadgen_cpu_s, self.server_errors + later.server_errors
        return Phase(self.label, tally, wall, cpu, own, histograms, errors, self.store, self.reports)


def server_errors(before: MetricsReading, after: MetricsReading) -> int:
    return sum(
        n - before.statuses.get(key, 0)
        for key, n in after.statuses.items()
        if key[0] in (CONF_ROUTE, STATUS_ROUTE) and key[1] >= 500
    )


async def measure_phase(
    label: str,
    agents: list[Agent],
    server: ServerProcess,
    probe: StoreProbe,
    pool: Connections,
    args: argparse.Namespace,
) -> Phase:
    assert server.proc is not None
    measured, store0 = label == "with", probe.read()
    warm = await run_cycles(agents, pool, args.warmup_cycles, args.interval, measured)
    before = read_metrics(server.url)
    cpu0, own0, t0 = cpu_seconds(server.proc.pid), cpu_seconds(os.getpid()), time.monotonic()
    tally = await run_cycles(agents, pool, args.cycles, args.interval, measured)
    wall = time.monotonic() - t0
    server_cpu, own_cpu = cpu_seconds(server.proc.pid) - cpu0, cpu_seconds(os.getpid()) - own0
    tally.failures[:0] = warm.failures
    reports = len(warm.latencies["report"]) + len(tally.latencies["report"])
    after, store = read_metrics(server.url), (store0, probe.read())
    histograms = {route: histogram_delta(before, after, route) for route in (CONF_ROUTE, STATUS_ROUTE)}
    errors = server_errors(before, after)
    print(f"  phase {label} measurements: {wall:.0f} s, {len(tally.failures)} failed requests", flush=True)
    return Phase(label, tally, wall, server_cpu, own_cpu, histograms, errors, store, reports)


# --- the run ------------------------------------------------------------------------------------------------


def make_agents(api: Api, args: argparse.Namespace) -> list[Agent]:
    t0 = time.monotonic()
    projects = create_projects(api, set_sizes(args.agents, args.set_size), "ingest")
    configs = api.map(
        lambda p: put_config(api, p, replica_set_config(list(p.hosts), rs=f"rs-{p.name}"))[1], projects
    )
    print(f"  {len(projects)} projects created and configured in {time.monotonic() - t0:.0f} s", flush=True)
    rng = random.Random(args.seed)
    agents = []
    for project, version in zip(projects, configs, strict=True):
        writes = rng.lognormvariate(4, 1)  # ~55 writes/s per set, from a few to many hundreds
        clients = rng.randint(5, 200)
        for member in range(len(project.hosts)):
            workload = Workload.start(member == 0, writes, clients, args.databases, rng.randrange(2**32))
            agents.append(Agent(project, member, version, rng.uniform(0, args.interval), workload))
    return agents


@contextlib.contextmanager
def app_database(use_postgres: bool) -> Iterator[dict[str, str]]:
    """The server's ``conf-mms.properties`` keys for its application database: none (the embedded SQLite
    file), or a database on a throwaway PostgreSQL (fsync off: the disk of this machine is not measured)."""
    if not use_postgres:
        yield {}
        return
    with PgServer(FAST) as pg:
        yield {APP.conf_key: pg.create_database("ingest")}


Hot = list[tuple[str, int, int]]  # summarise_samples: function, samples in stack, samples on top


def run(args: argparse.Namespace) -> tuple[list[Phase], Hot]:
    with workdir(args.keep, "ingest-") as tmp, app_database(args.postgres) as conf:
        sample_to = tmp / "samples-server" if args.sample else None
        with running_server(tmp, args.interval, conf=conf, sample_to=sample_to) as server:
            phases = drive(server, args)
        return phases, summarise_samples(tmp.glob("samples-server.*"), top=40) if args.sample else []


def drive(server: ServerProcess, args: argparse.Namespace) -> list[Phase]:
    api = Api(server)
    probe = StoreProbe(app_db_url(server))
    try:
        agents = make_agents(api, args)

        async def phases() -> list[Phase]:
            pool = Connections(server.port, args.connections)
            done = [
                await measure_phase(label, agents, server, probe, pool, args)
                for _ in range(args.rounds)
                for label in LABELS
            ]
            return [functools.reduce(Phase.then, [p for p in done if p.label == label]) for label in LABELS]

        return asyncio.run(phases())
    finally:
        probe.close()
        api.close()


# --- the report ---------------------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def latency_rows(base: Phase, meas: Phase) -> list[tuple[str, str, str, str]]:
    rows = []
    for route, name in (("poll", CONF_ROUTE), ("report", STATUS_ROUTE)):
        for q in (0.5, 0.99):
            a, b = quantile(base.tally.latencies[route], q), quantile(meas.tally.latencies[route], q)
            rows.append((f"{route} p{q * 100:g} ms, client side", ms(a), ms(b), _ratio_cell(b, a)))
        for q in (0.5, 0.99):
            a, b = base.server_side(name, q), meas.server_side(name, q)
            rows.append(
                (f"{route} p{q * 100:g} ms, server side (histogram)", ms(a), ms(b), _ratio_cell(b, a))
            )
    return rows


def _ratio_cell(value: float | None, baseline: float | None) -> str:
    r = ratio(value, baseline)
    return "-" if r is None else f"{r:.2f}"


def load_rows(base: Phase, meas: Phase, interval_s: float) -> list[tuple[str, str, str, str]]:
    def row(label: str, fn: Any, fmt: str) -> tuple[str, str, str, str]:
        a, b = fn(base), fn(meas)
        return (label, format(a, fmt), format(b, fmt), _ratio_cell(b, a))

    return [
        row("server CPU, share of one core", lambda p: p.server_cpu_s / p.wall_s, ".1%"),
        row("server CPU ms per agent cycle", lambda p: 1000 * p.cpu_per_cycle_s(), ".2f"),
        row("agents one core serves at this interval", lambda p: interval_s / p.cpu_per_cycle_s(), ".0f"),
        row("load generator CPU, share of one core", lambda p: p.loadgen_cpu_s / p.wall_s, ".1%"),
        row("agent cycles per second", lambda p: len(p.tally.late_s) / p.wall_s, ".1f"),
        row(
            "cycles started > 1 s late (the previous one slow)",
            lambda p: sum(x > 1 for x in p.tally.late_s),
            "d",
        ),
        row("max cycle start lag, s", lambda p: max(p.tally.late_s, default=0.0), ".2f"),
        row("failed requests", lambda p: len(p.tally.failures), "d"),
        row("server 5xx on the agent routes (/metrics)", lambda p: p.server_errors, "d"),
    ]


def storage_report(meas: Phase, agents: int, interval_s: float) -> list[str]:
    before, after = meas.store
    rows, per_day, at_retention = [], 0.0, 0.0
    for granularity_s, coll in sorted(COLLECTIONS.items()):
        n = after.rows.get(coll, 0)
        bucket = after.payload.get(coll, 0) / n if n else 0.0
        per_day += bucket * DAY_S / granularity_s
        at_retention += bucket * RETENTION_S[granularity_s] / granularity_s
        rows.append(
            (coll, n, f"{n / agents:.2f}", f"{bucket:.0f}" if n else "- (run longer)", DAY_S // granularity_s)
        )
    lines = [
        table(["collection", "rows", "rows per process", "bytes per row", "buckets a day"], rows),
        f"stored payload per process per day: {per_day / 1024:.1f} KiB (bytes per row x buckets a day)",
        "stored payload per process at retention (48 h of minutes, 60 days of hours):"
        f" {at_retention / MB:.2f} MiB; for {agents} processes: {at_retention * agents / 1024**3:.2f} GiB",
    ]
    lines += _allocated_lines(meas, per_day)
    entries = after.oplog_entries - before.oplog_entries
    per_report = (after.oplog_bytes - before.oplog_bytes) / max(1, meas.reports)
    oplog_day = per_report * DAY_S / interval_s
    fill_min = OPLOG_CAP_MB * MB / max(1.0, oplog_day * agents) * 24 * 60
    lines.append(
        f"store oplog: {entries / max(1, meas.reports):.2f} entries ({per_report:.0f} bytes) per report"
        f" for the measurement collections = {oplog_day / MB:.1f} MiB per process per day; {agents} processes"
        f" fill the default {OPLOG_CAP_MB} MiB cap in {fill_min:.0f} min (then it drops older entries of"
        " every collection)"
    )
    return lines


def _allocated_lines(meas: Phase, per_day: float) -> list[str]:
    before, after = meas.store
    if after.table_bytes is None or before.table_bytes is None:
        return []
    grown = after.table_bytes - before.table_bytes
    payload = sum(after.payload.values()) - sum(before.payload.values())
    factor = ratio(grown, payload)
    if factor is None:
        return []
    return [
        f"documents table + key index grew {grown / MB:.1f} MiB for {payload / MB:.1f} MiB of measurement"
        f" payload: x{factor:.2f}; about {per_day * factor / 1024:.0f} KiB allocated per process per day"
    ]


def report(phases: list[Phase], args: argparse.Namespace) -> int:
    base, meas = phases
    print(
        f"\n{args.agents} agents, a cycle (conf poll + status report) every {args.interval:g} s, "
        f"{args.cycles} measured cycles per phase after {args.warmup_cycles} warm-up, {args.rounds} round(s)"
    )
    print(
        table(
            ["figure", "without", "with", "with/without"],
            latency_rows(base, meas) + load_rows(base, meas, args.interval),
        )
    )
    print(
        "latency: client side from the request's first byte written to the answer's last byte read (connect"
        " and pool wait excluded); server side from the /metrics histograms. CPU: the server's utime+stime"
        " (/proc/<pid>/stat) over the phase's wall time.\n\nstored bytes, read from the application"
        " database after the run. Method: a row of a measurement collection is one process's bucket; its"
        " payload is length(id) + length(doc); per process per day = mean payload of a row x buckets a day"
        " (86,400 s / the collection's granularity), summed over the collections; at retention likewise x"
        " the buckets retention keeps."
    )
    for line in storage_report(meas, args.agents, args.interval):
        print(line)
    verdicts = []
    for route in ("poll", "report"):
        r = ratio(quantile(meas.tally.latencies[route], 0.99), quantile(base.tally.latencies[route], 0.99))
        verdicts.append(r is not None and r <= TARGET_RATIO)
        print(
            f"target: {route} p99 with measurements within {TARGET_RATIO - 1:.0%} of without (client side): "
            f"{'met' if verdicts[-1] else 'MISSED'} (ratio {'-' if r is None else f'{r:.2f}'})"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other work on the machine inflates latencies)")
    failures = base.tally.failures + meas.tally.failures
    if failures:
        print(f"\n{len(failures)} failed requests; the first: {failures[:5]}")
        return 1
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between an agent's cycles")
    ap.add_argument("--cycles", type=int, default=6, help="measured cycles per phase")
    ap.add_argument(
        "--rounds", type=int, default=1, help="alternate the two phases this many times (pooled: less drift)"
    )
    ap.add_argument("--warmup-cycles", type=int, default=1, help="cycles before each phase's measurement")
    ap.add_argument("--set-size", type=int, default=3, help="members per replica set (one project each)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument(
        "--connections",
        type=int,
        default=128,
        help="keep-alive connections the agents share (agent.fleet's pool); 0: a new one per cycle",
    )
    ap.add_argument(
        "--databases", type=int, default=5, help="databases per process sampled (0: no disks, no databases)"
    )
    ap.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL as application database")
    ap.add_argument("--sample", action="store_true", help="diagnosis: sample the server's stacks")
    ap.add_argument("--keep", type=Path, help="keep the data dir and logs under this directory")
    args = ap.parse_args()
    print_header(
        f"measurement ingestion: {args.agents} agents reporting every {args.interval:g} s, "
        f"without and with measurements ({'PostgreSQL' if args.postgres else 'SQLite'} application database)"
    )
    phases, hot = run(args)
    status = report(phases, args)
    if hot:
        print("\nbusiest server functions, both phases (stack samples every 5 ms; in stack / on top):")
        for name, inclusive, own in hot:
            print(f"  {inclusive:7d} {own:7d}  {name}")
    sys.exit(status)


if __name__ == "__main__":
    main()

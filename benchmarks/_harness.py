"""Shared pieces of the fleet benchmarks (time_to_goal, fleet_load, restoration_exit): a real
``opsmgr server`` process on a loopback port with a chosen agent poll interval, projects made through the
public API, a simulated fleet in a process of its own, and readings of both processes from ``/proc`` and
``/metrics``.

The fleet process is this file run as a script: ``python benchmarks/_harness.py fleet SPEC.json`` runs
``agent.fleet.fleet_main`` for the hosts SPEC lists (hosts of several projects in one process, which
``opsmgr fleet`` cannot do: it takes one project). With ``OPSMGR_BENCH_PROFILE=FILE`` in its environment it
runs under cProfile and writes the statistics to FILE.<pid> when it stops; with
``OPSMGR_BENCH_SAMPLE=FILE`` a stack sampler watches every thread and writes collapsed stacks to FILE.<pid>
(``python benchmarks/_harness.py server ARGS`` does the same for ``opsmgr server ARGS``). With
``OPSMGR_BENCH_NO_BACKUP_TASK=1`` the agents' backup task is idle: a diagnosis, never the default.

Everything started here is stopped by the context manager or ``stop`` method that started it, by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opsmgr.agent.state import atomic_write  # noqa: E402
from opsmgr.server.settings import CONF_NAME, embedded_defaults  # noqa: E402
from tests.configs import replica_set_config  # noqa: E402
from tests.procs import ServerProcess, free_port, wait_for  # noqa: E402

T = TypeVar("T")
CONF_ROUTE = "/agents/api/automation/conf/v1/{group_id}"
STATUS_ROUTE = "/agents/api/automation/status/v1/{group_id}"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
API_THREADS = 4

__all__ = ["replica_set_config", "wait_for"]


def command_line() -> str:
    """The command that ran this benchmark, as a reader would type it again."""
    script = os.path.relpath(sys.argv[0], REPO) if Path(sys.argv[0]).exists() else sys.argv[0]
    return shlex.join([".venv/bin/python", script, *sys.argv[1:]])


def print_header(title: str) -> None:
    print(title)
    print(f"command: {command_line()}  (in {REPO})")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start", flush=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-th quantile of measured values (the nearest rank), None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# --- the server ---------------------------------------------------------------------------------------------


def set_conf(data_dir: Path, values: dict[str, str]) -> None:
    """Set keys of ``conf-mms.properties`` (replacing earlier lines for the same keys)."""
    conf = data_dir / CONF_NAME
    lines = [line for line in conf.read_text().splitlines() if line.split("=", 1)[0].strip() not in values]
    conf.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")


def new_server(root: Path, poll_interval_s: float, *, name: str = "data") -> ServerProcess:
    """An ``opsmgr server --data-dir`` (not started) whose agents are told to poll every ``poll_interval_s``:
    the embedded setup is created first so that the poll interval is in its configuration from the start."""
    data_dir = root / name
    port = free_port()
    embedded_defaults(data_dir, port)
    set_conf(data_dir, {"mms.agent.pollIntervalSeconds": repr(poll_interval_s)})
    return ServerProcess(data_dir, port)


@contextlib.contextmanager
def workdir(keep: Path | None, prefix: str) -> Iterator[Path]:
    """A scratch directory, removed afterwards unless ``keep`` names where to leave it (logs, data dirs)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=keep))
        print(f"  keeping {path}", flush=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


class SampledServer(ServerProcess):
    """``opsmgr server`` run through this file so that :class:`StackSampler` watches it (``sample_to``)."""

    sample_to: Path | None = None

    def start(self, wait: bool = True) -> ServerProcess:
        if self.sample_to is None:
            return super().start(wait)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server-{self.port}.log"
        args = ["server", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, "OPSMGR_BENCH_SAMPLE": str(self.sample_to)},
            )
        if wait:
            self.wait_ready()
        return self


@contextlib.contextmanager
def running_server(
    root: Path, poll_interval_s: float, *, sample_to: Path | None = None, conf: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A started server; ``conf``: more ``conf-mms.properties`` keys (another application database...)."""
    base = new_server(root, poll_interval_s)
    if conf:
        set_conf(base.data_dir, conf)
    server = SampledServer(base.data_dir, base.port)
    server.sample_to = sample_to
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- the public API -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    group_id: str
    agent_key: str
    hosts: tuple[str, ...]
    name: str


class Api:
    """Digest-authenticated public API clients, one per thread (Digest nonce counts are per client)."""

    def __init__(self, server: ServerProcess, key: dict[str, Any] | None = None) -> None:
        self.server = server
        self.key = key or server.create_key()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(API_THREADS, thread_name_prefix="bench-api")

    @property
    def client(self) -> httpx.Client:
        c = getattr(self._local, "client", None)
        if c is None:
            c = self.server.client(self.key)
            c.timeout = httpx.Timeout(60.0)
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def call(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201)) -> Any:
        r = self.client.request(method, path, json=body)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    def map(self, fn: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
        """``fn`` over ``items`` on the API threads (a few requests in flight, as a busy operator's tools)."""
        return list(self.pool.map(fn, items))

    def close(self) -> None:
        self.pool.shutdown()
        for c in self._clients:
            c.close()


def create_projects(api: Api, sizes: Sequence[int], prefix: str) -> list[Project]:
    """One project per entry of ``sizes``, each with an agent API key and that many simulated hostnames."""

    def make(index: int) -> Project:
        name = f"{prefix}-{index:04d}"
        group_id = api.call("POST", "/groups", {"name": name})["id"]
        key = api.call("POST", f"/groups/{group_id}/agentapikeys", {"desc": "benchmark fleet"})["key"]
        hosts = tuple(f"h{m}.{name}.bench.sim" for m in range(sizes[index]))
        return Project(group_id, key, hosts, name)

    return api.map(make, range(len(sizes)))


def put_config(api: Api, project: Project, config: dict[str, Any]) -> tuple[float, int]:
    """PUT a project's automation config: (wall-clock time the request was sent, the new version)."""
    sent = time.time()
    version = int(api.call("PUT", f"/groups/{project.group_id}/automationConfig", config)["version"])
    return sent, version


def set_sizes(agents: int, set_size: int) -> list[int]:
    """``agents`` hosts as replica sets of ``set_size`` members; the remainder joins the last set."""
    sizes = [set_size] * max(1, agents // set_size)
    sizes[-1] += agents - sum(sizes)
    return sizes


# --- goal state ---------------------------------------------------------------------------------------------


@dataclass
class GoalWatch:
    """When every process of each project first reported the goal version, from ``automationStatus``.

    A process's goal time is the ``lastReport`` of the first reading that shows it at goal: exact while the
    readings come more often than the agents report (each reading shows the newest report), otherwise an
    upper bound. ``seen`` is when the reading itself was taken, for comparison.
    """

    api: Api
    projects: Sequence[Project]
    versions: dict[str, int]  # group id -> goal version awaited
    reached: dict[str, float] = field(default_factory=dict)  # group id -> goal time (epoch s)
    seen: dict[str, float] = field(default_factory=dict)
    _process_times: dict[str, dict[str, float]] = field(default_factory=dict)

    def _read(self, project: Project) -> None:
        status = self.api.call("GET", f"/groups/{project.group_id}/automationStatus")
        want = self.versions[project.group_id]
        if status["goalVersion"] != want or not status["processes"]:
            return
        times = self._process_times.setdefault(project.group_id, {})
        for p in status["processes"]:
            if p["lastGoalVersionAchieved"] == want and p["name"] not in times:
                times[p["name"]] = (p["lastReport"] or 0) / 1000
        if len(times) == len(status["processes"]):
            self.reached[project.group_id] = max(times.values())
            self.seen[project.group_id] = time.time()

    def wait(self, timeout_s: float) -> bool:
        """Read every project not yet at goal, over and over, until all are or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            todo = [p for p in self.projects if p.group_id not in self.reached]
            if not todo:
                return True
            started = time.monotonic()
            self.api.map(self._read, todo)
            # Never more than ~10 readings a second of any project: the watcher must not load the server.
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
        return not [p for p in self.projects if p.group_id not in self.reached]


# --- the fleet process --------------------------------------------------------------------------------------


@dataclass
class FleetProcess:
    """``fleet_main`` in a process of its own: one agent loop per host of ``projects``, one simulated
    world."""

    url: str
    projects: Sequence[Project]
    root: Path
    poll_interval_s: float
    max_connections: int | None = None  # None: the fleet's own pool size (what ``opsmgr fleet`` uses)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "fleet-process.log"

    @property
    def agents(self) -> int:
        return sum(len(p.hosts) for p in self.projects)

    def start(self) -> FleetProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        spec = self.root / "fleet-spec.json"
        # It holds the agent API keys: owner-only from its first byte, like the agents' own configs.
        atomic_write(
            spec,
            json.dumps(
                {
                    "url": self.url,
                    "pollInterval": self.poll_interval_s,
                    "maxConnections": self.max_connections,
                    "stateRoot": str(self.root / "hosts"),
                    "hosts": [[h, p.group_id, p.agent_key] for p in self.projects for h in p.hosts],
                }
            ).encode(),
        )
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "fleet", str(spec)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the fleet process exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Fleet:
    """The fleet as ``shards`` processes, split by project so that each replica set lives in one process's
    simulated world. One shard is what ``opsmgr fleet`` runs; more spread the agents over more cores."""

    shards: list[FleetProcess]

    @classmethod
    def split(
        cls,
        url: str,
        projects: Sequence[Project],
        root: Path,
        poll_interval_s: float,
        *,
        processes: int = 1,
        max_connections: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Fleet:
        count = max(1, min(processes, len(projects)))
        return cls(
            [
                FleetProcess(
                    url,
                    projects[i::count],
                    root / f"fleet{i}",
                    poll_interval_s,
                    max_connections,
                    {**(env or {})},
                )
                for i in range(count)
            ]
        )

    @property
    def agents(self) -> int:
        return sum(f.agents for f in self.shards)

    @property
    def pids(self) -> list[int]:
        return [f.pid for f in self.shards]

    def check(self) -> None:
        for f in self.shards:
            f.check()

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def memory_mb(self) -> tuple[float, float]:
        readings = [memory_mb(pid) for pid in self.pids]
        return sum(r for r, _ in readings), sum(p for _, p in readings)

    def describe(self) -> str:
        pool = self.shards[0].max_connections
        return (
            f"{self.agents} agents in {len(self.shards)} fleet process(es), "
            f"{'the fleet default' if pool is None else pool} pooled HTTP connections per process"
        )


@contextlib.contextmanager
def running_fleet(fleet: Fleet) -> Iterator[Fleet]:
    try:
        for f in fleet.shards:
            f.start()
        yield fleet
    finally:
        for f in fleet.shards:
            f.stop()


class StackSampler:
    """A poor man's sampling profiler for every thread of this process (py-spy is not installed): every
    ``interval_s`` it records each thread's stack that is not parked waiting; on exit it writes collapsed
    stacks (``frame;frame;... count``, outermost first) to ``path``, for :func:`summarise_samples`."""

    IDLE = frozenset({"select", "poll", "wait", "_worker", "sleep", "accept", "_wait_for_tstate_lock"})

    def __init__(self, path: Path, interval_s: float = 0.005) -> None:
        self.path, self.interval_s = path, interval_s
        self.counts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.path.write_text("".join(f"{stack} {n}\n" for stack, n in self.counts.items()))

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval_s):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                names = []
                f: Any = frame
                while f is not None:
                    code = f.f_code
                    names.append(f"{Path(code.co_filename).name}:{code.co_name}")
                    f = f.f_back
                if names[0].split(":")[1] in self.IDLE:
                    continue
                stack = ";".join(reversed(names))
                self.counts[stack] = self.counts.get(stack, 0) + 1


def summarise_samples(paths: Iterable[Path], top: int = 25) -> list[tuple[str, int, int]]:
    """(function, samples anywhere in the stack, samples at the top of the stack), busiest first."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            frames = stack.split(";")
            for name in set(frames):
                inclusive[name] = inclusive.get(name, 0) + int(n)
            own[frames[-1]] = own.get(frames[-1], 0) + int(n)
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    return [(name, n, own.get(name, 0)) for name, n in ranked]


async def _fleet_with_pool(
    url: str, hosts: Sequence[Any], state_root: Path, poll_s: float, connections: int
) -> None:
    """``fleet_main`` with another connection pool size: the same world, drivers and agents."""
    from opsmgr.agent.fleet import serve_fleet
    from opsmgr.agent.main import install_stop_signals, open_world
    from opsmgr.agent.settings import MEMORY_WORLD
    from opsmgr.drivers.sim import SimDriver

    stop = asyncio.Event()
    install_stop_signals(stop)
    sim = open_world(MEMORY_WORLD)
    try:
        await serve_fleet(
            url,
            hosts,
            state_root,
            lambda h: SimDriver(sim, h),
            stop,
            poll_interval_s=poll_s,
            max_connections=connections,
        )
    finally:
        sim.close()


def _without_backup_task() -> None:
    """Diagnosis only: each agent's backup tasks (restores, and the oplog shipper) wait for the stop instead,
    so that the automation poll path can be measured apart from them."""
    from opsmgr.agent.backup import BackupWorker
    from opsmgr.agent.shipper import Shipper

    async def idle(self: object, stop: asyncio.Event) -> None:
        await stop.wait()

    BackupWorker.run = idle  # type: ignore[method-assign]
    Shipper.run = idle  # type: ignore[method-assign]


def _fleet_child(spec_path: str) -> None:
    from opsmgr.agent.fleet import FleetHost, fleet_main
    from opsmgr.agent.main import quiet_http_logs
    from opsmgr.logs import setup_logging

    spec = json.loads(Path(spec_path).read_text())
    if os.environ.get("OPSMGR_BENCH_NO_BACKUP_TASK"):
        _without_backup_task()
    state_root = Path(spec["stateRoot"])
    state_root.mkdir(parents=True, exist_ok=True)
    setup_logging("INFO", state_root / "fleet.log")
    quiet_http_logs()
    hosts = [FleetHost(h, g, k) for h, g, k in spec["hosts"]]
    poll_s = float(spec["pollInterval"])
    run: Coroutine[Any, Any, Any]
    if spec.get("maxConnections"):
        run = _fleet_with_pool(spec["url"], hosts, state_root, poll_s, int(spec["maxConnections"]))
    else:
        run = fleet_main(spec["url"], hosts, state_root, poll_interval_s=poll_s)
    profile_to = os.environ.get("OPSMGR_BENCH_PROFILE")
    sample_to = os.environ.get("OPSMGR_BENCH_SAMPLE")
    if sample_to:
        with StackSampler(Path(f"{sample_to}.{os.getpid()}")):
            asyncio.run(run)
        return
    if not profile_to:
        asyncio.run(run)
        return
    profile_to = f"{profile_to}.{os.getpid()}"
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(run)
    finally:
        profiler.disable()
        profiler.dump_stats(profile_to)


# --- readings of a process and of /metrics ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident set size, its peak) in MiB, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


_BUCKET = re.compile(r'^opsmgr_http_request_duration_seconds_bucket\{route="(.*)",le="([^"]+)"\} (\d+)$')
_REQUESTS = re.compile(r'^opsmgr_http_requests_total\{method="[^"]*",route="(.*)",status="(\d+)"\} (\d+)$')


@dataclass(frozen=True)
class MetricsReading:
    buckets: dict[str, dict[float, int]]  # route -> upper bound -> cumulative count
    statuses: dict[tuple[str, int], int]  # (route, status) -> count

    def count(self, route: str) -> int:
        return self.buckets.get(route, {}).get(float("inf"), 0)


def read_metrics(url: str) -> MetricsReading:
    buckets: dict[str, dict[float, int]] = {}
    statuses: dict[tuple[str, int], int] = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if m := _BUCKET.match(line):
            buckets.setdefault(m[1], {})[float(m[2])] = int(m[3])
        elif m := _REQUESTS.match(line):
            key = (m[1], int(m[2]))
            statuses[key] = statuses.get(key, 0) + int(m[3])
    return MetricsReading(buckets, statuses)


def histogram_delta(before: MetricsReading, after: MetricsReading, route: str) -> dict[float, int]:
    old = before.buckets.get(route, {})
    return {le: n - old.get(le, 0) for le, n in after.buckets.get(route, {}).items()}


def histogram_quantile(cumulative: dict[float, int], q: float) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding the q-th request.
    Past the last finite bound it answers that bound (the true value is only known to be above it)."""
    bounds = sorted(cumulative)
    total = cumulative.get(float("inf"), 0)
    if total == 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for le in bounds:
        count = cumulative[le]
        if count >= rank:
            if le == float("inf"):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return bounds[-2] if len(bounds) > 1 else None


def share_above(cumulative: dict[float, int], bound: float) -> float:
    """Fraction of requests slower than ``bound`` seconds (``bound`` must be a bucket boundary)."""
    total = cumulative.get(float("inf"), 0)
    return (total - cumulative.get(bound, 0)) / total if total else 0.0


def iso_seconds(text: str | None) -> float | None:
    """Epoch seconds of an ISO-8601 UTC time as the API writes it (``2024-01-02T03:04:05.678Z``)."""
    if not text:
        return None
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _server_child(args: list[str]) -> None:
    from opsmgr.cli.main import app

    sample_to = Path(f"{os.environ['OPSMGR_BENCH_SAMPLE']}.{os.getpid()}")
    with StackSampler(sample_to), contextlib.suppress(SystemExit):
        app(args)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fleet":
        _fleet_child(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "server":
        _server_child(sys.argv[1:])
    else:
        sys.exit("usage: _harness.py fleet SPEC.json | _harness.py server ARGS (OPSMGR_BENCH_SAMPLE set)")

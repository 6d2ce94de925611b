"""The simulated agents of ``measurement_ingest.py``: asyncio tasks speaking raw HTTP/1.1 to a real server
(httpx would take much of the machine's cores from the server), each reporting for its host's one process
of a replica set at goal, with a sample whose values move each cycle as under a write load.

A cycle is the conf poll holding the goal version (answered 304) and the status report ``agent.loop`` sends
(``observe.status_observed``'s shape), echoing the work version the server last answered; the cycles run on
a fixed schedule from each agent's phase, the next starting late if one outlasts the interval. Connections
are shared and kept alive as ``agent.fleet``'s pool does, or (pool size 0) opened for each cycle, as agents
on hosts of their own have once the server closed theirs (it closes connections idle for 5 s).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks._harness import CONF_ROUTE, STATUS_ROUTE, Project

from opsmgr.automation.measurements import CATALOG
from opsmgr.sim.measure import DISK_BYTES, TICKETS, VIRTUAL_OVERHEAD_MB

MB = 1024 * 1024
DOC_BYTES = 600  # a written document with its index entries, for the disk and memory gauges
CACHE_MB = 4096.0  # WiredTiger's cache: where the resident set stops growing
REQUEST_TIMEOUT_S = 60.0
PARTITION = "xvdb"  # the data volume, as sim.measure names it
SYSTEM_DATABASES = ("admin", "config", "local")


# --- one agent ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One cycle's sample of a process, as ``agent.observe`` ships it: ``measurements`` of the host,
    ``disks`` (each partition's) and ``databases`` (each one's ``dbStats``)."""

    host: dict[str, float]
    disks: dict[str, dict[str, float]]
    databases: dict[str, dict[str, float]]


@dataclass
class Workload:
    """One process's ``serverStatus`` and ``dbStats`` figures, moved on each cycle as under its set's write
    load: the primary takes the writes and the queries, every member holds the data (disk, cache, databases)
    and answers commands."""

    primary: bool
    writes_per_s: float
    clients: int
    databases: int  # admin, config and local, then the application's
    counters: dict[str, float]
    disk_used: float
    resident_mb: float
    oplog_hours: float
    rng: random.Random

    @classmethod
    def start(cls, primary: bool, writes_per_s: float, clients: int, databases: int, seed: int) -> Workload:
        rng = random.Random(seed)
        # A process up for weeks: counters and disk already large (their digits are part of what is stored).
        counters = {name: float(rng.randint(10**5, 10**8)) for name, m in CATALOG.items() if m.counter}
        disk = rng.uniform(5, 50) * 1024**3
        resident, window = rng.uniform(300, 3000), rng.uniform(20, 90)
        return cls(primary, writes_per_s, clients, databases, counters, disk, resident, window, rng)

    def sample(self, dt: float) -> Sample:
        rng = self.rng
        writes = self.writes_per_s * dt * rng.uniform(0.5, 1.5)
        c = self.counters
        if self.primary:
            c["OPCOUNTER_INSERT"] += round(writes * 0.6)
            c["OPCOUNTER_UPDATE"] += round(writes * 0.3)
            c["OPCOUNTER_DELETE"] += round(writes * 0.1)
            c["OPCOUNTER_QUERY"] += round(writes * rng.uniform(1, 3))
        c["OPCOUNTER_GETMORE"] += round(dt * (2 if self.primary else 1))  # the secondaries tail the oplog
        c["OPCOUNTER_CMD"] += round(dt * (1 + (self.clients if self.primary else 2)) * rng.uniform(0.9, 1.1))
        c["EXTRA_INFO_PAGE_FAULTS"] += float(rng.random() < 0.05)
        self.disk_used += writes * DOC_BYTES
        self.resident_mb = min(CACHE_MB, self.resident_mb + writes * DOC_BYTES / MB)
        self.oplog_hours = max(1.0, self.oplog_hours + rng.uniform(-0.02, 0.01))
        busy = rng.randint(0, min(TICKETS, self.clients)) if self.primary else 0
        used, free = float(int(self.disk_used)), float(max(0, DISK_BYTES - int(self.disk_used)))
        host = {
            **c,
            "CONNECTIONS": float((self.clients if self.primary else 0) + 4 + rng.randint(0, 2)),
            "MEMORY_RESIDENT": round(self.resident_mb, 3),
            "MEMORY_VIRTUAL": round(self.resident_mb + VIRTUAL_OVERHEAD_MB, 3),
            "TICKETS_AVAILABLE_READS": float(TICKETS - rng.randint(0, 2)),
            "TICKETS_AVAILABLE_WRITE": float(TICKETS - busy),
            "DISK_PARTITION_SPACE_USED": used,
            "DISK_PARTITION_SPACE_FREE": free,
            "OPLOG_MASTER_TIME": round(self.oplog_hours, 6),
            "OPLOG_SLAVE_LAG_MASTER_TIME": 0.0 if self.primary else float(rng.choice((0, 0, 0, 1, 2))),
        }
        partition = {
            "DISK_PARTITION_SPACE_USED": used,
            "DISK_PARTITION_SPACE_FREE": free,
            "DISK_PARTITION_SPACE_PERCENT_USED": round(100 * used / DISK_BYTES, 3),
            "DISK_PARTITION_SPACE_PERCENT_FREE": round(100 * free / DISK_BYTES, 3),
        }
        return Sample(host, {PARTITION: partition} if self.databases else {}, self._db_stats())

    def _db_stats(self) -> dict[str, dict[str, float]]:
        names = [*SYSTEM_DATABASES, *(f"app{i}" for i in range(self.databases - len(SYSTEM_DATABASES)))]
        apps = max(1, self.databases - len(SYSTEM_DATABASES))
        # admin and config stay small; local is the oplog; the application's share the rest of the disk.
        sizes = {"admin": 40e3, "config": 120e3, "local": 990 * MB}
        return {
            name: db_stats(sizes.get(name, (self.disk_used - 1024**3) / apps), self.rng.uniform(200, 900))
            for name in names[: self.databases]
        }


def db_stats(data_bytes: float, object_bytes: float) -> dict[str, float]:
    """``dbStats`` of a database of ``data_bytes`` in documents of about ``object_bytes``."""
    objects = int(data_bytes / object_bytes)
    collections = 3 + objects % 7
    return {
        "DATABASE_OBJECT_COUNT": float(objects),
        "DATABASE_DATA_SIZE": float(int(data_bytes)),
        "DATABASE_AVERAGE_OBJECT_SIZE": round(data_bytes / objects, 3) if objects else 0.0,
        "DATABASE_STORAGE_SIZE": float(int(data_bytes * 0.45) // 4096 * 4096),
        "DATABASE_INDEX_SIZE": float(objects * 32 // 4096 * 4096),
        "DATABASE_COLLECTION_COUNT": float(collections),
        "DATABASE_INDEX_COUNT": float(collections + objects % 3),
        "DATABASE_VIEW_COUNT": 0.0,
    }


@dataclass
class Agent:
    """One simulated agent: its host's one process at goal, its requests, and the phase of its cycle."""

    project: Project
    member: int  # 0 is the primary
    version: int
    offset_s: float
    workload: Workload
    work_version: str | None = None

    @property
    def host(self) -> str:
        return self.project.hosts[self.member]

    @property
    def rs(self) -> str:
        return f"rs-{self.project.name}"

    def _head(self, method: str, path: str) -> str:
        auth = base64.b64encode(f"{self.project.group_id}:{self.project.agent_key}".encode()).decode()
        return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"

    def poll_request(self) -> bytes:
        path = CONF_ROUTE.format(group_id=self.project.group_id) + f"?hostname={self.host}&cv={self.version}"
        return (self._head("GET", path) + "\r\n").encode()

    def report_request(self, sample: Sample, measured: bool) -> bytes:
        body = json.dumps(self.report(sample, measured), separators=(",", ":")).encode()
        path = STATUS_ROUTE.format(group_id=self.project.group_id) + f"?hostname={self.host}"
        head = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return (self._head("POST", path) + head).encode() + body

    def report(self, sample: Sample, measured: bool) -> dict[str, Any]:
        """What ``agent.loop.status_body`` sends for a process at goal (``observe.status_observed``); the
        sample's maps only when ``measured``."""
        now_ms = int(time.time() * 1000)
        observed = {
            "hostname": self.host,
            "port": 27017,
            "running": True,
            "mode": "replset",
            "version": "7.0.5",
            "replicaSetName": self.rs,
            "replicaStateName": "PRIMARY" if self.member == 0 else "SECONDARY",
            "optimeTs": (now_ms // 1000) << 32 | 1,
            "connections": int(sample.host["CONNECTIONS"]),
            "lagSeconds": sample.host["OPLOG_SLAVE_LAG_MASTER_TIME"],
            "measurements": sample.host if measured else None,
            "disks": sample.disks if measured and sample.disks else None,
            "databases": sample.databases if measured and sample.databases else None,
        }
        process = {"name": f"{self.rs}_{self.member}", "lastGoalVersionAchieved": self.version, "plan": []}
        process |= dict.fromkeys(("currentStep", "stepIndex", "blockedReason", "errorText"))
        return {
            "hostname": self.host,
            "cv": self.version,
            "cvTimestamp": now_ms - 60_000,
            "cvHash": hashlib.sha256(f"{self.project.group_id}:{self.version}".encode()).hexdigest(),
            "workVersion": self.work_version,
            "lastGoalVersionAchieved": self.version,
            "statusSentence": "goal state: nothing to do",
            "timestamp": now_ms,
            "driver": "sim",
            "processes": [{**process, "observed": observed}],
        }


# --- the load -----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the agents saw in one phase."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"poll": [], "report": []})
    late_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, float]:
    """One request on a keep-alive connection: (status, body, seconds from first byte out to last byte in)."""
    started = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked answers are not read here")
    body = await reader.readexactly(length) if length else b""
    return int(head[9:12]), body, time.perf_counter() - started


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used_at: float = 0.0


class Connections:
    """The agents' HTTP connections: ``size`` kept alive and shared, as ``agent.fleet``'s pool does, or with
    size 0 a new one per cycle, as agents on hosts of their own have (the server closes keep-alive
    connections idle for 5 s, less than an interval)."""

    IDLE_S = 4.0  # under the server's keep-alive timeout: an older idle connection may be closing

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.idle: list[Connection] = []
        self.free = asyncio.Semaphore(size) if size else None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        if self.free is not None:
            await self.free.acquire()
        try:
            conn = self._reuse() or Connection(*await asyncio.open_connection("127.0.0.1", self.port))
            try:
                yield conn
            except BaseException:
                conn.writer.close()
                raise
            if self.size:
                conn.used_at = time.monotonic()
                self.idle.append(conn)
            else:
                conn.writer.close()
        finally:
            if self.free is not None:
                self.free.release()

    def _reuse(self) -> Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if now - conn.used_at < self.IDLE_S:
                return conn
            conn.writer.close()
        return None


async def one_cycle(agent: Agent, pool: Connections, sample: Sample, measured: bool, tally: Tally) -> None:
    async with pool.connection() as conn:
        status, _, seconds = await exchange(conn.reader, conn.writer, agent.poll_request())
        if status != 304:
            tally.failures.append(f"poll {agent.host}: HTTP {status}")
        tally.latencies["poll"].append(seconds)
        request = agent.report_request(sample, measured)
        status, body, seconds = await exchange(conn.reader, conn.writer, request)
    if status != 200:
        tally.failures.append(f"report {agent.host}: HTTP {status} {body[:200]!r}")
        return
    tally.latencies["report"].append(seconds)
    work = json.loads(body).get("work")
    if isinstance(work, dict):
        agent.work_version = work.get("version")


async def agent_cycles(
    agent: Agent,
    pool: Connections,
    start: float,
    cycles: int,
    interval_s: float,
    measured: bool,
    tally: Tally,
) -> None:
    loop = asyncio.get_running_loop()
    for k in range(cycles):
        due = start + agent.offset_s + k * interval_s
        await asyncio.sleep(max(0.0, due - loop.time()))
        tally.late_s.append(loop.time() - due)
        sample = agent.workload.sample(interval_s)
        try:
            await asyncio.wait_for(one_cycle(agent, pool, sample, measured, tally), REQUEST_TIMEOUT_S)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
        ) as exc:
            tally.failures.append(f"{agent.host}: {exc!r}")


async def run_cycles(
    agents: list[Agent], pool: Connections, cycles: int, interval_s: float, measured: bool
) -> Tally:
    tally = Tally()
    start = asyncio.get_running_loop().time()
    await asyncio.gather(*(agent_cycles(a, pool, start, cycles, interval_s, measured, tally) for a in agents))
    return tally

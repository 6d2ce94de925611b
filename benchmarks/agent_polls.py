"""Agent polls answered "unchanged" per second, with p50/p99 latency, against the same server answering a
bare endpoint with the same bytes, measured in the same run on this machine (load generator included).

    .venv/bin/python benchmarks/agent_polls.py [--pollers 64] [--seconds 10] [--procs 1]

The load generator speaks raw HTTP/1.1 keep-alive over asyncio streams, so that as little as possible of
the machine's two cores goes to generating load rather than answering it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.procs import ServerProcess, free_port


async def _poller(port: int, request: bytes, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 304"):
                raise RuntimeError(f"unexpected answer: {head[:60]!r}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def _load(port: int, request: bytes, pollers: int, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    latencies: list[float] = []

    async def main() -> None:
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(_poller(port, request, stop_at, latencies) for _ in range(pollers)))

    asyncio.run(main())
    out.put(latencies)


def measure(
    port: int, request: bytes, pollers: int, seconds: float, procs: int
) -> tuple[float, float, float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [
        multiprocessing.Process(target=_load, args=(port, request, max(1, pollers // procs), seconds, queue))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    latencies: list[float] = []
    for _ in workers:
        latencies += queue.get()
    for w in workers:
        w.join()
    latencies.sort()
    rate = len(latencies) / seconds
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return rate, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pollers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", free_port()).start()
        try:
            key = server.create_key()
            with server.client(key) as api:
                group = api.post("/groups", json={"name": "bench"}).json()["id"]
                agent_key = api.post(f"/groups/{group}/agentapikeys", json={"desc": "bench"}).json()["key"]
                config = {
                    "processes": [
                        {
                            "name": "p0",
                            "hostname": "h0.bench.sim",
                            "processType": "mongod",
                            "version": "7.0.5",
                            "args2_6": {"net": {"port": 27017}, "replication": {"replSetName": "rs"}},
                        }
                    ],
                    "replicaSets": [
                        {"_id": "rs", "members": [{"_id": 0, "host": "p0", "priority": 1, "votes": 1}]}
                    ],
                }
                version = api.put(f"/groups/{group}/automationConfig", json=config).json()["version"]
            auth = base64.b64encode(f"{group}:{agent_key}".encode()).decode()
            poll = (
                f"GET /agents/api/automation/conf/v1/{group}?hostname=h0.bench.sim&cv={version} HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\r\n"
            ).encode()
            bare = b"GET /agents/api/automation/noop HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            assert httpx.get(f"{server.url}/agents/api/automation/noop").status_code == 304
            measure(server.port, poll, args.pollers, 1.0, args.procs)  # warm up
            bare_rate, bare_p50, bare_p99 = measure(server.port, bare, args.pollers, args.seconds, args.procs)
            rate, p50, p99 = measure(server.port, poll, args.pollers, args.seconds, args.procs)
        finally:
            server.stop()
    print(f"pollers={args.pollers} seconds={args.seconds} loadgen_procs={args.procs}")
    print(f"bare 304 endpoint : {bare_rate:8.0f} req/s  p50 {bare_p50:6.2f} ms  p99 {bare_p99:6.2f} ms")
    print(f"agent polls (304) : {rate:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    print(
        f"polls / bare      : {rate / bare_rate:8.1%}"
        "   (target: >= 1000 polls/s, p99 < 50 ms, >= 70% of bare)"
    )


if __name__ == "__main__":
    main()

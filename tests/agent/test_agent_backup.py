"""The agent's backup module against a fake driver and a scripted server (httpx.MockTransport): initial
sync, slices that abut the acknowledged position, gap reports, only the primary's agent ships, and automated
restores that load only stopped processes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from opsmgr.agent.backup import BackupWorker
from opsmgr.agent.executor import LongActions
from opsmgr.agent.runtime import Runtime
from opsmgr.agent.work import WorkList
from opsmgr.backup.slices import decode_slice
from opsmgr.drivers.base import MemberState, OplogRecord, OplogWindow, ProcessObservation, RsStatus
from opsmgr.errors import OplogGap

GROUP = "g1"
BASE = f"http://server/agents/api/backup/v1/{GROUP}"


def ts(sec: int, inc: int = 0) -> int:
    return (sec << 32) | inc


@dataclass
class Driver:
    primary: bool = True
    running: bool = True
    oplog: list[OplogRecord] = field(default_factory=list)
    docs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    truncated_before: int = 0
    loaded: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def rs_status(self, name: str) -> RsStatus:
        state = MemberState.PRIMARY if self.primary else MemberState.SECONDARY
        return RsStatus("rs0", state, 1, (), 1)

    def oplog_window(self, name: str) -> OplogWindow:
        last = self.oplog[-1].ts if self.oplog else ts(100)
        return OplogWindow(1.0, 0.1, ts(1), last, 1.0)

    def dump(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        return list(self.docs)

    def oplog_read(self, name: str, after_ts: int, limit: int = 1000) -> list[OplogRecord]:
        if after_ts < self.truncated_before:
            raise OplogGap(after_ts, self.truncated_before)
        return [e for e in self.oplog if e.ts > after_ts][:limit]

    def observe(self, name: str) -> ProcessObservation:
        return ProcessObservation(name, self.running)

    def load(self, name: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        self.loaded[name] = docs


@dataclass
class Server:
    """Just enough of the agent backup routes: acknowledges slices that continue the tip."""

    tip: int | None = None
    restores: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    slices: list[tuple[int, int, list[dict[str, Any]]]] = field(default_factory=list)
    synced: list[list[Any]] = field(default_factory=list)

    # The config the agent holds: the restore target's process disabled by the server for the job.
    held: dict[str, Any] = field(
        default_factory=lambda: {"processes": [{"name": "dst_0", "hostname": "h0", "disabled": True}]}
    )

    def work(self) -> WorkList:
        """The agent's work list as the server's status answer gives it."""
        sources = ({"sourceId": "s1", "replicaSetName": "rs0", "processes": ["rs0_0"]},)
        return WorkList("v1", sources=sources, restores=tuple(self.restores))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Basic ")
        path = request.url.path.removeprefix(f"/agents/api/backup/v1/{GROUP}")
        body: Any = None
        if path.endswith("/slices"):
            upload = decode_slice(request.content)
            assert upload.start == self.tip, "a slice starts at the acknowledged position"
            self.slices.append((upload.start, upload.end, upload.entries))
            self.tip = upload.end
            body = {"status": "ACCEPTED", "acknowledged": self.tip, "chain": "c"}
        elif request.content:
            body = json.loads(request.content)
        self.requests.append((request.method, path, body))
        if path.endswith("/acknowledged"):
            if self.tip is None:
                return httpx.Response(200, json={"status": "SYNC_REQUIRED", "acknowledged": None})
            return httpx.Response(200, json={"status": "ACCEPTED", "acknowledged": self.tip})
        if path.endswith("/sync"):
            return httpx.Response(200, json={"syncId": "sync1"})
        if path.endswith("/documents") and request.method == "POST":
            self.synced += body["docs"]
            return httpx.Response(200, json={"loaded": len(body["docs"])})
        if path.endswith("/finish"):
            self.tip = body["minValid"]
            return httpx.Response(200, json={"status": "ACCEPTED", "acknowledged": self.tip})
        if path.endswith("/slices"):
            return httpx.Response(200, json=body)
        if path.endswith("/gap"):
            self.tip = None
            return httpx.Response(200, json={"status": "SYNC_REQUIRED", "acknowledged": None})
        if path.startswith("/restores/") and path.endswith("/documents"):
            lines = [json.dumps({"ns": "app.a", "doc": {"_id": i}}) for i in range(3)]
            return httpx.Response(200, text="\n".join(lines) + "\n")
        if path.endswith("/progress"):
            return httpx.Response(200, json={"statusName": "FINISHED"})
        return httpx.Response(404, json={"detail": path})


def entry(sec: int, inc: int, doc_id: int) -> OplogRecord:
    return OplogRecord(ts(sec, inc), "i", "app.a", {"_id": doc_id, "v": sec})


def step(driver: Driver, server: Server, max_entries: int = 2) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
            runtime = Runtime(http, "h0", "http://server", GROUP, "key", offload=False)
            long = LongActions("h0")
            worker = BackupWorker(
                runtime,
                driver,
                server.work,
                lambda: server.held,
                long,
                max_entries=max_entries,  # type: ignore[arg-type]
            )
            await worker.step()
            await long.wait()

    asyncio.run(go())


def test_initial_sync_then_slices_that_abut_the_acknowledged_position() -> None:
    driver = Driver(oplog=[entry(100, 1, 1)], docs=[("app.a", {"_id": 1, "v": 100})])
    server = Server()
    step(driver, server)
    assert server.synced == [["app.a", {"_id": 1, "v": 100}]]
    assert server.tip == ts(100, 1), "the sync's minValid is where slices start"

    driver.oplog += [entry(101, 1, 2), entry(101, 2, 3), entry(102, 1, 4)]
    step(driver, server)
    starts_ends = [(s, e) for s, e, _ in server.slices]
    assert starts_ends == [(ts(100, 1), ts(101, 2)), (ts(101, 2), ts(102, 1))], "cut at 2 entries, abutting"
    assert [x["o"]["_id"] for _, _, entries in server.slices for x in entries] == [2, 3, 4]
    assert server.tip == ts(102, 1)

    step(driver, server)
    assert len(server.slices) == 2, "nothing new, nothing shipped"


def test_only_the_primarys_agent_ships() -> None:
    driver = Driver(primary=False, oplog=[entry(100, 1, 1)])
    server = Server()
    step(driver, server)
    assert server.requests == [], "the work list came with the status answer: nothing to ask"


def test_a_gap_is_reported_and_the_next_step_resyncs() -> None:
    driver = Driver(oplog=[entry(100, 1, 1)], docs=[("app.a", {"_id": 1})])
    server = Server(tip=ts(50))
    driver.truncated_before = ts(90)
    step(driver, server)
    gaps = [b for _, p, b in server.requests if p.endswith("/gap")]
    assert gaps and gaps[0]["firstAvailable"] == ts(90)
    driver.truncated_before = 0
    step(driver, server)
    assert server.synced == [["app.a", {"_id": 1}]] and server.tip == ts(100, 1)


def test_restore_loads_only_stopped_processes_and_reports_them() -> None:
    restore = {"jobId": "j1", "processes": [{"name": "dst_0", "hostname": "h0"}]}
    driver = Driver(primary=False, running=True)
    server = Server(restores=[restore])
    step(driver, server)
    assert driver.loaded == {}, "a running process is left until automation stopped it"
    assert not any(p.endswith("/progress") for _, p, _ in server.requests)

    driver.running = False
    step(driver, server)
    assert driver.loaded["dst_0"] == [("app.a", {"_id": i}) for i in range(3)]
    reports = [b for _, p, b in server.requests if p.endswith("/progress")]
    assert reports == [{"processes": ["dst_0"], "state": "DONE", "detail": ""}]


def test_a_process_that_stopped_on_its_own_is_never_loaded() -> None:
    """Not disabled in the config the agent holds: automation starts it again; no restore touches it."""
    restore = {"jobId": "j1", "processes": [{"name": "dst_0", "hostname": "h0"}]}
    driver = Driver(primary=False, running=False)
    server = Server(restores=[restore])
    server.held = {"processes": [{"name": "dst_0", "hostname": "h0", "disabled": False}]}
    step(driver, server)
    assert driver.loaded == {}
    assert not any(p.endswith("/documents") or p.endswith("/progress") for _, p, _ in server.requests)

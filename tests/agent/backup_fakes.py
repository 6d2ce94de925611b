"""A fake driver of one replica set member and a scripted agent backup API (httpx.MockTransport), for the
agent's backup tests (``test_shipper``, ``test_agent_backup``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from opsmgr.agent.work import WorkList
from opsmgr.backup.wire import decode_slice
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
    reads: int = 0
    after_load: Callable[[str], None] | None = None  # e.g. the job cancelled while a process loads

    def rs_status(self, name: str) -> RsStatus:
        state = MemberState.PRIMARY if self.primary else MemberState.SECONDARY
        return RsStatus("rs0", state, 1, (), 1)

    def oplog_window(self, name: str) -> OplogWindow:
        last = self.oplog[-1].ts if self.oplog else ts(100)
        return OplogWindow(1.0, 0.1, ts(1), last, 1.0)

    def dump(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        return list(self.docs)

    def oplog_read(self, name: str, after_ts: int, limit: int = 1000) -> list[OplogRecord]:
        self.reads += 1
        if after_ts < self.truncated_before:
            raise OplogGap(after_ts, self.truncated_before)
        return [e for e in self.oplog if e.ts > after_ts][:limit]

    def observe(self, name: str) -> ProcessObservation:
        return ProcessObservation(name, self.running)

    def load(self, name: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        self.loaded[name] = docs
        if self.after_load is not None:
            self.after_load(name)


@dataclass
class Server:
    """Just enough of the agent backup routes: acknowledges slices that continue the tip."""

    tip: int | None = None
    restores: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    slices: list[tuple[int, int, list[dict[str, Any]]]] = field(default_factory=list)
    synced: list[list[Any]] = field(default_factory=list)
    ended: bool = False  # the restore job ended (cancelled): its progress reports are refused (409)

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
        if path.endswith("/progress") and self.ended:
            return httpx.Response(409, json={"detail": "restore job j1 is already CANCELLED"})
        if path.endswith("/progress"):
            return httpx.Response(200, json={"statusName": "FINISHED"})
        return httpx.Response(404, json={"detail": path})


def entry(sec: int, inc: int, doc_id: int) -> OplogRecord:
    return OplogRecord(ts(sec, inc), "i", "app.a", {"_id": doc_id, "v": sec})

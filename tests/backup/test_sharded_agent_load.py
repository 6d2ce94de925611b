"""An agent's part of a sharded cluster's automated restore (``agent.backup``), against a fake driver and a
scripted server: a host running members of several parts (here the config server set and a shard) loads
each member with its own part's documents, downloaded once per replica set (``?replicaSet=``)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import httpx

from opsmgr.agent.backup import BackupWorker
from opsmgr.agent.executor import LongActions
from opsmgr.agent.runtime import Runtime
from tests.agent.backup_fakes import GROUP, Driver, Server

MEMBERS = {"csrs_0": "csrs", "sh0_0": "sh0", "sh0_1": "sh0"}


def process(name: str) -> dict[str, object]:
    return {"name": name, "hostname": "h0", "args2_6": {"replication": {"replSetName": MEMBERS[name]}}}


@dataclass
class PartsServer(Server):
    """Serves each part's documents: those of the part restored into the asked ``replicaSet``."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(f"/agents/api/backup/v1/{GROUP}")
        if path.startswith("/restores/") and path.endswith("/documents"):
            self.requests.append((request.method, path, dict(request.url.params)))
            rs = request.url.params.get("replicaSet")
            lines = [
                json.dumps({"replicaSetName": rs, "ns": "app.a", "doc": {"_id": f"{rs}-{i}"}})
                for i in range(2)
            ]
            return httpx.Response(200, text="\n".join(lines) + "\n")
        return super().__call__(request)


def test_each_member_is_loaded_with_its_parts_documents_fetched_once_per_replica_set() -> None:
    restore = {"jobId": "j1", "processes": [process(n) for n in MEMBERS]}
    held = {"processes": [{"name": n, "hostname": "h0", "disabled": True} for n in MEMBERS]}
    server = PartsServer(restores=[restore], held=held)
    driver = Driver(primary=False, running=False)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
            runtime = Runtime(http, "h0", "http://server", GROUP, "key", offload=False)
            long = LongActions("h0")
            worker = BackupWorker(runtime, driver, server.work, lambda: server.held, long)  # type: ignore[arg-type]
            await worker.step()
            await long.wait()

    asyncio.run(go())
    for name, rs in MEMBERS.items():
        assert driver.loaded[name] == [("app.a", {"_id": f"{rs}-{i}"}) for i in range(2)], name
    fetched = [params for _, path, params in server.requests if path.endswith("/documents")]
    assert fetched == [{"replicaSet": "csrs"}, {"replicaSet": "sh0"}], "one download per replica set"
    reports = [(b["processes"], b["state"]) for _, p, b in server.requests if p.endswith("/progress")]
    assert reports == [([n], s) for n in MEMBERS for s in ("LOADING", "DONE")]

"""The agent's automated restores (``agent.backup``) against a fake driver and a scripted server
(httpx.MockTransport): restores that load only stopped processes the server disabled for the job, and stop
before the next process once the job is cancelled. (Shipping is ``test_shipper``'s.)"""

from __future__ import annotations

import asyncio

import httpx

from opsmgr.agent.backup import BackupWorker
from opsmgr.agent.executor import LongActions
from opsmgr.agent.runtime import Runtime
from tests.agent.backup_fakes import GROUP, Driver, Server


def step(driver: Driver, server: Server) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
            runtime = Runtime(http, "h0", "http://server", GROUP, "key", offload=False)
            long = LongActions("h0")
            worker = BackupWorker(runtime, driver, server.work, lambda: server.held, long)  # type: ignore[arg-type]
            await worker.step()
            await long.wait()

    asyncio.run(go())


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
    assert reports == [
        {"processes": ["dst_0"], "state": "LOADING", "detail": ""},
        {"processes": ["dst_0"], "state": "DONE", "detail": ""},
    ]


def test_a_process_that_stopped_on_its_own_is_never_loaded() -> None:
    """Not disabled in the config the agent holds: automation starts it again; no restore touches it."""
    restore = {"jobId": "j1", "processes": [{"name": "dst_0", "hostname": "h0"}]}
    driver = Driver(primary=False, running=False)
    server = Server(restores=[restore])
    server.held = {"processes": [{"name": "dst_0", "hostname": "h0", "disabled": False}]}
    step(driver, server)
    assert driver.loaded == {}
    assert not any(p.endswith("/documents") or p.endswith("/progress") for _, p, _ in server.requests)


TWO = {"processes": [{"name": f"dst_{i}", "hostname": "h0", "disabled": True} for i in range(2)]}


def test_a_cancelled_job_stops_the_loads_before_the_next_process() -> None:
    """The job leaves the work list while dst_0 loads: dst_0 completes and is reported, dst_1 is left."""
    restore = {"jobId": "j1", "processes": TWO["processes"]}
    server = Server(restores=[restore], held=TWO)
    driver = Driver(primary=False, running=False)
    driver.after_load = lambda name: server.restores.clear()
    step(driver, server)
    assert list(driver.loaded) == ["dst_0"]
    reports = [(b["processes"], b["state"]) for _, p, b in server.requests if p.endswith("/progress")]
    assert reports == [(["dst_0"], "LOADING"), (["dst_0"], "DONE")]


def test_a_refused_announcement_loads_nothing() -> None:
    """Cancelled between the work list's last answer and the load: the server refuses LOADING (409)."""
    restore = {"jobId": "j1", "processes": TWO["processes"]}
    server = Server(restores=[restore], held=TWO, ended=True)
    driver = Driver(primary=False, running=False)
    step(driver, server)
    assert driver.loaded == {}
    reports = [(b["processes"], b["state"]) for _, p, b in server.requests if p.endswith("/progress")]
    assert reports == [(["dst_0"], "LOADING")]

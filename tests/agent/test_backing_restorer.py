"""The backing agent's choice of the restore to carry out (no processes): the first of its work list it has
not ended, one at a time as the host's long action, and none while another long action runs. Its reports
while writing (a cancellation's statement is made of them): before each store it names the stores written
and the one next, and counts as having begun writing only once that was accepted; a job gone from its work
list is reported at the next batch, whatever the interval; a 409 answer stops it (RestoreCancelled)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsmgr.agent.backing import BackingConfig
from opsmgr.agent.backing_restorer import BackingRestorer, Bridge, RestoreCancelled
from opsmgr.agent.executor import LongAction, LongActions
from opsmgr.agent.work import WorkList
from opsmgr.errors import OpsmgrError


def restorer(jobs: list[dict[str, Any]], long: LongActions, carried: list[str]) -> BackingRestorer:
    work = WorkList(version="v1", backing_restores=tuple(jobs))
    r = BackingRestorer(None, BackingConfig(uris={}), lambda: work, long, Path("."))  # type: ignore[arg-type]

    async def carry_out(job: dict[str, Any]) -> None:
        carried.append(job["jobId"])

    r.carry_out = carry_out  # type: ignore[method-assign]
    return r


def test_the_first_job_not_ended_one_at_a_time() -> None:
    async def run() -> list[str]:
        carried: list[str] = []
        long = LongActions("primary.test")
        r = restorer([{"jobId": "j1"}, {"jobId": "j2"}], long, carried)
        r.ended.add("j1")
        await r.step()
        assert long.running is not None and "j2" in long.running.name
        await r.step()  # still running: nothing more is started
        await long.wait()
        return carried

    assert asyncio.run(run()) == ["j2"]


def test_nothing_starts_beside_another_long_action() -> None:
    async def run() -> list[str]:
        carried: list[str] = []
        long = LongActions("primary.test")
        gate = asyncio.Event()
        long.start(LongAction("an index build"), gate.wait)
        await restorer([{"jobId": "j1"}], long, carried).step()
        gate.set()
        await long.wait()
        return carried

    assert asyncio.run(run()) == []


@dataclass
class FakeSecondary:
    """The restorer as the bridge sees it: its work list and the secondary answering its reports."""

    listed: bool = True
    cancelled: bool = False
    reachable: bool = True
    reports: list[dict[str, Any]] = field(default_factory=list)

    def work(self) -> WorkList:
        return WorkList(version="v1", backing_restores=({"jobId": "j1"},) if self.listed else ())

    async def report(self, job_id: str, body: dict[str, Any], *, quiet: bool = False) -> bool:
        if self.cancelled:
            raise RestoreCancelled(f"restore job {job_id} was cancelled")
        if self.reachable:
            self.reports.append(body["progress"])
        return self.reachable


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The agent's event loop, in its own thread as the restore's thread calls into it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def bridge(secondary: FakeSecondary, loop: asyncio.AbstractEventLoop) -> Bridge:
    return Bridge(secondary, loop, "j1", every_s=3600.0)  # type: ignore[arg-type]


def test_before_each_store_the_written_ones_and_the_next_are_reported(
    loop: asyncio.AbstractEventLoop,
) -> None:
    secondary = FakeSecondary()
    b = bridge(secondary, loop)
    b.checkpoint("app")
    assert b.began and secondary.reports[-1]["written"] == [] and secondary.reports[-1]["writing"] == "app"
    b.progress("WRITING", 0.3, "app: 10")  # within the interval, the job listed: not sent
    assert len(secondary.reports) == 1
    b.checkpoint("snapshot")
    b.checkpoint(None)
    assert (
        secondary.reports[-1]["written"] == ["app", "snapshot"] and secondary.reports[-1]["writing"] is None
    )


def test_a_job_gone_from_the_work_list_is_reported_at_the_next_batch(loop: asyncio.AbstractEventLoop) -> None:
    secondary = FakeSecondary()
    b = bridge(secondary, loop)
    b.checkpoint("app")
    secondary.listed, secondary.cancelled = False, True
    with pytest.raises(RestoreCancelled):
        b.progress("WRITING", 0.3, "app: 10")


def test_cancelled_before_the_first_store_has_not_begun_writing(loop: asyncio.AbstractEventLoop) -> None:
    b = bridge(FakeSecondary(cancelled=True), loop)
    with pytest.raises(RestoreCancelled):
        b.checkpoint("app")
    assert not b.began  # so the agent removes its fences: nothing was written


def test_no_store_is_touched_unless_the_secondary_was_told(loop: asyncio.AbstractEventLoop) -> None:
    b = bridge(FakeSecondary(reachable=False), loop)
    with pytest.raises(OpsmgrError, match="could not be told"):
        b.checkpoint("app")
    assert not b.began

"""The backing agent's choice of the restore to carry out (no processes): the first of its work list it has
not ended, one at a time as the host's long action, and none while another long action runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from opsmgr.agent.backing import BackingConfig
from opsmgr.agent.backing_restorer import BackingRestorer
from opsmgr.agent.executor import LongAction, LongActions
from opsmgr.agent.work import WorkList


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

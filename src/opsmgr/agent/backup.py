"""The agent's backup module: ships the oplog of the replica sets whose PRIMARY runs on this host, and carries
out automated restores into this host's processes. It runs as its own asyncio task beside the automation
cycle (:meth:`BackupWorker.run`), one :meth:`BackupWorker.step` at a time, so backup never delays automation.

Per backed-up source (the agent's work list names them), the agent whose process is PRIMARY:

- asks where to resume (``acknowledged``: the daemon's tip), telling the daemon the newest entry of the
  source's oplog it sees (``sourceLast``, for the backup lag alert); on SYNC_REQUIRED it does an
  **initial sync**: the oplog position before ``driver.dump`` (``position``), the documents in chunks, and
  the position after (``minValid``);
- then tails ``driver.oplog_read`` from the acknowledged position and ships what it read as slices
  ``(acknowledged, last entry]``, cut at ``max_entries`` entries (size) and shipped every step (time, about
  ``interval_s``); the next slice starts where the daemon acknowledged, so restarts of either side resume
  exactly;
- on ``OplogGap`` reports the gap and resyncs at the next step.

An automated restore (``restores`` in the work list): the server disabled the target's processes in the
goal config, so the automation cycle stops them; once this host's are disabled in the config the agent
holds and stopped, the agent downloads the restored documents (the daemon replays up to the target
**inclusive**: the entry at exactly the target is applied), ``driver.load``s them into each as the host's
long action, and reports DONE; the server then enables the processes again and automation starts them on
the restored data. A process that stopped on its own is not disabled: it is never loaded.

May import ``opsmgr.agent``, ``opsmgr.automation.protocol``, ``opsmgr.backup.slices``,
``opsmgr.backup.crashpoints``, ``opsmgr.drivers`` and ``opsmgr.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from opsmgr.agent.client import AgentRequestFailed
from opsmgr.agent.executor import LongAction, LongActions
from opsmgr.agent.runtime import Runtime
from opsmgr.agent.work import WorkList
from opsmgr.automation.config import processes_on_host
from opsmgr.automation.protocol import BACKUP_PATH
from opsmgr.backup import crashpoints
from opsmgr.backup.slices import encode_slice
from opsmgr.drivers.base import Driver, MemberState
from opsmgr.errors import OplogGap, OpsmgrError

log = logging.getLogger("opsmgr.agent.backup")
T = TypeVar("T")
DOC_CHUNK = 2000


class BackupWorker:
    def __init__(
        self,
        runtime: Runtime,
        driver: Driver,
        work: Callable[[], WorkList],
        held: Callable[[], Mapping[str, Any] | None],
        long: LongActions,
        *,
        interval_s: float = 1.0,
        max_entries: int = 2000,
    ) -> None:
        """``work`` gives the agent's current work list (its sources and restores are this worker's), ``held``
        the automation config the agent holds; restore loads run as the host's long action (``long``)."""
        self.runtime = runtime
        self.driver = driver
        self.work = work
        self.held = held
        self.long = long
        self.hostname = runtime.hostname
        self.interval_s = interval_s
        self.max_entries = max_entries

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.runtime.run_blocking(fn, *args)

    async def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.runtime.send(method, BACKUP_PATH, path, **kw)

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return await self.runtime.send_json(method, BACKUP_PATH, path, **kw)

    # --- one step -------------------------------------------------------------------------------------------

    async def step(self) -> None:
        work = self.work()
        for source in work.sources:
            try:
                await self.ship(source)
            except OpsmgrError as exc:
                log.warning("%s: backup of %s: %s", self.hostname, source.get("replicaSetName"), exc.detail)
        for job in work.restores:
            await self.restore(job)

    async def _primary_here(self, names: list[str]) -> str | None:
        for name in names:
            try:
                status = await self._call(self.driver.rs_status, name)
            except OpsmgrError:
                continue
            if status is not None and status.my_state is MemberState.PRIMARY:
                return name
        return None

    async def ship(self, source: dict[str, Any]) -> None:
        """Initial sync when the daemon needs one, then every entry since the acknowledged position."""
        name = await self._primary_here(list(source.get("processes", [])))
        if name is None:
            return
        sid = source["sourceId"]
        window = await self._call(self.driver.oplog_window, name)
        seen = {"sourceLast": window.last_ts} if window is not None else {}
        ack = await self._json("GET", f"/sources/{sid}/acknowledged", params=seen)
        if ack["status"] == "SYNC_REQUIRED":
            ack = await self.initial_sync(sid, name)
        position = ack["acknowledged"]
        while True:
            try:
                entries = await self._call(self.driver.oplog_read, name, position, self.max_entries)
            except OplogGap as exc:
                log.warning("%s: oplog gap after %s on %s: resync", self.hostname, position, name)
                await self._json(
                    "POST",
                    f"/sources/{sid}/gap",
                    json={"firstAvailable": exc.first_available_ts, "detail": exc.detail},
                )
                return
            if not entries:
                return
            raw = [
                {"ts": e.ts, "op": e.op, "ns": e.ns, "o": e.o, **({"o2": e.o2} if e.o2 is not None else {})}
                for e in entries
            ]
            data = encode_slice(position, entries[-1].ts, raw)
            result = await self._json(
                "POST",
                f"/sources/{sid}/slices",
                content=data,
                headers={"content-type": "application/octet-stream"},
            )
            crashpoints.reached("agent-slice-upload")
            if result["status"] not in ("ACCEPTED", "DUPLICATE") or result["acknowledged"] is None:
                log.warning("%s: slice refused for %s: %s", self.hostname, name, result)
                return
            position = result["acknowledged"]
            if len(entries) < self.max_entries:
                return

    async def initial_sync(self, sid: str, name: str) -> dict[str, Any]:
        window = await self._call(self.driver.oplog_window, name)
        position = window.last_ts if window else 0
        docs = await self._call(self.driver.dump, name)
        after = await self._call(self.driver.oplog_window, name)
        min_valid = max(after.last_ts if after else 0, position)
        sync_id = (await self._json("POST", f"/sources/{sid}/sync", json={"position": position}))["syncId"]
        for i in range(0, len(docs), DOC_CHUNK):
            chunk = [[ns, doc] for ns, doc in docs[i : i + DOC_CHUNK]]
            await self._json("POST", f"/sources/{sid}/sync/{sync_id}/documents", json={"docs": chunk})
        log.info("%s: initial sync of %s: %d documents at %s", self.hostname, name, len(docs), position)
        return await self._json("POST", f"/sources/{sid}/sync/{sync_id}/finish", json={"minValid": min_valid})

    async def restore(self, job: dict[str, Any]) -> None:
        """Load the restored documents into this host's processes of the target once the job's processes are
        disabled in the config this agent holds (the server disabled them for the job) and stopped (automation
        stopped them): as the host's long action. A process that merely stopped is not disabled: automation
        starts it again, and it is never loaded."""
        job_id = job["jobId"]
        held = {p["name"]: p for p in processes_on_host(self.held() or {}, self.hostname)}
        names = [p["name"] for p in job["processes"] if held.get(p["name"], {}).get("disabled")]
        if not names or self.long.running is not None:
            return
        try:
            stopped = [n for n in names if not (await self._call(self.driver.observe, n)).running]
        except OpsmgrError as exc:
            log.warning(
                "%s: restore job %s: cannot observe its processes: %s", self.hostname, job_id, exc.detail
            )
            return
        if stopped:
            self.long.start(
                LongAction(f"restore job {job_id}: loading {', '.join(stopped)}", frozenset(stopped)),
                lambda: self._load(job_id, stopped),
            )

    async def _load(self, job_id: str, stopped: list[str]) -> None:
        try:
            response = await self._send("GET", f"/restores/{job_id}/documents")
            docs = [(d["ns"], d["doc"]) for d in map(json.loads, response.text.splitlines()) if d]
            for name in stopped:
                await self._call(self.driver.load, name, docs)
        except OpsmgrError as exc:
            log.error("%s: restore job %s failed: %s", self.hostname, job_id, exc.detail)
            await self._report(job_id, stopped, "FAILED", exc.detail)
            return
        await self._report(job_id, stopped, "DONE", "")
        log.warning(
            "%s: restore job %s: %d documents loaded into %s", self.hostname, job_id, len(docs), stopped
        )

    async def _report(self, job_id: str, names: list[str], state: str, detail: str) -> None:
        try:
            await self._json(
                "POST",
                f"/restores/{job_id}/progress",
                params={"hostname": self.hostname},
                json={"processes": names, "state": state, "detail": detail},
            )
        except AgentRequestFailed as exc:
            log.warning("%s: restore job %s: progress not delivered: %s", self.hostname, job_id, exc.detail)

    async def run(self, stop: asyncio.Event) -> None:
        """Steps until ``stop`` is set; a failed step is logged and retried after the interval."""
        while not stop.is_set():
            try:
                await self.step()
            except OpsmgrError as exc:
                log.debug("%s: backup step: %s", self.hostname, exc.detail)
            except Exception:  # backup must never take the agent down
                log.exception("%s: backup step failed", self.hostname)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

"""The agent's automated restores: loading restored documents into this host's processes. It runs as its
own asyncio task beside the automation cycle (:meth:`BackupWorker.run`), one :meth:`BackupWorker.step` at a
time. (Shipping the oplog of backed-up sources is ``agent.shipper``'s.)

An automated restore (``restores`` in the work list): the server disabled the target's processes in the
goal config, so the automation cycle stops them; once this host's are disabled in the config the agent
holds and stopped, the agent downloads the restored documents (the daemon replays up to the target
**inclusive**: the entry at exactly the target is applied), ``driver.load``s them into each as the host's
long action, one process at a time (LOADING before, DONE after each), and the server enables the processes
again once all are done: automation starts them on the restored data. A process that stopped on its own is
not disabled: it is never loaded. A cancelled job (``backup.restore_cancel``) leaves the work list: the
agent loads no further process (the one being loaded completes), and the server has enabled them all.

May import ``opsmgr.agent``, ``opsmgr.automation``, ``opsmgr.drivers`` and ``opsmgr.errors``.
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
from opsmgr.drivers.base import Driver
from opsmgr.errors import OpsmgrError

log = logging.getLogger("opsmgr.agent.backup")
T = TypeVar("T")


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
    ) -> None:
        """``work`` gives the agent's current work list (its restores are this worker's), ``held`` the
        automation config the agent holds; restore loads run as the host's long action (``long``)."""
        self.runtime = runtime
        self.driver = driver
        self.work = work
        self.held = held
        self.long = long
        self.hostname = runtime.hostname
        self.interval_s = interval_s

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.runtime.run_blocking(fn, *args)

    async def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.runtime.send(method, BACKUP_PATH, path, **kw)

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return await self.runtime.send_json(method, BACKUP_PATH, path, **kw)

    # --- one step -------------------------------------------------------------------------------------------

    async def step(self) -> None:
        for job in self.work().restores:
            await self.restore(job)

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
            sets = {p["name"]: _replica_set(p) for p in job["processes"]}
            self.long.start(
                LongAction(f"restore job {job_id}: loading {', '.join(stopped)}", frozenset(stopped)),
                lambda: self._load(job_id, stopped, sets),
            )

    def _still_loading(self, job_id: str) -> bool:
        """Whether the job is still in the work list: a cancelled (or ended) one is not."""
        return any(j["jobId"] == job_id for j in self.work().restores)

    async def _documents(self, job_id: str, replica_set: str | None) -> list[tuple[str, dict[str, Any]]]:
        """The documents to load into a member of ``replica_set`` (a sharded cluster's job restores each
        part into the target's replica set of its name; a replica set's job has one set of documents)."""
        params = {} if replica_set is None else {"replicaSet": replica_set}
        response = await self._send("GET", f"/restores/{job_id}/documents", params=params)
        return [(d["ns"], d["doc"]) for d in map(json.loads, response.text.splitlines()) if d]

    async def _load(self, job_id: str, stopped: list[str], sets: Mapping[str, str | None]) -> None:
        """Process by process, each announced (LOADING) before its load and reported DONE after it; the job
        leaving the work list (cancelled) stops the loads before the next process. The documents are
        downloaded once per replica set."""
        loaded: dict[str | None, list[tuple[str, dict[str, Any]]]] = {}
        docs: list[tuple[str, dict[str, Any]]] = []
        try:
            for i, name in enumerate(stopped):
                rs = sets.get(name)
                if rs not in loaded:
                    loaded[rs] = await self._documents(job_id, rs)
                docs = loaded[rs]
                if not self._still_loading(job_id) or not await self._report(job_id, [name], "LOADING", ""):
                    log.warning(
                        "%s: restore job %s stopped (cancelled?): %s not loaded",
                        self.hostname,
                        job_id,
                        ", ".join(stopped[i:]),
                    )
                    return
                await self._call(self.driver.load, name, docs)
                await self._report(job_id, [name], "DONE", "")
        except OpsmgrError as exc:
            log.error("%s: restore job %s failed: %s", self.hostname, job_id, exc.detail)
            await self._report(job_id, stopped, "FAILED", exc.detail)
            return
        log.warning(
            "%s: restore job %s: %d documents loaded into %s", self.hostname, job_id, len(docs), stopped
        )

    async def _report(self, job_id: str, names: list[str], state: str, detail: str) -> bool:
        """Whether the server took the report (a cancelled job refuses it: 409)."""
        try:
            await self._json(
                "POST",
                f"/restores/{job_id}/progress",
                params={"hostname": self.hostname},
                json={"processes": names, "state": state, "detail": detail},
            )
        except AgentRequestFailed as exc:
            log.warning("%s: restore job %s: %s not delivered: %s", self.hostname, job_id, state, exc.detail)
            return False
        return True

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


def _replica_set(process: Mapping[str, Any]) -> str | None:
    """The replica set a process of a restore job is a member of, as its config says (None: none)."""
    replication = (process.get("args2_6") or {}).get("replication") or {}
    name = replication.get("replSetName") if isinstance(replication, dict) else None
    return name if isinstance(name, str) else None

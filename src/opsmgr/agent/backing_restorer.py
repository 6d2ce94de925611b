"""The backing agent carrying out a restore of the primary's backing databases, as the seed says: a restore
job on the secondary (``delivery: AGENT``, in this host's work list as ``backingRestores``) that the agent on
the primary's host runs as its long action, so that it keeps polling and reporting meanwhile.

The restore, in order (each step reported as the job's ``progress``: phase, fraction, documents):

1. the running-server lock (``agent.backing_restore.restore_lock``): refused, the job FAILED naming the
   running server, while the primary serves; the primary cannot start while the restore holds it;
2. every chosen store downloaded completely (``backup.restore_download.claimed``: a private folder beside
   the primary's configuration, deleted whatever ends the restore) before anything is touched;
3. the seed's rules (``agent.backing_restore.decide_plan``): a refusal ends the job FAILED with the reason
   and the restore jobs that would answer 409 in its ``outcome``;
4. every target fenced, each store's documents replaced, the restore recorded in the application database;
5. FINISHED reported to the secondary (which then resyncs its backup of the restored stores), with the
   outcome; the fences removed last.

A cancelled job (``DELETE`` on it: ``backup.restore_cancel``) leaves this host's work list and the
secondary answers its next report 409 (:class:`RestoreCancelled`). The agent reports at every step, before
it touches each store (naming the stores it wrote and the one it is about to write, which the statement of
the cancellation is made of) and, when the job has left its work list, at the next batch boundary: so it
stops at the next step or batch. Cancelled before writing, it removes its fences (nothing changed);
once writing began, it leaves them: a half-replaced store must not be started on.

An agent killed while writing leaves the fences (the primary refuses to start on them) and the job RUNNING;
started again, it finds the job in its work list and carries it out again from the download, taking the
fences over. A failure once writing has begun ends the job FAILED and leaves the fences, which the next
restore takes over. The blocking steps run off the event loop (``Runtime.run_blocking``); the download and
the reports go through the agent's HTTP client, called from that thread through the loop.

May import ``opsmgr.errors``, ``opsmgr.automation.protocol``, ``opsmgr.agent``,
``opsmgr.backup.crashpoints``, ``opsmgr.backup.restore_download``, ``opsmgr.backup.store_replace``,
``opsmgr.backup.store_restore`` and ``opsmgr.store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from opsmgr.agent.backing import BackingConfig
from opsmgr.agent.backing_restore import (
    Download,
    Fencing,
    Received,
    close_all,
    decide_plan,
    fence_targets,
    outcome,
    restore_lock,
    write_stores,
)
from opsmgr.agent.client import ServerRejected
from opsmgr.agent.executor import LongAction, LongActions
from opsmgr.agent.runtime import Runtime
from opsmgr.agent.work import WorkList
from opsmgr.automation.protocol import BACKUP_PATH
from opsmgr.backup import crashpoints
from opsmgr.backup.restore_download import claimed, private_opener
from opsmgr.backup.store_replace import unfence_unwritten
from opsmgr.backup.store_restore import RestoreRefused
from opsmgr.errors import OpsmgrError
from opsmgr.store.backing import LABELS
from opsmgr.store.engine import Store
from opsmgr.store.installation import read_fence, remove_fence

log = logging.getLogger("opsmgr.agent.backing_restorer")
T = TypeVar("T")
CHUNK = 256 * 1024


@dataclass
class Bridge:
    """The restore's thread calling into the agent's event loop: the download's chunks and the reports."""

    restorer: BackingRestorer
    loop: asyncio.AbstractEventLoop
    job_id: str
    every_s: float
    documents: int = 0
    last_sent: float = field(default=0.0)
    written: list[str] = field(default_factory=list)  # the stores written whole
    writing: str | None = None  # the store being written
    began: bool = False  # the secondary was told the first store is being written: fences stay from then
    fraction: float = 0.0  # of the phase last reported

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def listed(self) -> bool:
        return any(j["jobId"] == self.job_id for j in self.restorer.work().backing_restores)

    def progress(self, phase: str, fraction: float, message: str, *, now: bool = False) -> bool:
        """Reported at most every ``every_s`` (``now``, or the job gone from the work list: at once); a
        report not delivered is not retried; whether it was delivered (or not due); RestoreCancelled when
        the secondary answers 409."""
        if not now and time.monotonic() - self.last_sent < self.every_s and self.listed():
            return True
        self.last_sent, self.fraction = time.monotonic(), min(1.0, max(0.0, fraction))
        body = {"phase": phase, "fraction": self.fraction, "documents": self.documents}
        if phase == "WRITING":
            body |= {"written": list(self.written), "writing": self.writing}
        report = {"progress": {**body, "message": message}}
        return self.call(self.restorer.report(self.job_id, report, quiet=True))

    def checkpoint(self, store: str | None) -> None:
        """Before ``store`` is touched (None: before the restore is recorded): the secondary must have been
        told which stores are written and which is next, so that a cancellation states what each holds."""
        if self.writing is not None:
            self.written.append(self.writing)
        self.writing = store
        message = f"writing the {LABELS[store]}" if store else "recording the restore"
        if not self.progress("WRITING", self.fraction, message, now=True):
            raise OpsmgrError(f"the secondary could not be told the restore goes on with: {message}")
        self.began = True

    def download(self, name: str, folder: Path) -> Download:
        """One store's restored documents, streamed to a private file in ``folder``."""
        path = folder / f"{name}.jsonl"
        response = self.call(self.restorer.open_stream(self.job_id, name))
        try:
            chunks = response.aiter_bytes(CHUNK)
            with open(path, "w", encoding="utf-8", opener=private_opener) as f:
                received, pending = Received(name, path, f), b""
                while (chunk := self.call(_next(chunks))) is not None:
                    *lines, pending = (pending + chunk).split(b"\n")
                    if any(received.take(line.decode()) for line in lines):
                        break
                    self.progress("DOWNLOADING", 0.0, f"{LABELS[name]}: {received.count} documents received")
                received.take(pending.decode())
        except (OSError, ValueError, httpx.HTTPError) as exc:
            raise OpsmgrError(f"downloading the restored {LABELS[name]} was cut: {exc}") from exc
        finally:
            self.call(response.aclose())
        return received.whole()


class RestoreCancelled(OpsmgrError):
    """The secondary answered a report of the job 409: it ended without this agent (it was cancelled)."""

    error_code = "RESTORE_JOB_CANCELLED"


class StoppedWhileWriting(OpsmgrError):
    """The restore failed once writing had begun: its fences stay on the stores it may have half-written."""

    error_code = "RESTORE_STOPPED_WHILE_WRITING"


def _stopped_message(stores: dict[str, Store], job_id: str, exc: BaseException) -> str:
    fenced = [LABELS[name] for name, store in stores.items() if read_fence(store) is not None]
    return (
        f"the restore stopped while writing ({getattr(exc, 'detail', exc)}). The {', '.join(fenced)} may "
        f"be half-restored, so their restore fences (restore job {job_id}) stay and the primary refuses to "
        "start on them. Restore again (`opsmgr backup restore-stores`): the agent takes the fences over and "
        "removes them once every store is written (`opsmgr fence show` lists them)."
    )


async def _next(chunks: AsyncIterator[bytes]) -> bytes | None:
    return await anext(chunks, None)


class BackingRestorer:
    """Carries out, one at a time as the host's long action, the restores its work list names."""

    def __init__(
        self,
        runtime: Runtime,
        config: BackingConfig,
        work: Callable[[], WorkList],
        long: LongActions,
        download_dir: Path,
        *,
        interval_s: float = 1.0,
        report_every_s: float = 0.5,
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.work = work
        self.long = long
        self.download_dir = download_dir
        self.interval_s = interval_s
        self.report_every_s = report_every_s
        # Jobs whose end this agent reported, until the work list that still names them is replaced.
        self.ended: set[str] = set()

    async def step(self) -> None:
        jobs = [j for j in self.work().backing_restores if j["jobId"] not in self.ended]
        if jobs and self.long.running is None:
            job = jobs[0]
            self.long.start(
                LongAction(f"restore job {job['jobId']} of the backing databases"),
                lambda: self.carry_out(job),
            )

    async def carry_out(self, job: dict[str, Any]) -> None:
        job_id = str(job["jobId"])
        if not self.runtime.offload:
            raise OpsmgrError("a restore of backing databases runs off the event loop: offload is required")
        bridge = Bridge(self, asyncio.get_running_loop(), job_id, self.report_every_s)
        try:
            done = await self.runtime.run_blocking(self._restore, job, bridge)
        except RestoreCancelled:
            self.ended.add(job_id)
            log.warning(
                "%s: restore job %s cancelled: %s",
                self.runtime.hostname,
                job_id,
                f"stopped while writing, fences left (stores written: {bridge.written or 'none'})"
                if bridge.began
                else "nothing was written, fences removed",
            )
            return
        except Exception as exc:  # the job's end, whatever it is: the secondary is told why
            if await self._report_failure(job_id, exc):
                self.ended.add(job_id)
            return
        self.ended.add(job_id)
        log.warning("%s: restore job %s finished: %s", self.runtime.hostname, job_id, done["stores"])

    async def _report_failure(self, job_id: str, exc: Exception) -> bool:
        """FAILED told to the secondary with why; whether the job ended (a cancelled one already has)."""
        detail = str(getattr(exc, "detail", exc)) or type(exc).__name__
        log.error("%s: restore job %s failed: %s", self.runtime.hostname, job_id, detail)
        params = getattr(exc, "parameters", {})
        failed = {"reason": detail, "errorCode": getattr(exc, "error_code", None), **params}
        if isinstance(exc, RestoreRefused):  # the seed's rules: the jobs that would answer 409
            failed["jobsAnswering409"] = list(params.get("jobs", []))
        try:
            return await self.report(job_id, {"statusName": "FAILED", "detail": detail, "outcome": failed})
        except RestoreCancelled:
            return True

    def _restore(self, job: dict[str, Any], bridge: Bridge) -> dict[str, Any]:
        """The whole restore, in the restore's thread (see the module's docstring)."""
        uris = self.config.uris
        positions = {str(n): int(p) for n, p in job["stores"].items()}
        job_id = bridge.job_id
        bridge.progress("WAITING", 0.0, "taking the running-server lock", now=True)
        with (
            restore_lock(uris) as me,
            claimed(self.download_dir) as download,
        ):
            if download.leftover_removed:
                log.warning(
                    "%s: deleted the download an interrupted restore left in %s",
                    self.runtime.hostname,
                    download.folder,
                )
            downloads: dict[str, Download] = {}
            for i, name in enumerate(positions):
                bridge.progress("DOWNLOADING", i / len(positions), f"{LABELS[name]}", now=True)
                downloads[name] = bridge.download(name, download.folder)
                bridge.documents += downloads[name].documents
            crashpoints.reached("backing-restore-downloaded")
            bridge.progress("DECIDING", 0.0, "applying the rules", now=True)
            plan = decide_plan(positions, downloads, uris, job.get("force") is True)
            stores: dict[str, Store] = {}
            taken: dict[str, str] = {}
            try:
                bridge.progress("FENCING", 0.0, "fencing every store", now=True)
                taken = fence_targets(
                    plan, uris, job_id, Fencing(me.describe(), str(download.folder)), stores
                )
                crashpoints.reached("backing-restore-fenced")
                bridge.documents = 0

                def written(fraction: float, message: str) -> None:
                    bridge.progress("WRITING", fraction, message)

                counts = write_stores(stores, downloads, job_id, plan, written, bridge.checkpoint)
                bridge.documents = sum(c["documents"] for c in counts.values())
                done = {**outcome(job_id, plan, counts), "fencesTakenOver": taken}
                self._finish(bridge, done, stores)
            except Exception as exc:
                if not bridge.began:
                    unfence_unwritten(stores, job_id, taken)
                    raise
                if isinstance(exc, RestoreCancelled):  # its fences stay: a store may be half-replaced
                    raise
                raise StoppedWhileWriting(_stopped_message(stores, job_id, exc)) from exc
            finally:
                close_all(stores)
        return done

    def _finish(self, bridge: Bridge, done: dict[str, Any], stores: dict[str, Store]) -> None:
        """FINISHED told to the secondary before the fences go: its backup resyncs the restored stores rather
        than continue their old history. Not told, the fences stay and the job is carried out again."""
        progress = {"phase": "DONE", "fraction": 1.0, "documents": bridge.documents, "message": "restored"}
        finished = {"statusName": "FINISHED", "detail": "", "outcome": done, "progress": progress}
        if not bridge.call(self.report(bridge.job_id, finished)):
            raise OpsmgrError("the secondary could not be told the restore finished")
        for store in stores.values():
            if read_fence(store) is not None:
                remove_fence(store, restore_job_id=bridge.job_id)

    async def open_stream(self, job_id: str, name: str) -> httpx.Response:
        """The streamed response of one store's restored documents (the caller closes it)."""
        base, group, key = self.runtime.credentials()
        route = BACKUP_PATH.format(group=quote(group, safe=""))
        url = f"{base}{route}/backingRestores/{job_id}/stores/{name}/documents"
        request = self.runtime.http.build_request("GET", url, timeout=httpx.Timeout(None))
        response = await self.runtime.http.send(request, auth=httpx.BasicAuth(group, key), stream=True)
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise OpsmgrError(f"GET {url}: HTTP {response.status_code}: {response.text[:300]}")
        return response

    async def report(self, job_id: str, body: dict[str, Any], *, quiet: bool = False) -> bool:
        """The job's progress or end to the secondary; whether it was delivered. RestoreCancelled when it
        answers 409 (the job ended: it was cancelled)."""
        try:
            await self.runtime.send_json(
                "POST", BACKUP_PATH, f"/backingRestores/{job_id}/progress", json=body
            )
            return True
        except OpsmgrError as exc:
            if isinstance(exc, ServerRejected) and exc.status == 409:  # ended without this agent: cancelled
                raise RestoreCancelled(f"restore job {job_id} was cancelled: {exc.detail}") from exc
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "%s: restore job %s: report not delivered: %s",
                self.runtime.hostname,
                job_id,
                exc.detail,
            )
            return False

    async def run(self, stop: asyncio.Event) -> None:
        """Steps until ``stop`` is set; a failed step is logged and retried after the interval."""
        while not stop.is_set():
            try:
                await self.step()
            except Exception:  # the restorer must never take the agent down
                log.exception("%s: backing restore step failed", self.runtime.hostname)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

"""The agent's oplog shipping: one :class:`Shipper` backs up every source this agent ships to the server's
backup daemon, whatever the source is, through the :class:`OplogSource` protocol. Two adapters implement it:
:class:`ReplicaSetMember` (a replica set through this host's member, which ships only while PRIMARY; here)
and ``agent.backing.BackingStore`` (a server's backing database through ``opsmgr.store``).

Per source, the protocol with the daemon (``/agents/api/backup/v1/{groupId}/sources/{sourceId}/...``):

- ask where to resume (``acknowledged``: the daemon's tip), telling it the newest entry the source holds
  (``sourceLast``, for the backup lag alert); on SYNC_REQUIRED do an **initial sync**: ``sync`` at the
  source's newest position, the documents in chunks, ``finish`` with the newest position after the copy
  (``minValid``);
- then read the entries after the acknowledged position and post them as slices ``(acknowledged, end]``,
  continuing from what the daemon acknowledges, so a restart of either side resumes exactly;
- a source that no longer holds the entries after the position (``OplogGap``) is reported (``gap``), and
  the daemon asks for a new initial sync;
- a source that says it is quiet through a position with no entry up to it (a backing store's
  ``quiet_position``) gets an empty slice up to it, so its point-in-time window keeps advancing.

**When slices are cut** (:class:`Slicing`): by time, entries or bytes, whichever first. While a source has
new entries it is read every ``seconds`` and whatever arrived since the last cut goes as one slice; a batch
that holds ``max_entries`` entries, or about ``max_bytes`` bytes, is cut there and the next one read at
once. A source with nothing new is read less and less often (up to ``idle_s``: reads are local, they cost
the server nothing) and costs the server one ``acknowledged`` exchange per ``exchange_s`` (the agent's poll
interval), or an empty slice at most once per ``seconds`` when it has a quiet position. Shipping runs as its
own task beside the automation cycle (``run``): it is the one exception to an idle agent's two requests per
poll interval. Initial syncs are reads, so they run in this task too.

Where the sources come from: :class:`Feed`\\ s over the agent's work list, which arrives with the status
answer; the shipper never asks for it. May import ``opsmgr.agent``, ``opsmgr.automation.protocol``,
``opsmgr.backup.wire``, ``opsmgr.backup.crashpoints``, ``opsmgr.drivers.base`` and ``opsmgr.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsmgr.agent.client import BadResponse, ServerUnreachable
from opsmgr.agent.runtime import Runtime
from opsmgr.agent.work import WorkList
from opsmgr.automation.protocol import BACKUP_PATH
from opsmgr.backup import crashpoints
from opsmgr.backup.wire import encode_entry, encode_lines
from opsmgr.drivers.base import Driver, MemberState, OplogRecord
from opsmgr.errors import OplogGap, OpsmgrError

log = logging.getLogger("opsmgr.agent.shipper")

DOC_CHUNK = 2000  # documents per request of an initial sync
IDLE_S = 1.0  # the longest a source with nothing new waits between two reads (and the shipper between looks)
TAKEN = ("ACCEPTED", "DUPLICATE")  # the slice answers that acknowledge a position
Documents = list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Slicing:
    """A slice is cut ``seconds`` after the previous one while entries wait, or sooner when it holds
    ``max_entries`` entries or about ``max_bytes`` bytes of their JSON (at least one entry)."""

    seconds: float = 0.1
    max_entries: int = 2000
    max_bytes: int = 4 * 1024 * 1024


class OplogSource(Protocol):
    """One source as the shipper sees it. Every method may block on the source, so each goes through the
    agent's ``Runtime.run_blocking``."""

    @property
    def name(self) -> str:
        """The key of its outcome in :meth:`Shipper.step`."""

    @property
    def label(self) -> str:
        """How logs name it."""

    @property
    def slicing(self) -> Slicing: ...

    async def available(self) -> str | None:
        """None when this agent may ship the source now, else why not (not primary here, fenced...)."""

    async def newest(self) -> int | None:
        """The position of the newest entry the source holds (None: it holds none)."""

    async def read_after(self, position: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` entries after ``position`` in order, JSON-ready, each with its ``ts``;
        :class:`OplogGap` when the source no longer holds the entry just after ``position``."""

    async def quiet_position(self) -> int | None:
        """A position through which every entry already exists (so a read that finds none up to it proves
        there is none); None when the source cannot tell."""

    def documents(self) -> AsyncIterator[Documents]:
        """Every document, in chunks of ``(namespace, document)``, for an initial sync."""

    def close(self) -> None: ...


class Feed(Protocol):
    """Sources of one kind, as the agent's current work list names them (by ``sourceId``)."""

    def sources(self) -> Mapping[str, OplogSource]: ...

    def close(self) -> None: ...


@dataclass
class Tail:
    """The shipper's state of one source."""

    source: OplogSource
    position: int | None = None  # the daemon's acknowledged tip; None: ask it
    exchanged_at: float = -math.inf  # the daemon's last answer about the source
    due: float = -math.inf  # when the source is read next
    wait: float = 0.0  # the current pause between reads


class Shipper:
    def __init__(
        self, runtime: Runtime, feeds: Iterable[Feed], *, exchange_s: float, idle_s: float = IDLE_S
    ) -> None:
        """``exchange_s``: how often an idle source asks the daemon where it stands (the poll interval)."""
        self.runtime = runtime
        self.feeds = list(feeds)
        self.exchange_s = exchange_s
        self.idle_s = idle_s
        self.tails: dict[str, Tail] = {}

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return await self.runtime.send_json(method, BACKUP_PATH, path, **kw)

    # --- passes ---------------------------------------------------------------------------------------------

    async def step(self) -> dict[str, str]:
        """One pass over every source now, whatever its cadence; what happened to each, by name. An
        unreachable server ends it (:class:`ServerUnreachable`): the next source would not reach it either."""
        return await self._passes(lambda tail: True)

    async def tick(self) -> dict[str, str]:
        """A pass over the sources that are due."""
        now = self.runtime.clock()
        return await self._passes(lambda tail: tail.due <= now)

    def _current(self) -> dict[str, Tail]:
        wanted: dict[str, OplogSource] = {}
        for feed in self.feeds:
            wanted.update(feed.sources())
        old = self.tails
        self.tails = {
            sid: tail if (tail := old.get(sid)) is not None and tail.source is src else Tail(src)
            for sid, src in wanted.items()
        }
        return self.tails

    async def _passes(self, due: Callable[[Tail], bool]) -> dict[str, str]:
        done: dict[str, str] = {}
        for sid, tail in list(self._current().items()):
            if not due(tail):
                continue
            try:
                done[tail.source.name] = await self._pass(sid, tail)
            except ServerUnreachable:
                tail.position = None
                raise
            except OpsmgrError as exc:
                tail.position = None
                done[tail.source.name] = f"failed: {exc.detail}"
                log.warning("%s: backup of %s: %s", self.runtime.hostname, tail.source.label, exc.detail)
        return done

    async def _pass(self, sid: str, tail: Tail) -> str:
        src = tail.source
        # Until this pass says otherwise (it may fail anywhere), the source waits as long as an idle one.
        tail.due = self.runtime.clock() + max(self.idle_s, src.slicing.seconds)
        if (why := await src.available()) is not None:
            tail.position = None
            return why
        synced = ""
        if tail.position is None or self.runtime.clock() - tail.exchanged_at >= self.exchange_s:
            newest = await src.newest()
            ack = await self._json(
                "GET", f"/sources/{sid}/acknowledged", params={} if newest is None else {"sourceLast": newest}
            )
            if ack.get("status") == "SYNC_REQUIRED":
                ack = await self._initial_sync(sid, src)
                synced = "initial sync, "
            tail.position = _acknowledged(ack)
            tail.exchanged_at = self.runtime.clock()
        outcome, sent = await self._ship(sid, tail, tail.position)
        self._rest(tail, sent)
        return synced + outcome

    def _rest(self, tail: Tail, sent: bool) -> None:
        """Read again in ``seconds`` after a pass that shipped, else back off towards ``idle_s``."""
        seconds = tail.source.slicing.seconds
        tail.wait = seconds if sent else min(max(self.idle_s, seconds), max(seconds, 2 * tail.wait))
        tail.due = self.runtime.clock() + tail.wait

    async def _ship(self, sid: str, tail: Tail, position: int) -> tuple[str, bool]:
        """Every entry after ``position`` as slices; (what happened, whether a slice was sent)."""
        src, slicing = tail.source, tail.source.slicing
        shipped, sent = 0, False
        while True:
            # Taken before the read: if the read finds nothing, nothing up to it can appear later.
            quiet = await src.quiet_position()
            try:
                entries = await src.read_after(position, slicing.max_entries)
            except OplogGap as exc:
                log.warning(
                    "%s: %s no longer holds the entries after %s: gap, resync",
                    self.runtime.hostname,
                    src.label,
                    position,
                )
                tail.position = None
                await self._json(
                    "POST",
                    f"/sources/{sid}/gap",
                    json={"firstAvailable": exc.first_available_ts, "detail": exc.detail},
                )
                return f"gap after {position}", sent
            if entries:
                batches = _cut(entries, slicing.max_bytes)
            elif quiet is not None and quiet > position:
                batches = [([], quiet)]  # no writes: the window advances
            else:
                return f"{shipped} entries shipped, at {position}", sent
            for lines, end in batches:
                result = await self._json(
                    "POST",
                    f"/sources/{sid}/slices",
                    content=encode_lines(position, end, lines),
                    headers={"content-type": "application/octet-stream"},
                )
                crashpoints.reached("agent-slice-upload")
                if result.get("status") not in TAKEN or result.get("acknowledged") is None:
                    log.warning("%s: slice of %s refused: %s", self.runtime.hostname, src.label, result)
                    tail.position = None
                    return f"refused: {result.get('detail') or result.get('status')}", sent
                position = tail.position = _acknowledged(result)
                tail.exchanged_at = self.runtime.clock()
                sent = True
                shipped += len(lines)
                if position != end:
                    break  # the daemon holds more than this slice: read on from where it is
            else:
                if len(entries) < slicing.max_entries:
                    return f"{shipped} entries shipped, at {position}", sent

    async def _initial_sync(self, sid: str, src: OplogSource) -> dict[str, Any]:
        start = await src.newest() or 0
        sync_id = (await self._json("POST", f"/sources/{sid}/sync", json={"position": start}))["syncId"]
        count = 0
        async for chunk in src.documents():
            docs = [[ns, doc] for ns, doc in chunk]
            await self._json("POST", f"/sources/{sid}/sync/{sync_id}/documents", json={"docs": docs})
            count += len(docs)
        min_valid = max(await src.newest() or 0, start)
        log.info("%s: initial sync of %s: %d documents at %s", self.runtime.hostname, src.label, count, start)
        return await self._json("POST", f"/sources/{sid}/sync/{sync_id}/finish", json={"minValid": min_valid})

    # --- running --------------------------------------------------------------------------------------------

    def _delay(self) -> float:
        """Until the next source is due; at most ``idle_s``, so that new sources are seen soon."""
        now = self.runtime.clock()
        due = min((t.due for t in self.tails.values()), default=now + self.idle_s)
        return min(self.idle_s, max(0.001, due - now))

    async def run(self, stop: asyncio.Event) -> None:
        """Ticks until ``stop`` is set, then closes the sources."""
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except OpsmgrError as exc:
                    # The server is down or refusing: shipping pauses, the sources are not affected.
                    log.debug("%s: shipping: %s", self.runtime.hostname, exc.detail)
                except Exception:  # the task's boundary: shipping must never take the agent down
                    log.exception("%s: shipping failed", self.runtime.hostname)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._delay())
        finally:
            self.close()

    def close(self) -> None:
        for feed in self.feeds:
            feed.close()


def _acknowledged(answer: dict[str, Any]) -> int:
    value = answer.get("acknowledged")
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadResponse(f"the daemon's answer has no acknowledged position: {answer}")
    return value


def _cut(entries: list[dict[str, Any]], max_bytes: int) -> list[tuple[list[str], int]]:
    """The entries as slices of at most about ``max_bytes`` (at least one entry each): (lines, end)."""
    batches: list[tuple[list[str], int]] = []
    lines: list[str] = []
    size = end = 0
    for entry in entries:
        line = encode_entry(entry)
        if lines and size + len(line) > max_bytes:
            batches.append((lines, end))
            lines, size = [], 0
        lines.append(line)
        size += len(line)
        end = int(entry["ts"])
    if lines:
        batches.append((lines, end))
    return batches


# --- a replica set through this host's member ---------------------------------------------------------------


def _record(e: OplogRecord) -> dict[str, Any]:
    return {"ts": e.ts, "op": e.op, "ns": e.ns, "o": e.o, **({"o2": e.o2} if e.o2 is not None else {})}


@dataclass
class ReplicaSetMember:
    """A backed-up replica set through its member on this host: only the agent whose member is PRIMARY
    ships (its oplog is the set's), so the others say why not."""

    runtime: Runtime
    driver: Driver
    source: dict[str, Any]  # as the work list gives it: sourceId, replicaSetName, processes
    slicing: Slicing = field(default_factory=Slicing)
    member: str | None = None  # this host's PRIMARY member, as ``available`` found it

    @property
    def name(self) -> str:
        return str(self.source.get("replicaSetName") or self.source["sourceId"])

    @property
    def label(self) -> str:
        return f"replica set {self.name}"

    def _primary(self) -> str:
        if self.member is None:
            raise OpsmgrError(f"{self.label}: no member of this host is PRIMARY")
        return self.member

    async def available(self) -> str | None:
        self.member = None
        for name in self.source.get("processes", []):
            try:
                status = await self.runtime.run_blocking(self.driver.rs_status, name)
            except OpsmgrError:
                continue
            if status is not None and status.my_state is MemberState.PRIMARY:
                self.member = name
                return None
        return "not primary here"

    async def newest(self) -> int | None:
        window = await self.runtime.run_blocking(self.driver.oplog_window, self._primary())
        return None if window is None else window.last_ts

    async def read_after(self, position: int, limit: int) -> list[dict[str, Any]]:
        records = await self.runtime.run_blocking(self.driver.oplog_read, self._primary(), position, limit)
        return [_record(e) for e in records]

    async def quiet_position(self) -> int | None:
        return None

    async def documents(self) -> AsyncIterator[Documents]:
        docs = await self.runtime.run_blocking(self.driver.dump, self._primary())
        for i in range(0, len(docs), DOC_CHUNK):
            yield docs[i : i + DOC_CHUNK]

    def close(self) -> None:
        pass


@dataclass
class ReplicaSets:
    """The :class:`Feed` of the backed-up replica sets the work list names for this host."""

    runtime: Runtime
    driver: Driver
    work: Callable[[], WorkList]
    slicing: Slicing = field(default_factory=Slicing)
    members: dict[str, ReplicaSetMember] = field(default_factory=dict)

    def sources(self) -> Mapping[str, OplogSource]:
        old = self.members
        self.members = {}
        for source in self.work().sources:
            sid = source["sourceId"]
            kept = old.get(sid)
            self.members[sid] = (
                kept
                if kept is not None and kept.source == source
                else ReplicaSetMember(self.runtime, self.driver, source, self.slicing)
            )
        return self.members

    def close(self) -> None:
        self.members = {}

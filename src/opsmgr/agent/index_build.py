"""The agent's part in supervised unique index builds (``opsmgr.maintenance.unique_index``): what a build
keeps for itself beside its member steps, which the rolling procedure carries out.

Each cycle (:meth:`IndexBuildWorker.step`, called by the agent loop while the work list names a build) fetches
the project's active builds and, for the members of each build that run on this host:

- **watches the oplog** when one of them is the set's PRIMARY (so after the primary's step-down the new
  primary's agent takes over): ``Driver.oplog_read`` from the build's noted position to the tip, and the
  entries that write to the namespace are reported (the server aborts the build on the first). A cursor that
  fell off the oplog cannot prove that no write happened: the build is aborted. A sweep that reached the tip
  after the build entered VERIFYING is marked as such; DONE waits for one.
- **lists the indexes** of its members while the build is VERIFYING (each agent lists only its own).
- **carries out the next action** when its member is the one named, and only while this host's processes
  are at goal (automation never races the build): ``fsyncLock``/``fsyncUnlock`` of the primary when the
  operator allowed holding writes (one quick command, in the cycle); for the build of one member or the drop
  of the index from it, **asks for the member's step**: the server registers the action as a one-member
  rolling change of the replica set under its maintenance lease, or denies it with the reason it waits
  (another change of the set under way, a member unhealthy). The agents then carry the step out with the
  maintenance executor (``agent.maintenance``) as any rolling change: the lease, a primary's step-down and
  the election, the standalone restart on the maintenance port, the build (checked with ``listIndexes``) or
  the drop, the restart in replSet mode, the catch-up and the release. When it is DONE the server records
  its outcome on the build (``member_built``, ``index_dropped``, or a member's refusal: ``aborted``).

The action asked for is reported as an ``activity`` event, and the step's outcome, once the build recorded
it, is the next sentence of the agent that asked. May import ``opsmgr.errors``, ``opsmgr.drivers.base``,
``opsmgr.automation``, ``opsmgr.agent`` and the pure ``opsmgr.maintenance.unique_index``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from opsmgr.agent.client import AgentRequestFailed, ServerRejected
from opsmgr.agent.executor import LongActions
from opsmgr.agent.runtime import Runtime
from opsmgr.automation.config import processes_on_host
from opsmgr.automation.protocol import INDEX_BUILDS_PATH
from opsmgr.drivers.base import Driver, DriverError, MemberState
from opsmgr.errors import OplogGap, OpsmgrError
from opsmgr.maintenance.unique_index import (
    WATCHED_STATES,
    Action,
    ActionKind,
    BuildState,
    UniqueIndexBuild,
    next_action,
    touches,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

OPLOG_BATCH = 1000
OPLOG_BATCHES_PER_STEP = 20
MEMBER_STEPS = frozenset({ActionKind.BUILD, ActionKind.DROP_INDEX})


@dataclass(frozen=True)
class Outcome:
    """What a quick command did (``sentence``) and the events to report, in order."""

    sentence: str
    events: list[dict[str, Any]]
    blocked: bool = False


class IndexBuildWorker:
    def __init__(self, runtime: Runtime, driver: Driver, long: LongActions) -> None:
        """``long``: the host's long action, whose processes the quick commands leave alone meanwhile."""
        self.runtime = runtime
        self.driver = driver
        self.long = long
        self.hostname = runtime.hostname
        self._cursors: dict[str, int] = {}  # build id -> last oplog ts read
        # build id -> (the rolling change of the step asked for here, its action's head): to tell its outcome.
        self._asked: dict[str, tuple[str, str]] = {}

    # --- the server --------------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.runtime.send_json(
            method, INDEX_BUILDS_PATH, path, params={"hostname": self.hostname}, json=body
        )

    async def _event(self, build_id: str, event: dict[str, Any]) -> UniqueIndexBuild:
        answer = await self._send("POST", f"/{quote(build_id, safe='')}/events", event)
        return UniqueIndexBuild.from_json(answer)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.runtime.run_blocking(fn, *args)

    # --- one cycle ---------------------------------------------------------------------------------------

    async def step(self, goal: Mapping[str, Any] | None, at_goal: bool, *, active: bool) -> str | None:
        """Watch, list and act for every active build (``active``: the work list names one); the sentence of
        what was done or waits on this host, or None when there is none."""
        if goal is None or not active:
            return None
        try:
            raw = (await self._send("GET", "")).get("builds", [])
        except AgentRequestFailed as exc:
            log.debug("%s: %s", self.hostname, exc.detail)
            return None
        mine = {p["name"] for p in processes_on_host(goal, self.hostname)}
        under_way = {str(b.get("id")) for b in raw if isinstance(b, dict)}
        self._cursors = {k: v for k, v in self._cursors.items() if k in under_way}
        self._asked = {k: v for k, v in self._asked.items() if k in under_way}
        sentences = []
        for doc in raw:
            try:
                build = UniqueIndexBuild.from_json(doc)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("%s: unusable index build from the server: %r", self.hostname, exc)
                continue
            local = [m for m in build.members if m in mine]
            if not local:
                continue
            try:
                sentences += await self._one(build, doc, local, at_goal)
            except (OpsmgrError, DriverError) as exc:
                sentences.append(f"error: unique index build {build.build_id} on {build.ns}: {exc.detail}")
        return "; ".join(sentences) or None

    async def _one(
        self, build: UniqueIndexBuild, doc: Mapping[str, Any], local: list[str], at_goal: bool
    ) -> list[str]:
        said = self._told(build.build_id, doc)
        if build.state in WATCHED_STATES:
            build = await self._watch(build, local)
        if build.state is BuildState.VERIFYING:
            listings = {m: await self._call(self.driver.list_indexes, m, build.ns) for m in local}
            build = await self._event(build.build_id, {"type": "listed", "listings": listings})
        action = next_action(build)
        step = doc.get("step") or {}
        if action.member not in local or step.get("member") == action.member:
            return said  # another host's turn, or the step is under way (the rolling change's sentence)
        head = f"unique index build {build.build_id} on {build.ns}: {action.kind.value} on {action.member}"
        running = self.long.running
        if not at_goal:
            return [*said, f"blocked: {head} waits for this host's processes to reach goal state"]
        if running is not None:
            return [*said, f"blocked: {head}: waits for {running.name}"]
        if action.kind in MEMBER_STEPS:
            return [*said, await self._ask_step(build, action, head)]
        # Holding or releasing the primary's writes: one quick command, carried out in the cycle.
        await self._event(build.build_id, {"type": "activity", "note": f"{head}: {action.note}"})
        outcome = await self._call(self._quick, action)
        return [*said, await self._report(build, head, outcome)]

    def _told(self, build_id: str, doc: Mapping[str, Any]) -> list[str]:
        """The outcome of the step asked for here, once the build recorded it (said once)."""
        asked, last = self._asked.get(build_id), doc.get("lastStep") or {}
        if asked is None or last.get("changeId") != asked[0]:
            return []
        del self._asked[build_id]
        return [f"{asked[1]}: {last.get('note')}"]

    async def _ask_step(self, build: UniqueIndexBuild, action: Action, head: str) -> str:
        """The member goes out of its set as a one-member rolling change, when the server grants it."""
        try:
            answer = await self._send(
                "POST", f"/{quote(build.build_id, safe='')}/step", {"member": action.member}
            )
        except ServerRejected as exc:
            if exc.status != 409:
                raise
            return f"blocked: {head}: waits for the maintenance lease: {exc.detail}"
        change_id = str((answer.get("step") or {}).get("changeId"))
        self._asked[build.build_id] = (change_id, head)
        note = f"{head}: {action.note}, as rolling change {change_id} of {build.rs_id}"
        await self._event(build.build_id, {"type": "activity", "note": note})
        return note

    async def _report(self, build: UniqueIndexBuild, head: str, outcome: Outcome) -> str:
        for event in outcome.events:
            try:
                await self._event(build.build_id, {**event, "note": f"{head}: {outcome.sentence}"})
            except ServerRejected as exc:
                if exc.status != 409:
                    raise
                # Another report moved the build on meanwhile (an abort from the oplog watch, a cancel).
                log.info("%s: %s", self.hostname, exc.detail)
                break
        prefix = "blocked: " if outcome.blocked else ""
        return f"{prefix}{head}: {outcome.sentence}"

    # --- the oplog watch ---------------------------------------------------------------------------------

    async def _watch(self, build: UniqueIndexBuild, local: list[str]) -> UniqueIndexBuild:
        """Report the writes to the namespace the local PRIMARY's oplog holds after the build's position."""
        primaries = [m for m in local if await self._call(self._is_primary, m)]
        primary = primaries[0] if primaries else None
        if primary is None or build.watch_from_ts is None:
            return build
        cursor = max(self._cursors.get(build.build_id, 0), build.watch_from_ts)
        hits: list[dict[str, Any]] = []
        at_tip = False
        try:
            for _ in range(OPLOG_BATCHES_PER_STEP):
                batch = await self._call(self.driver.oplog_read, primary, cursor, OPLOG_BATCH)
                hits += [
                    {"ts": r.ts, "op": r.op, "ns": r.ns, "o": r.o}
                    for r in batch
                    if touches(r, build.db, build.collection)
                ]
                cursor = batch[-1].ts if batch else cursor
                if len(batch) < OPLOG_BATCH:
                    at_tip = True
                    break
        except OplogGap as exc:
            return await self._event(
                build.build_id,
                {
                    "type": "aborted",
                    "reason": f"the oplog of {primary} no longer reaches back to the build's start "
                    f"({exc.detail}), so writes to {build.ns} during the build cannot be ruled out",
                },
            )
        self._cursors[build.build_id] = cursor
        event: dict[str, Any] = {"type": "oplog", "records": hits[:1], "throughTs": cursor}
        if at_tip:
            event["sawState"] = build.state.value
        return await self._event(build.build_id, event)

    def _is_primary(self, name: str) -> bool:
        try:
            status = self.driver.rs_status(name)
        except DriverError:
            return False
        return status is not None and status.my_state is MemberState.PRIMARY

    # --- quick commands (blocking: run in a worker thread) -----------------------------------------------

    def _quick(self, action: Action) -> Outcome:
        name = str(action.member)
        if action.kind is ActionKind.LOCK_WRITES:
            if not self._is_primary(name):
                reason = f"the primary changed before writes were held ({name} stepped down)"
                return Outcome(
                    f"{name} is no longer PRIMARY, so holding its writes would not stop the set's",
                    [{"type": "aborted", "reason": reason}],
                )
            self.driver.fsync_lock(name)
            return Outcome(f"fsyncLock on {name}: writes to the deployment wait", [{"type": "writes_locked"}])
        if action.kind is ActionKind.UNLOCK_WRITES:
            try:
                self.driver.fsync_unlock(name)
            except DriverError as exc:  # a restarted process holds no lock any more
                log.info("%s: fsyncUnlock of %s: %s", self.hostname, name, exc.detail)
            return Outcome(f"fsyncUnlock on {name}: writes flow again", [{"type": "writes_unlocked"}])
        return Outcome(f"nothing to do for {action.kind.value}", [], blocked=True)

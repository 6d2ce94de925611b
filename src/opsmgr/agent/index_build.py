"""The agent's part in supervised unique index builds (``opsmgr.maintenance.unique_index``).

Each cycle (:meth:`IndexBuildWorker.step`, called by the agent loop) fetches the project's active builds and,
for the members of each build that run on this host:

- **watches the oplog** when one of them is the set's PRIMARY (so after the primary's step-down the new
  primary's agent takes over): ``Driver.oplog_read`` from the build's noted position to the tip, and the
  entries that write to the namespace are reported (the server aborts the build on the first). A cursor that
  fell off the oplog cannot prove that no write happened: the build is aborted. A sweep that reached the tip
  after the build entered VERIFYING is marked as such; DONE waits for one.
- **lists the indexes** of its members while the build is VERIFYING (each agent lists only its own).
- **carries out the next action** when its member is the one named, and only while this host's processes
  are at goal (automation never races the build): ``fsyncLock``/``fsyncUnlock`` of the primary when the
  operator allowed holding writes; the build of one member; the drop of the index from one member.

Members are built **by their own agent**, not by the primary's: a driver reaches only the processes of its own
host. A member is taken out of its set as the rolling way does, inside one cycle so that automation never sees
it half-way, and only under the replica set's maintenance lease, the one rolling changes take: the agent asks
the server for it first (denied, with the reason, while a rolling change holds it or the set is not healthy
enough: the action waits), renews it while the member is out, and releases it once the member is back in its
set and caught up (within the server's ``member_timeout_s``; otherwise it is released on a later cycle once it
is, or expires while the member, unhealthy, keeps every other member in). Every other member must also look
healthy from here (otherwise the action waits), a PRIMARY steps down first and waits for another member's
election, then the member is restarted standalone on its maintenance port
(``maintenance.snapshot.maintenance_port``, no ``replSetName``), the index is built (or dropped) and checked
with ``listIndexes``, and the member is restarted in replSet mode. A build the member refuses (existing
duplicates, bad options) drops whatever it left, then aborts the build with the member's message; the other
members' indexes are then dropped by their agents. An agent that dies mid-way leaves a standalone process that
automation restarts in replSet mode, and the action is done again (building or dropping the same index twice
is a no-op).

Every action is reported as an ``activity`` event when it begins and is the agent's status sentence (and so
the agent's line in automationStatus) when it ends. May import ``opsmgr.errors``, ``opsmgr.drivers.base``,
``opsmgr.automation``, ``opsmgr.agent``, the pure ``opsmgr.maintenance.unique_index`` and
``opsmgr.maintenance.snapshot``, and ``opsmgr.maintenance.wire`` (the policy's JSON form).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from opsmgr.agent.client import AgentRequestFailed, ServerRejected
from opsmgr.agent.executor import Finished, LongAction, LongActions
from opsmgr.agent.plan import HEALTHY_STATES, process_spec
from opsmgr.agent.runtime import Runtime
from opsmgr.automation.config import processes_on_host
from opsmgr.automation.protocol import INDEX_BUILDS_PATH
from opsmgr.drivers.base import CommandConflict, CommandInvalid, Driver, DriverError, MemberState, ProcessSpec
from opsmgr.errors import OplogGap, OpsmgrError
from opsmgr.maintenance.snapshot import Policy, maintenance_port, optime_seconds
from opsmgr.maintenance.unique_index import (
    WATCHED_STATES,
    ActionKind,
    BuildState,
    UniqueIndexBuild,
    next_action,
    touches,
)
from opsmgr.maintenance.wire import policy_from_json

log = logging.getLogger(__name__)
T = TypeVar("T")

OPLOG_BATCH = 1000
OPLOG_BATCHES_PER_STEP = 20


def standalone_spec(spec: ProcessSpec, port: int) -> ProcessSpec:
    """The member as MongoDB's rolling procedures run it for maintenance: no replica set, another port."""
    args = copy.deepcopy(spec.args)
    args.setdefault("net", {})["port"] = port
    replication = args.get("replication")
    if isinstance(replication, dict):
        replication.pop("replSetName", None)
        if not replication:
            del args["replication"]
    return dataclasses.replace(spec, port=port, args=args, repl_set_name=None)


class IndexBuildWorker:
    def __init__(
        self,
        runtime: Runtime,
        driver: Driver,
        long: LongActions,
        *,
        election_timeout_s: float = 60.0,
        poll_s: float = 0.2,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``now`` and ``sleep`` time the wait for an election (a simulated world's clock in tests)."""
        self.runtime = runtime
        self.driver = driver
        self.long = long
        self.hostname = runtime.hostname
        self._outcomes: list[str] = []  # sentences of long actions that ended, for the next cycle
        self.election_timeout_s = election_timeout_s
        self.poll_s = poll_s
        self.now, self.sleep = now, sleep
        self._cursors: dict[str, int] = {}  # build id -> last oplog ts read
        # build id -> (member, catch-up lag): leases kept because the member was not caught up in time.
        self._kept: dict[str, tuple[str, float]] = {}

    # --- the server --------------------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: str
    ) -> dict[str, Any]:
        return await self.runtime.send_json(
            method, INDEX_BUILDS_PATH, path, params={"hostname": self.hostname, **params}, json=body
        )

    async def _event(self, build_id: str, event: dict[str, Any]) -> UniqueIndexBuild:
        answer = await self._send("POST", f"/{quote(build_id, safe='')}/events", event)
        return UniqueIndexBuild.from_json(answer)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.runtime.run_blocking(fn, *args)

    # --- one cycle ---------------------------------------------------------------------------------------

    async def step(self, goal: Mapping[str, Any] | None, at_goal: bool, *, active: bool) -> str | None:
        """Watch, list and act for every active build (``active``: the work list names one); the sentence of
        the action carried out or waiting on this host, or None when there is none."""
        ended, self._outcomes = self._outcomes, []
        if goal is None or not (active or self._kept):
            return "; ".join(ended) or None
        try:
            raw = (await self._send("GET", "")).get("builds", [])
        except AgentRequestFailed as exc:
            log.debug("%s: %s", self.hostname, exc.detail)
            return None
        mine = {p["name"]: p for p in processes_on_host(goal, self.hostname)}
        await self._release_kept()
        under_way = {str(b.get("id")) for b in raw if isinstance(b, dict)}
        self._cursors = {k: v for k, v in self._cursors.items() if k in under_way}
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
                sentence = await self._one(build, {m: mine[m] for m in local}, at_goal)
            except (OpsmgrError, DriverError) as exc:
                sentence = f"error: unique index build {build.build_id} on {build.ns}: {exc.detail}"
            if sentence is not None:
                sentences.append(sentence)
        return "; ".join([*ended, *sentences]) or None

    async def _one(
        self, build: UniqueIndexBuild, local: dict[str, dict[str, Any]], at_goal: bool
    ) -> str | None:
        if build.state in WATCHED_STATES:
            build = await self._watch(build, list(local))
        if build.state is BuildState.VERIFYING:
            listings = {m: await self._call(self.driver.list_indexes, m, build.ns) for m in local}
            build = await self._event(build.build_id, {"type": "listed", "listings": listings})
        action = next_action(build)
        if action.member not in local:
            return None
        head = f"unique index build {build.build_id} on {build.ns}: {action.kind.value} on {action.member}"
        running = self.long.running
        if running is not None and running.name == head:
            return self.long.sentence()
        if not at_goal:
            return f"blocked: {head} waits for this host's processes to reach goal state"
        process = local[action.member]
        if action.kind not in (ActionKind.BUILD, ActionKind.DROP_INDEX):
            # Holding or releasing the primary's writes: one quick command, carried out in the cycle.
            await self._event(build.build_id, {"type": "activity", "note": f"{head}: {action.note}"})
            outcome = await self._call(self._act, build, action.kind, process, Policy())
            return await self._report(build, head, outcome)
        if running is not None:
            return f"blocked: {head}: waits for {running.name}"
        try:
            grant = await self._send(
                "POST", f"/{quote(build.build_id, safe='')}/lease", {"member": action.member}
            )
        except ServerRejected as exc:
            if exc.status != 409:
                raise
            return f"blocked: {head}: waits for the maintenance lease: {exc.detail}"
        policy = policy_from_json(grant.get("policy"))
        await self._event(build.build_id, {"type": "activity", "note": f"{head}: {action.note}"})
        # Out of the set, the build or drop, back and caught up: the host's long action; the cycle goes on.
        self.long.start(
            LongAction(head, frozenset({action.member})),
            lambda: self._out_of_set_action(build, action.kind, process, policy, head),
            on_done=self._ended,
        )
        return f"{head}: {action.note}"

    async def _out_of_set_action(
        self, build: UniqueIndexBuild, kind: ActionKind, process: dict[str, Any], policy: Policy, head: str
    ) -> str:
        member = process["name"]
        outcome = await self._holding(build.build_id, member, policy, self._act, build, kind, process, policy)
        sentence = await self._report(build, head, outcome)
        if outcome.back:
            await self._release(build.build_id, member)
        else:
            self._kept[build.build_id] = (member, policy.catch_up_lag_s)
        return sentence

    def _ended(self, finished: Finished) -> None:
        """A build's long action ended: its sentence is the next cycle's (an error, the reason)."""
        if finished.error is not None:
            self._outcomes.append(f"error: {finished.action.name}: {finished.error}")
        elif isinstance(finished.result, str):
            self._outcomes.append(finished.result)

    async def _report(self, build: UniqueIndexBuild, head: str, outcome: Outcome) -> str:
        for event in outcome.event or []:
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

    # --- the maintenance lease ---------------------------------------------------------------------------

    async def _holding(
        self, build_id: str, member: str, policy: Policy, fn: Callable[..., T], *args: Any
    ) -> T:
        """``fn(*args)`` while renewing ``member``'s lease (a third of its life apart)."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(max(0.2, policy.lease_ttl_s / 3))
                try:
                    await self._send("PUT", f"/{quote(build_id, safe='')}/lease", {"member": member})
                except AgentRequestFailed as exc:
                    log.warning("%s: lease of %s not renewed: %s", self.hostname, member, exc.detail)

        renewing = asyncio.create_task(renew())
        try:
            return await self._call(fn, *args)
        finally:
            renewing.cancel()

    async def _release(self, build_id: str, member: str) -> None:
        try:
            await self._send("DELETE", f"/{quote(build_id, safe='')}/lease", member=member)
        except AgentRequestFailed as exc:
            # Expired and taken by another meanwhile, or released already: nothing of ours to give back.
            log.info("%s: lease of %s not released: %s", self.hostname, member, exc.detail)
        self._kept.pop(build_id, None)

    async def _release_kept(self) -> None:
        """Give back the leases kept for members that were not caught up in time, once they are."""
        for build_id, (member, lag) in list(self._kept.items()):
            if await self._call(self._caught_up, member, lag):
                await self._release(build_id, member)

    def _caught_up(self, name: str, lag_s: float) -> bool:
        """In its set, healthy, and at most ``lag_s`` behind the primary."""
        try:
            status = self.driver.rs_status(name)
        except DriverError:
            return False
        if status is None or status.my_state not in (MemberState.PRIMARY, MemberState.SECONDARY):
            return False
        me = next((m for m in status.members if m.self), None)
        primary = status.primary()
        if me is None or primary is None:
            return False
        return optime_seconds(primary.optime_ts) - optime_seconds(me.optime_ts) <= lag_s

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

    # --- actions (blocking: run in a worker thread) ------------------------------------------------------

    def _act(
        self, build: UniqueIndexBuild, kind: ActionKind, process: dict[str, Any], policy: Policy
    ) -> Outcome:
        name = process["name"]
        d = self.driver
        if kind is ActionKind.LOCK_WRITES:
            if not self._is_primary(name):
                return Outcome(
                    f"{name} is no longer PRIMARY, so holding its writes would not stop the set's",
                    [
                        {
                            "type": "aborted",
                            "reason": f"the primary changed before writes were held ({name} stepped down)",
                        }
                    ],
                )
            d.fsync_lock(name)
            return Outcome(f"fsyncLock on {name}: writes to the deployment wait", [{"type": "writes_locked"}])
        if kind is ActionKind.UNLOCK_WRITES:
            try:
                d.fsync_unlock(name)
            except DriverError as exc:  # a restarted process holds no lock any more
                log.info("%s: fsyncUnlock of %s: %s", self.hostname, name, exc.detail)
            return Outcome(f"fsyncUnlock on {name}: writes flow again", [{"type": "writes_unlocked"}])
        if kind is ActionKind.BUILD:
            return self._out_of_set(build, process, policy, create=True)
        if kind is ActionKind.DROP_INDEX:
            return self._out_of_set(build, process, policy, create=False)
        return Outcome(f"nothing to do for {kind.value}", None, blocked=True)

    def _out_of_set(
        self, build: UniqueIndexBuild, process: dict[str, Any], policy: Policy, *, create: bool
    ) -> Outcome:
        """Take the member out of its set (as the rolling way does), build or drop the index, put it back,
        and wait until it is caught up (``back`` False when it is not within ``policy.member_timeout_s``)."""
        name, d = process["name"], self.driver
        status = d.rs_status(name)
        if status is None:
            return Outcome(f"{name} is not running in replSet mode yet", None, blocked=True)
        unhealthy = [
            m.host for m in status.members if not m.self and (not m.health or m.state not in HEALTHY_STATES)
        ]
        if unhealthy:
            return Outcome(
                f"waits: {', '.join(unhealthy)} not healthy, and taking {name} out as well could lose the "
                "majority",
                None,
                blocked=True,
            )
        done = []
        if status.my_state is MemberState.PRIMARY:
            d.step_down(name)
            if not self._wait(lambda: self._other_primary(name)):
                return Outcome(
                    f"stepped {name} down but no other member was elected within "
                    f"{self.election_timeout_s:.0f}s; it stays in the set",
                    None,
                    blocked=True,
                )
            done.append(f"stepped {name} down")
        elif status.my_state is not MemberState.SECONDARY:
            return Outcome(f"waits: {name} is {status.my_state.value}, not SECONDARY", None, blocked=True)
        spec = process_spec(process)
        port = maintenance_port(spec.port, policy)
        index = str(build.options.get("name") or "_".join(f"{f}_{v}" for f, v in build.key))
        d.stop(name)
        d.start(standalone_spec(spec, port))
        done.append(f"restarted standalone on port {port}")
        try:
            if create:
                events = self._create(build, name, index, done)
            else:
                d.drop_index(name, build.ns, index)
                done.append(f"dropped {index}")
                events = [{"type": "index_dropped", "member": name}]
        finally:
            d.stop(name)
            d.start(spec)
        done.append("restarted in replSet mode")
        if not self._wait(lambda: self._caught_up(name, policy.catch_up_lag_s), policy.member_timeout_s):
            done.append(f"not caught up within {policy.member_timeout_s:.0f}s: the lease stays until it is")
            return Outcome(", ".join(done), events, back=False)
        done.append("caught up")
        return Outcome(", ".join(done), events)

    def _create(
        self, build: UniqueIndexBuild, name: str, index: str, done: list[str]
    ) -> list[dict[str, Any]]:
        d = self.driver
        keys: list[tuple[str, Any]] = list(build.key)  # directions, or a type such as "hashed"
        try:
            d.create_index(name, build.ns, keys, dict(build.options))
        except (CommandConflict, CommandInvalid) as exc:
            # The member refused (duplicates already in the collection, bad options): undo here and abort.
            d.drop_index(name, build.ns, index)
            done.append(f"{name} refused the index, dropped what it left")
            reason = f"{name} refused to build the unique index {index} on {build.ns}: {exc.detail}"
            return [{"type": "aborted", "reason": reason}, {"type": "index_dropped", "member": name}]
        listed = d.list_indexes(name, build.ns)
        if not any(ix.get("name") == index and ix.get("unique") is True for ix in listed):
            raise DriverError(f"{name} built {index} on {build.ns} but listIndexes does not show it unique")
        done.append(f"built {index} ({build.current + 1} of {len(build.members)})")
        return [{"type": "member_built", "member": name}]

    def _other_primary(self, name: str) -> bool:
        try:
            status = self.driver.rs_status(name)
        except DriverError:
            return False
        primary = status.primary() if status is not None else None
        return primary is not None and not primary.self

    def _wait(self, ok: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Poll ``ok`` until it holds or ``timeout_s`` (the election timeout by default) passes (blocking: a
        worker thread)."""
        deadline = self.now() + (self.election_timeout_s if timeout_s is None else timeout_s)
        while not ok():
            if self.now() > deadline:
                return False
            self.sleep(self.poll_s)
        return True


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an action did (``sentence``) and the events to report, in order (None: nothing happened);
    ``back``: the member is in its set (never taken out, or back and caught up)."""

    sentence: str
    event: list[dict[str, Any]] | None
    blocked: bool = False
    back: bool = True

"""The reconcile loop of one agent: poll, observe, decide, do one move, report, in the shape of Patroni's HA
loop.

Each cycle polls the conf endpoint with the held version, reads ONE snapshot of this host through the driver,
lets each feature decide on it, carries out at most one move, posts status, and returns a one-line status
sentence that is also logged. Who may act, in this order (the first that has a move this cycle makes it):

1. the host's long action (``agent.executor``): while one runs (a member's restart out of its set, an index
   build on one member, a restore load), the processes it owns are nobody else's, and the sentence says
   ``<action> in progress (N s)``; a second long action waits for it;
2. rolling maintenance (``agent.maintenance``): the moves of the server-registered rolling change of a
   replica set this host takes part in (those that stop or start a process become the long action);
3. automation (``agent.plan``, with ``agent.sharding`` for mongos and their clusters, whose commands
   ``agent.cluster_moves`` sends): the first move of the plan that brings this host's processes to the goal;
4. a supervised unique index build (``agent.index_build``), only once this host is at goal.

Backup runs as a task of its own beside the cycle (it ships slices at its own cadence and never changes a
process); its restore loads are the long action. What there is to do besides automation comes with the
status answer (``agent.work``); a cycle with new work is followed at once by the next. It is async so that
one event loop carries thousands of agents (``agent.fleet``); driver calls, which block, run on the
runtime's executor (``agent.runtime``).

Rules it keeps: an unreachable server leaves processes exactly as they are and is retried with capped
exponential backoff and jitter; a rejection (401 bad key, 404 unknown project) is reported and retried
slowly, re-reading the agent's config file in case the key was fixed; a config the server sends that does
not validate is reported and not adopted; a cycle is one error boundary (a bug in it is logged and becomes
its sentence, the loop goes on). The agent adopts whatever config the server serves (the server decides;
Restoration Mode answers 304), and keeps on disk the last config with which it reached goal
(``agent.state``). Server requests in a status answer (``{"requests": [{"type": ...}]}``) go to the handler
registered for their type (Restoration Mode config uploads); unknown types are ignored.

May import ``opsmgr.errors``, ``opsmgr.drivers.base``, ``opsmgr.automation`` (config, secrets, protocol) and
``opsmgr.agent``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx

from opsmgr.agent.backup import BackupWorker
from opsmgr.agent.client import AgentClient, BadResponse, ServerRejected, ServerUnreachable
from opsmgr.agent.cluster_moves import run_cluster_move
from opsmgr.agent.executor import LongActions
from opsmgr.agent.index_build import IndexBuildWorker
from opsmgr.agent.maintenance import MaintenanceExecutor, Outcome
from opsmgr.agent.moves import CLUSTER_MOVES
from opsmgr.agent.observe import read_snapshot, status_observed
from opsmgr.agent.pacing import Backoff, format_seconds, stopped_within
from opsmgr.agent.plan import Move, ProcessPlan, Snapshot, plan
from opsmgr.agent.runtime import Runtime
from opsmgr.agent.settings import AgentSettings, load_settings
from opsmgr.agent.sharding import is_mongos
from opsmgr.agent.shipper import ReplicaSets, Shipper
from opsmgr.agent.state import NO_VERSION, StateStore
from opsmgr.agent.work import WorkList, received
from opsmgr.automation.config import config_hash, processes_on_host, validate
from opsmgr.automation.protocol import UPLOAD_CONFIG_REQUEST
from opsmgr.automation.secrets import redact
from opsmgr.drivers.base import Driver
from opsmgr.errors import OpsmgrError

log = logging.getLogger(__name__)

T = TypeVar("T")
RequestHandler = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BACKOFF_S = 60.0
MAX_REJECTED_RETRY_S = 60.0
MAX_BUSY_DELAY_S = 1.0


@dataclass(frozen=True)
class CycleResult:
    sentence: str
    delay_s: float  # when the next cycle should start
    move: Move | None = None  # the move executed, if any
    process: str | None = None


def _aligned_index(original: tuple[str, ...], remaining: list[str]) -> int | None:
    """Where ``remaining`` starts in ``original`` if it is what is left of it (a subsequence ending with
    it: waits that turned out to be satisfied drop out); None when the plan changed shape."""
    j = len(original)
    for move in reversed(remaining):
        j -= 1
        while j >= 0 and original[j] != move:
            j -= 1
        if j < 0:
            return None
    return j


class Agent:
    """One host's automation agent: :meth:`cycle` runs one cycle, :meth:`run` cycles until stopped."""

    def __init__(
        self,
        settings: AgentSettings,
        driver: Driver,
        http: httpx.AsyncClient,
        *,
        offload_driver: bool = True,
        executor: Executor | None = None,
        request_handlers: Mapping[str, RequestHandler] | None = None,
        config_path: Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.hostname = settings.hostname
        self.driver = driver
        self.config_path = config_path
        self.request_handlers: dict[str, RequestHandler] = {UPLOAD_CONFIG_REQUEST: self._upload_config}
        self.request_handlers.update(request_handlers or {})
        self._wire(http, executor, offload_driver)
        poll = settings.poll_interval_s
        self.backoff = Backoff(
            min(1.0, poll), max(poll, min(MAX_BACKOFF_S, 30 * poll)), rng or random.Random()
        )
        self.rejected_delay_s = max(poll, min(MAX_REJECTED_RETRY_S, 6 * poll))
        self.busy_delay_s = min(poll, MAX_BUSY_DELAY_S)
        self._recall()

    def _wire(self, http: httpx.AsyncClient, executor: Executor | None, offload_driver: bool) -> None:
        """The parts that act for this host, on one runtime: the server client, the long actions, backup,
        oplog shipping, index builds and rolling maintenance."""
        settings, driver = self.settings, self.driver
        self.runtime = Runtime(
            http,
            settings.hostname,
            settings.base_url.rstrip("/"),
            settings.group_id,
            settings.api_key,
            executor=executor,
            offload=offload_driver,
        )
        self.client = AgentClient(self.runtime)
        # One long action at a time on this host (a restart out of the set, an index build, a restore load).
        self.long = LongActions(self.hostname)
        # What the server says this host has to do besides automation (with each status answer).
        self.work = WorkList()
        # Backup runs as its own task beside the cycle (see ``run``).
        self.backup = BackupWorker(self.runtime, driver, lambda: self.work, lambda: self.held, self.long)
        # Oplog shipping runs as its own task beside the cycle too, at its own cadence (see ``run``).
        self.shipper = Shipper(
            self.runtime,
            [ReplicaSets(self.runtime, driver, lambda: self.work)],
            exchange_s=settings.poll_interval_s,
        )
        # Supervised unique index builds: watched and acted on inside the cycle (see ``cycle``).
        self.index_builds = IndexBuildWorker(self.runtime, driver, self.long)
        # Rolling changes the server registered: this host's part of them (see ``agent.maintenance``).
        self.maintenance = MaintenanceExecutor(
            self.client, driver, self.hostname, long=self.long, run=self._driver
        )
        self._rolling = Outcome()

    def _recall(self) -> None:
        """What the agent remembers from its state file, and what it tracks in memory from cycle to cycle."""
        self.store = StateStore(self.settings.state_dir)
        self.state = self.store.load()
        self._unsaved = False
        self.held: dict[str, Any] | None = self.state.goal_config
        self.held_version = self.state.goal_version if self.held is not None else NO_VERSION
        self.held_at_ms = self.state.adopted_at_ms
        self._hashed: tuple[int, str | None] = (NO_VERSION - 1, None)  # held version -> its config hash
        self.last_sentence = ""
        self._tracks: dict[str, tuple[int, tuple[str, ...]]] = {}  # process -> (version, plan as first made)
        self._errors: dict[str, str] = {}  # process -> text of its last failed move
        self._process_goal: dict[str, int] = {}
        if self.held is not None:
            for p in processes_on_host(self.held, self.hostname):
                self._process_goal[p["name"]] = self.state.goal_version
        log.info(
            "agent for %s starts with goal version %s held (state in %s)",
            self.hostname,
            self.state.goal_version,
            self.settings.state_dir,
        )

    @property
    def goal_version(self) -> int:
        return self.state.goal_version

    # --- the cycle ------------------------------------------------------------------------------------------

    async def cycle(self) -> CycleResult:
        """One cycle, inside the loop's one error boundary: a bug in any part of it is logged with its
        traceback and becomes the cycle's sentence; the next cycle starts afresh, processes untouched."""
        try:
            return await self._cycle()
        except Exception as exc:  # the boundary: the loop outlives any bug in one cycle
            log.exception("%s: cycle failed", self.hostname)
            return self._done(
                f"error: this cycle failed ({type(exc).__name__}: {exc}); retrying",
                self.settings.poll_interval_s,
                logging.ERROR,
            )

    async def _cycle(self) -> CycleResult:
        polled = await self._poll()
        if isinstance(polled, CycleResult):
            return polled
        config_error = polled
        snapshot = await self._observe()
        if isinstance(snapshot, CycleResult):
            return snapshot
        if self.held is None:
            sentence = config_error or "waiting for a first automation config from the server"
            more = await self._publish(sentence, snapshot, [])
            return self._done(sentence, 0.0 if more else self.settings.poll_interval_s)
        snapshot, plans = await self._decide(snapshot, self.held)
        result = await self._act_all(plans, config_error, self.held)
        await self._persist()  # the goal reached, kept before it is reported
        more = await self._publish(result.sentence, snapshot, plans)
        return self._done(
            result.sentence,
            0.0 if more else result.delay_s,
            logging.WARNING if result.sentence.startswith("error") else logging.INFO,
            move=result.move,
            process=result.process,
        )

    async def _poll(self) -> CycleResult | str | None:
        """Poll the server and adopt what it serves: the cycle's end if the server could not be asked, else
        why the served config was not adopted (None when it was, or nothing new was served)."""
        try:
            served = await self.client.poll_config(self.held_version)
            config_error = self._adopt(served) if served is not None else None
        except ServerUnreachable as exc:
            # The server may have moved (a cutover to a restored primary): pick up a new mmsBaseUrl.
            self._reload_credentials()
            delay = self.backoff.next()
            return self._done(
                f"server unreachable, retrying in {format_seconds(delay)}: {exc.detail}",
                delay,
                logging.WARNING,
            )
        except ServerRejected as exc:
            self._reload_credentials()
            retry = format_seconds(self.rejected_delay_s)
            return self._done(
                f"rejected by server: {exc.status} {exc.detail}, retrying in {retry}",
                self.rejected_delay_s,
                logging.ERROR,
            )
        except BadResponse as exc:
            config_error = (
                f"error: unusable answer from the server, keeping version {self.held_version}: {exc}"
            )
        self.backoff.reset()
        return config_error

    async def _observe(self) -> Snapshot | CycleResult:
        """The host's one snapshot of this cycle, with what it shows kept on disk before anything acts on it;
        the cycle's end if the processes cannot be observed."""
        try:
            windows = self.maintenance.looks_at_sets(
                self.held, self.held_version, self.work.maintenance, self.state.goal_config
            )
            snapshot = await self._driver(
                read_snapshot, self.driver, self._names(), self.state.initiated_sets, windows, self._routers()
            )
        except OpsmgrError as exc:
            return self._done(
                f"error: cannot observe the processes of {self.hostname}: {exc.detail}",
                self.settings.poll_interval_s,
                logging.ERROR,
            )
        self._remember_initiated(snapshot)
        # What the agent manages and has seen initiated is on disk before it acts on it.
        await self._persist()
        return snapshot

    async def _decide(self, snapshot: Snapshot, held: dict[str, Any]) -> tuple[Snapshot, list[ProcessPlan]]:
        """Rolling maintenance takes its processes first; automation plans the rest around it and around
        the long action in progress."""
        self._rolling = await self.maintenance.cycle(
            snapshot, held, self.held_version, self.work.maintenance, self.state.goal_config
        )
        running = self.long.running
        busy = {n: f"{running.name}: in progress" for n in running.processes} if running else {}
        snapshot = replace(snapshot, maintenance=self._rolling.owned, busy=busy)
        return snapshot, plan(snapshot, held, self.hostname)

    async def _act_all(
        self, plans: list[ProcessPlan], config_error: str | None, held: dict[str, Any]
    ) -> CycleResult:
        """At most one move: rolling maintenance's or automation's, else a step of a unique index build."""
        result = await self._act_beside_rolling(plans, config_error)
        if config_error is None and result.move is None:
            # A unique index build acts only while this host is at goal, so automation never races it.
            building = await self.index_builds.step(
                held, all(p.at_goal for p in plans), active=bool(self.work.index_builds)
            )
            if building is not None:
                result = replace(result, sentence=building)
        return result

    def _adopt(self, served: dict[str, Any]) -> str | None:
        """Take the served config as the new goal, or say why not (the held one stays)."""
        version = served.get("version")
        try:
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
                raise OpsmgrError("version must be a non-negative integer")
            config = validate(served, allow_unique_indexes=True)
        except OpsmgrError as exc:
            return (
                f"error: config version {version} from the server is invalid, keeping version "
                f"{self.held_version}: {exc.detail}"
            )
        if version != self.held_version:
            log.info("adopting automation config version %s (held %s)", version, self.held_version)
            self.held_at_ms = int(time.time() * 1000)
        self.held, self.held_version = config, version
        mine = {p["name"] for p in processes_on_host(config, self.hostname)}
        self._save(managed=self.state.managed | mine)
        return None

    async def _act(self, plans: list[ProcessPlan], config_error: str | None) -> CycleResult:
        version = self.held_version
        for p in plans:
            if p.at_goal:
                self._process_goal[p.name] = version
                self._errors.pop(p.name, None)
        if config_error is not None:
            return CycleResult(config_error, self.settings.poll_interval_s)
        todo = next((p for p in plans if not p.at_goal and not p.current.blocked), None)
        if todo is not None:
            return await self._execute(todo)
        blocked = next((p for p in plans if not p.at_goal), None)
        if blocked is not None:
            step = blocked.current
            return CycleResult(
                f"blocked: {step.note} ({step.move.value} on {blocked.name}, version {version})",
                self.settings.poll_interval_s,
            )
        self._reach_goal(plans)
        mine = processes_on_host(self.held or {}, self.hostname)
        disabled = sum(1 for p in mine if p.get("disabled"))
        running = len(mine) - disabled
        what = f"{running} process{'es' if running != 1 else ''} running"
        if disabled:
            what += f", {disabled} disabled"
        return CycleResult(f"goal state: version {version}, {what}", self.settings.poll_interval_s)

    async def _act_beside_rolling(self, plans: list[ProcessPlan], config_error: str | None) -> CycleResult:
        """One move in all: the rolling maintenance's if it carried one out, else the plan's; the sentence
        names the rolling change while it waits or is blocked."""
        rolling = self._rolling
        if rolling.acted and rolling.sentence:
            return CycleResult(rolling.sentence, self.busy_delay_s)
        result = await self._act(plans, config_error)
        if result.move is None and rolling.sentence and config_error is None:
            return CycleResult(rolling.sentence, result.delay_s)
        return result

    async def _execute(self, p: ProcessPlan) -> CycleResult:
        step, name = p.current, p.name
        index, original = self._position(p)
        where = f"{step.move.value} (step {index + 1}/{len(original) - 1}) on {name}"
        note = step.note
        try:
            if step.move is Move.START and step.spec is not None:
                await self._driver(self.driver.start, step.spec)
            elif step.move is Move.STOP:
                await self._driver(self.driver.stop, name)
            elif step.move is Move.RS_INIT and step.rs_config is not None:
                await self._driver(self.driver.initiate, name, dict(step.rs_config))
            elif step.move is Move.RS_RECONFIG and step.rs_config is not None:
                await self._driver(self.driver.reconfig, name, dict(step.rs_config))
            elif step.move is Move.STEP_DOWN:
                await self._driver(self.driver.step_down, name)
            elif step.move is Move.SET_PARAMETER and step.parameters:
                await self._driver(self.driver.set_parameter, name, dict(step.parameters))
            elif step.move in CLUSTER_MOVES and step.command is not None:
                note = await self._driver(run_cluster_move, self.driver, name, step)
            else:
                raise OpsmgrError(f"the agent cannot carry out {step.move.value} yet")
        except OpsmgrError as exc:  # drivers say what failed as a DriverError; the move is retried
            self._errors[name] = f"{step.move.value} failed: {exc.detail}"
            return CycleResult(
                f"error: {where} failed, will retry: {exc.detail}",
                self.settings.poll_interval_s,
                step.move,
                name,
            )
        self._errors.pop(name, None)
        return CycleResult(
            f"plan for version {self.held_version}: {where}: {note}", self.busy_delay_s, step.move, name
        )

    def _position(self, p: ProcessPlan) -> tuple[int, tuple[str, ...]]:
        """Where this process is in the plan first made for the held version (replanned if it changed)."""
        remaining = p.moves()
        version, original = self._tracks.get(p.name, (NO_VERSION - 1, ()))
        index = _aligned_index(original, remaining) if version == self.held_version else None
        if index is None:
            original, index = tuple(remaining), 0
            self._tracks[p.name] = (self.held_version, original)
        return index, original

    # --- memory ---------------------------------------------------------------------------------------------

    def _goal_names(self) -> set[str]:
        return {p["name"] for p in processes_on_host(self.held or {}, self.hostname)}

    def _names(self) -> list[str]:
        return sorted(self._goal_names() | self.state.managed)

    def _routers(self) -> frozenset[str]:
        """This host's mongos processes in the held config: the cycle reads their cluster through them."""
        return frozenset(p["name"] for p in processes_on_host(self.held or {}, self.hostname) if is_mongos(p))

    def _remember_initiated(self, snapshot: Snapshot) -> None:
        seen = {lp.rs_status.set_name for lp in snapshot.processes.values() if lp.rs_status is not None}
        if not seen <= self.state.initiated_sets:
            self._save(initiated_sets=self.state.initiated_sets | seen)

    def _reach_goal(self, plans: list[ProcessPlan]) -> None:
        """Every process is at goal: the held config becomes the one kept on disk, and processes it no longer
        names (all stopped by now) are forgotten."""
        managed = frozenset(self._goal_names())
        if self.state.goal_version != self.held_version or self.state.managed != managed:
            log.info("goal state reached for version %s", self.held_version)
            self._save(
                goal_version=self.held_version,
                goal_config=self.held,
                managed=managed,
                adopted_at_ms=self.held_at_ms,
            )
        for p in plans:
            if p.name not in managed:
                self._process_goal.pop(p.name, None)

    def _save(self, **changes: Any) -> None:
        """Change the state; :meth:`_persist` writes it before the cycle acts on it."""
        state = replace(self.state, **changes)
        if state != self.state:
            self.state, self._unsaved = state, True

    async def _persist(self) -> None:
        # Off the event loop: a fleet's thousands of agents each fsync their state file (and its folder).
        if self._unsaved:
            self._unsaved = False
            await self.runtime.run_blocking(self.store.save, self.state)

    def _reload_credentials(self) -> None:
        if self.config_path is None:
            return
        try:
            fresh = load_settings(self.config_path)
        except OpsmgrError as exc:
            log.error("cannot re-read %s: %s", self.config_path, exc.detail)
            return
        if (fresh.base_url.rstrip("/"), fresh.group_id, fresh.api_key) != self.runtime.credentials():
            log.info("credentials in %s changed; using them from now on", self.config_path)
            self.settings = fresh
            self.runtime.set_credentials(fresh.base_url, fresh.group_id, fresh.api_key)

    # --- reporting ------------------------------------------------------------------------------------------

    def status_body(self, sentence: str, snapshot: Snapshot, plans: list[ProcessPlan]) -> dict[str, Any]:
        hostnames = {p["name"]: p["hostname"] for p in processes_on_host(self.held or {}, self.hostname)}
        processes = []
        for p in plans:
            index, original = self._position(p)
            # As in Ops Manager's automationStatus: the moves of the plan in progress, none at goal.
            working = not p.at_goal
            processes.append(
                {
                    "name": p.name,
                    "lastGoalVersionAchieved": self._process_goal.get(p.name, NO_VERSION),
                    "plan": list(original[:-1]) if working else [],
                    "currentStep": p.current.move.value if working else None,
                    "stepIndex": index if working else None,
                    "blockedReason": p.blocked_reason,
                    "errorText": self._errors.get(p.name),
                    "observed": status_observed(
                        snapshot.processes.get(p.name), hostnames.get(p.name, self.hostname)
                    ),
                }
            )
            # A process of a set under rolling maintenance shows the procedure's moves.
            processes[-1].update(self._rolling.annotations.get(p.name, {}))
        return {
            "hostname": self.hostname,
            "cv": self.held_version,
            "cvTimestamp": self.held_at_ms,
            # What this agent claims to hold; Restoration Mode accepts an upload only if it hashes alike.
            "cvHash": self._held_hash(),
            "workVersion": self.work.version,
            "lastGoalVersionAchieved": self.state.goal_version,
            "statusSentence": sentence,
            "timestamp": int(time.time() * 1000),
            "driver": self.settings.driver.value,
            "processes": processes,
        }

    async def _publish(self, sentence: str, snapshot: Snapshot, plans: list[ProcessPlan]) -> bool:
        """Report; True when the answer brought new work (the next cycle then starts at once)."""
        try:
            answer = await self.client.post_status(self.status_body(sentence, snapshot, plans))
        except OpsmgrError as exc:
            log.warning("%s: status not delivered: %s", self.hostname, exc.detail)
            return False
        before, self.work = self.work, received(self.work, answer, self.hostname)
        await self._handle_requests(answer)
        return self.work.version != before.version and not self.work.idle

    async def _handle_requests(self, answer: dict[str, Any]) -> None:
        for request in answer.get("requests", []):
            if not isinstance(request, dict):
                continue
            kind = request.get("type")
            handler = self.request_handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                log.debug("%s: ignoring server request of type %r", self.hostname, kind)
                continue
            try:
                await handler(request)
            except Exception:  # each handler is a boundary of its own: one failing must not cost the others
                log.exception("%s: server request %r failed", self.hostname, kind)

    def _held_hash(self) -> str | None:
        if self.held is None:
            return None
        if self._hashed[0] != self.held_version:
            self._hashed = (self.held_version, config_hash({**self.held, "version": self.held_version}))
        return self._hashed[1]

    async def _upload_config(self, request: dict[str, Any]) -> None:
        """Restoration Mode chose this agent's config as the latest: upload the one kept on disk, with which
        it reached goal, secrets redacted. Not before it reached goal with the version it claims: the server
        asks again with every status answer until then (or gives up and collects again)."""
        goal = self.state.goal_config
        if goal is None or self.state.goal_version != self.held_version:
            log.warning(
                "%s: asked to upload version %s, but has reached goal with version %s only; uploading once "
                "at goal",
                self.hostname,
                self.held_version,
                self.state.goal_version,
            )
            return
        config = redact(goal)
        config["version"] = self.state.goal_version
        answer = await self.client.upload_config(config)
        log.warning(
            "%s: uploaded automation config version %s for Restoration Mode; the server wrote version %s",
            self.hostname,
            self.state.goal_version,
            answer.get("version"),
        )

    def _done(
        self,
        sentence: str,
        delay_s: float,
        level: int = logging.INFO,
        *,
        move: Move | None = None,
        process: str | None = None,
    ) -> CycleResult:
        repeated = sentence == self.last_sentence and level < logging.ERROR
        log.log(logging.DEBUG if repeated else level, "%s: %s", self.hostname, sentence)
        self.last_sentence = sentence
        return CycleResult(sentence, delay_s, move, process)

    async def _driver(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.runtime.run_blocking(fn, *args)

    # --- running --------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, first_delay_s: float = 0.0) -> None:
        """Cycle until ``stop`` is set; processes are left exactly as they are when it stops."""
        delay = first_delay_s
        backup = asyncio.gather(self.backup.run(stop), self.shipper.run(stop))
        try:
            while not await stopped_within(stop, delay, self.long.ended):
                delay = (await self.cycle()).delay_s
        finally:
            backup.cancel()
            await asyncio.gather(backup, return_exceptions=True)
            # A long action is finished, not cut: a member stopped half-way through its restart would be
            # left down.
            await self.long.wait()
        log.info("%s: agent stopped; processes left as they are", self.hostname)

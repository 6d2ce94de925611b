"""The long-action executor of one host (Patroni's ``AsyncExecutor``): a procedure that takes longer than a
cycle (a member's restart out of its set and back, a step-down, an index build on one member, a restore load,
an initial sync) runs here as one scheduled action while the agent's cycle goes on polling, reporting and
answering Restoration Mode. One action at a time: a second one is refused until the first ends. The action
owns the processes it names; the cycle's planners leave them alone meanwhile, and the cycle's sentence says
``<action> in progress (N s)``.

May import the standard library only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LongAction:
    name: str  # what it does, as the agent's status sentence says it
    processes: frozenset[str] = frozenset()  # the local processes it owns while it runs


@dataclass(frozen=True)
class Finished:
    action: LongAction
    result: Any
    error: BaseException | None
    seconds: float


class LongActions:
    def __init__(self, hostname: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.hostname = hostname
        self.clock = clock
        self._running: tuple[LongAction, float, asyncio.Task[Any]] | None = None
        self._on_done: Callable[[Finished], None] | None = None
        self._finished: Finished | None = None
        self._ended: asyncio.Event | None = None  # made in the running loop, at the first start

    @property
    def ended(self) -> asyncio.Event:
        """Set when an action ends (the agent's loop wakes for its next step rather than sleep on)."""
        if self._ended is None:
            self._ended = asyncio.Event()
        return self._ended

    @property
    def running(self) -> LongAction | None:
        self._settle()
        return self._running[0] if self._running is not None else None

    def owns(self, process: str) -> bool:
        action = self.running
        return action is not None and process in action.processes

    def start(
        self,
        action: LongAction,
        work: Callable[[], Awaitable[Any]],
        on_done: Callable[[Finished], None] | None = None,
    ) -> bool:
        """Schedule ``work``; False (and nothing scheduled) while another action runs. ``on_done`` gets the
        outcome as soon as it ends."""
        if self.running is not None:
            return False
        self._on_done = on_done
        log.info("%s: %s begins", self.hostname, action.name)
        task = asyncio.ensure_future(work())
        self._running = (action, self.clock(), task)
        task.add_done_callback(self._ended_now)
        return True

    def _ended_now(self, _task: asyncio.Task[Any]) -> None:
        self._settle()
        self.ended.set()

    def sentence(self) -> str | None:
        """``<action> in progress (N s)`` while one runs."""
        action = self.running
        if action is None or self._running is None:
            return None
        return f"{action.name} in progress ({self.clock() - self._running[1]:.0f} s)"

    def collect(self) -> Finished | None:
        """The action that ended since the last call, once."""
        self._settle()
        done, self._finished = self._finished, None
        return done

    def _settle(self) -> None:
        if self._running is None or not self._running[2].done():
            return
        action, started, task = self._running
        self._running = None
        error = None if task.cancelled() else task.exception()
        result = None if task.cancelled() or error is not None else task.result()
        seconds = self.clock() - started
        if error is not None:
            log.warning("%s: %s failed after %.1f s: %s", self.hostname, action.name, seconds, error)
        else:
            log.info("%s: %s done in %.1f s", self.hostname, action.name, seconds)
        self._finished = Finished(action, result, error, seconds)
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(self._finished)

    async def wait(self) -> Finished | None:
        """Until the running action ends (tests, and a clean stop)."""
        if self._running is not None:
            await asyncio.wait({self._running[2]})
        return self.collect()

    async def stop(self) -> None:
        """Cancel the running action: the agent stops, the processes stay as they are at that point."""
        if self._running is not None and not self._running[2].done():
            self._running[2].cancel()
            await asyncio.wait({self._running[2]})
        self._settle()

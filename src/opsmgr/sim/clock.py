"""Time for the simulated world: the system clock, or a fake one that tests move by hand.

``sleep`` is part of the clock because simulated commands that block in MongoDB (``replSetStepDown`` waiting
for a secondary to catch up, a graceful ``shutdown`` of a primary, a process starting) wait on it: with the
fake clock, waiting moves simulated time forward instead of blocking. May import the standard library only.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (``advance``) or when someone waits on it (``sleep``)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._t = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

"""When an agent's next cycle starts: capped exponential backoff with jitter for a server it cannot reach,
the waits between cycles (cut short by a stop or a wake-up), and how a delay reads in a status sentence.

May import the standard library only.
"""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Exponential backoff with equal jitter: attempt n waits between half and all of min(cap, base*2**n)."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random) -> None:
        self.base_s, self.cap_s, self.rng = base_s, cap_s, rng
        self.failures = 0

    def next(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2**self.failures)
        self.failures = min(self.failures + 1, 62)
        return float(ceiling / 2 + self.rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self.failures = 0


def format_seconds(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s".replace(".0s", "s")


async def stopped_within(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> bool:
    """Wait ``seconds``, or less when ``wake`` is set (then cleared); True when ``stop`` was set."""
    if stop.is_set():
        return True
    if seconds <= 0:
        return False
    waiters = {asyncio.ensure_future(stop.wait())}
    if wake is not None:
        waiters.add(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    if wake is not None:
        wake.clear()
    return stop.is_set()

"""A clock tests set by hand: a callable returning ``now`` (seconds), for the services that take a clock."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

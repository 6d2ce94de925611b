"""A small per-key cache with a time to live, for the agent poll path.

Several servers may share one set of backing databases, so cached values are only ever a few seconds old;
a server invalidates what it changes itself at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, load: Callable[[K], V]) -> V:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load(key)
        with self._lock:
            self._entries[key] = (now + self.ttl_s, value)
        return value

    def peek(self, key: K) -> V | None:
        """The cached value if it is fresh, without loading anything."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def invalidate(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

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
        """The cached value, without loading anything; None when the caller should load it.

        When a value expires, only the first caller to notice gets None (and loads); the others keep getting
        the old value for one more time to live, so a crowd of concurrent polls does not all hit the
        database at once.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if hit[0] <= now:
                self._entries[key] = (now + self.ttl_s, hit[1])
                return None
            return hit[1]

    def invalidate(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

"""A small per-key cache with a time to live, for the agent poll path.

Several servers may share one set of backing databases, so a cached value is trusted for at most its time
to live; changes announced by the stores (this server's own at commit, other servers' through PostgreSQL
notifications) invalidate it at once. A load that started before an invalidation never stores its (possibly
older) value. May import only the standard library.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    fresh_until: float
    reloading_until: float = 0.0


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        # How long an expired value is still handed to peek() while one caller reloads it.
        self.reload_grace_s = min(ttl_s, 0.5)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[K, _Entry[V]] = {}
        self._generation = 0

    def get(self, key: K, load: Callable[[K], V]) -> V:
        """The value, loaded when it is missing or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.fresh_until > self._clock():
                return entry.value
            generation = self._generation
        value = load(key)
        with self._lock:
            # An invalidation during the load may mean the value read is already older than the change.
            if generation == self._generation:
                self._entries[key] = _Entry(value, self._clock() + self.ttl_s)
        return value

    def peek(self, key: K) -> V | None:
        """The cached value without loading anything; None when the caller should load it (with get).

        Once a value expires, the first caller to notice gets None and reloads; for a short grace the others
        keep the expired value, so a crowd of concurrent polls does not all hit the database at once. An
        invalidated value is never handed out.
        """
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.fresh_until > now or entry.reloading_until > now:
                return entry.value
            entry.reloading_until = now + self.reload_grace_s
            return None

    def invalidate(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._generation += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1

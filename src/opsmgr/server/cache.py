"""A small per-key cache with a time to live, for the agent poll path, and the heartbeat that vouches for
its values past that time while this server provably hears every change.

Several servers may share one set of backing databases, so a cached value is trusted for its time to live;
changes announced by the stores (this server's own at commit, other servers' through PostgreSQL
notifications) invalidate it at once. A load that started before an invalidation never stores its (possibly
older) value.

The time to live guards against a notification lost without the listener noticing (a connection that died
silently): at 10,000 agents a project is polled on each server every few seconds, so a time to live of 1 s
reloaded nearly every poll. :class:`Heartbeat` closes that gap instead of the clock: this server sends a
heartbeat through the same notification channel and hears it back through its listener; PostgreSQL delivers
notifications in commit order, so hearing a heartbeat proves that every change committed before it was sent
has been heard (and has invalidated what it changed). While heartbeats come back within the time to live, a
value is trusted up to the heartbeat's ``max_age_s`` (an agent poll interval: what bounds a write that
announced nothing, made straight into the database); once they stop, values expire by their time to live as
before. May import only the standard library.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger(__name__)

HEARTBEAT = "heartbeat"  # the topic of the changes :class:`Heartbeat` sends
_PENDING_MAX = 64  # heartbeats awaited at once: older ones never heard are forgotten (they confirm nothing)

# Whether a value loaded at the first time is still good at the second though older than the time to live
# (the third): see :meth:`Heartbeat.vouches`.
Voucher = Callable[[float, float, float], bool]


def _no_voucher(_loaded_at: float, _now: float, _ttl_s: float) -> bool:
    return False


@dataclass
class _Entry(Generic[V]):
    value: V
    loaded_at: float  # when its load started: the value is at least as new as this
    reloading_until: float = 0.0


class TtlCache(Generic[K, V]):
    def __init__(
        self,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        vouch: Voucher = _no_voucher,
    ) -> None:
        self.ttl_s = ttl_s
        # How long an expired value is still handed to peek() while one caller reloads it.
        self.reload_grace_s = min(ttl_s, 0.5)
        self._clock = clock
        self._vouch = vouch
        self._lock = threading.Lock()
        self._entries: dict[K, _Entry[V]] = {}
        self._generation = 0

    def _fresh(self, entry: _Entry[V], now: float) -> bool:
        return now - entry.loaded_at < self.ttl_s or self._vouch(entry.loaded_at, now, self.ttl_s)

    def get(self, key: K, load: Callable[[K], V]) -> V:
        """The value, loaded when it is missing or expired."""
        with self._lock:
            entry = self._entries.get(key)
            started = self._clock()
            if entry is not None and self._fresh(entry, started):
                return entry.value
            generation = self._generation
        value = load(key)
        with self._lock:
            # An invalidation during the load may mean the value read is already older than the change.
            if generation == self._generation:
                self._entries[key] = _Entry(value, started)
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
            if self._fresh(entry, now) or entry.reloading_until > now:
                return entry.value
            entry.reloading_until = now + self.reload_grace_s
            return None

    def fresh(self, key: K) -> V | None:
        """The value while it is fresh, else None; unlike :meth:`peek`, never an expired value and never a
        promise to reload it (for a caller that can do without the cache)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.value if entry is not None and self._fresh(entry, self._clock()) else None

    def invalidate(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._generation += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1


class Heartbeat:
    """Heartbeats sent through the change channel (``send``: announce a :data:`HEARTBEAT` change with this
    key) every ``interval_s`` and heard back (:meth:`heard`, from the change listener).

    A store hands a transaction's changes to this process's listeners at commit, in the committing thread:
    that echo proves nothing about the channel, so what arrives while this thread sends is ignored; only the
    listener's copy counts. Until :meth:`start`, it vouches for nothing.
    """

    def __init__(self, interval_s: float = 0.25, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.max_age_s = 0.0
        self._clock = clock
        self._nonce = secrets.token_hex(6)  # tells this server's heartbeats from other servers'
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # heartbeat key -> when it was sent
        self._confirmed = -math.inf  # when the newest heartbeat heard back was sent
        self._sending = threading.local()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def vouches(self, loaded_at: float, now: float, ttl_s: float) -> bool:
        """A value loaded at ``loaded_at`` is still good at ``now``: a heartbeat sent within ``ttl_s`` was
        heard (every change announced before it was sent has been heard) and the value is younger than
        :attr:`max_age_s`."""
        return now - self._confirmed < ttl_s and now - loaded_at < self.max_age_s

    def beat(self, send: Callable[[str], None]) -> None:
        """Send one heartbeat."""
        key = f"{self._nonce}.{next(self._seq)}"
        with self._lock:
            if len(self._pending) >= _PENDING_MAX:
                del self._pending[next(iter(self._pending))]
            self._pending[key] = self._clock()  # before the send: the proof covers what committed before
        self._sending.active = True
        try:
            send(key)
        finally:
            self._sending.active = False

    def heard(self, key: str) -> None:
        """A heartbeat announced: proof of the channel when it is one of ours, heard from the listener."""
        if getattr(self._sending, "active", False):
            return
        with self._lock:
            sent = self._pending.pop(key, None)
            if sent is not None:
                self._confirmed = max(self._confirmed, sent)

    def start(self, send: Callable[[str], None], *, max_age_s: float) -> None:
        if self._thread is None:
            self.max_age_s = max_age_s
            self._thread = threading.Thread(target=self._run, args=(send,), name="heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval_s * 10)

    def _run(self, send: Callable[[str], None]) -> None:
        failing = False
        while not self._stop.wait(self.interval_s):
            try:
                self.beat(send)
                failing = False
            except Exception as exc:  # the store down: values expire by their time to live meanwhile
                if not failing:
                    log.warning("heartbeat not sent (cached values expire by their time to live): %s", exc)
                failing = True

"""Failed logins, counted per username and per address, so that guessing passwords is slow.

Owns :class:`LoginThrottle`: after ``limit`` failures within ``window_s`` for a username (``address_limit``
for an address, which many users may share behind one proxy), logins for it are refused until the oldest
failure leaves the window. The counts live in the server's memory
(a restart forgets them; each server of several counts its own). May import the standard library only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_TRACKED = 10_000  # names and addresses remembered at most: a flood of new ones cannot grow memory


class LoginThrottle:
    def __init__(
        self,
        limit: int = 5,
        address_limit: int = 20,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.address_limit = address_limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.RLock()  # begin() holds it across retry_after() and failed()

    def _keys(self, username: str, address: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (f"user:{username.lower()}", self.limit), (f"addr:{address}", self.address_limit)

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until a login for ``username`` from ``address`` may be tried, 0 when it may be now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(username, address):
                times = self._failures.get(key)
                if times is None:
                    continue
                while times and now - times[0] >= self.window_s:
                    times.popleft()
                if len(times) >= limit:
                    wait = max(wait, self.window_s - (now - times[0]))
        return wait

    def begin(self, username: str, address: str) -> float:
        """A login attempt takes its place before its password is checked (0 returned), or waits (the seconds
        returned): checked and counted at once, so guesses sent in parallel cannot all pass the check before
        any of them is counted. A login that then succeeds gives its places back (:meth:`succeeded`)."""
        with self._lock:
            wait = self.retry_after(username, address)
            if wait == 0:
                self.failed(username, address)
            return wait

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key, limit in self._keys(username, address):
                while key not in self._failures and len(self._failures) >= MAX_TRACKED:
                    del self._failures[next(iter(self._failures))]  # the longest-tracked goes first
                self._failures.setdefault(key, deque(maxlen=limit)).append(now)

    def succeeded(self, username: str, address: str | None = None) -> None:
        with self._lock:
            self._failures.pop(f"user:{username.lower()}", None)
            times = self._failures.get(f"addr:{address}") if address is not None else None
            if times:
                times.pop()  # the place :meth:`begin` took for this login

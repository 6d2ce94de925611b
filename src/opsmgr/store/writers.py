"""The write transactions of one process on one SQLite database: one at a time, the urgent ones first.

SQLite's own wait for its write lock polls, sleeping up to 100 ms between tries, so the lock sits idle
through most of those sleeps: a server with 1,000 agents reporting at once had nearly every thread in
``BEGIN IMMEDIATE``. The writers of a process queue in a :class:`WriterQueue` first and the next one is woken
the moment the lock is free; other processes still meet SQLite's own wait. PostgreSQL's lock manager already
wakes the next waiter at once, so its stores need no queue.

Transactions begun inside :func:`urgent_writes` go before the others waiting: a request whose every wait
holds up much more than itself (Restoration Mode's upload, which ends a project's mode) must not queue
behind a thousand agents' status reports. Urgent writers are few and short, so the others are not starved.
May import the standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_URGENT: ContextVar[bool] = ContextVar("urgent_writes", default=False)


@contextmanager
def urgent_writes() -> Iterator[None]:
    """Write transactions begun in this context (this thread, or a task it runs) jump the queue."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class WriterQueue:
    """One writer at a time; waiting urgent writers before the others. Each waiting writer sleeps on its
    line's condition and is woken alone when its turn may have come (no herd of forty threads waking)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._urgent_line = threading.Condition(self._guard)
        self._line = threading.Condition(self._guard)
        self._busy = False
        self._urgent_waiting = 0
        self._waiting = 0

    def acquire(self, timeout: float) -> bool:
        """False when the lock was not given within ``timeout`` seconds."""
        urgent = _URGENT.get()
        line = self._urgent_line if urgent else self._line
        with self._guard:
            self._urgent_waiting += urgent
            self._waiting += 1
            try:
                got = line.wait_for(lambda: self._may_take(urgent), timeout)
            finally:
                self._urgent_waiting -= urgent
                self._waiting -= 1
            if got:
                self._busy = True
            else:
                self._wake_next()  # a wake-up that came as this writer gave up goes to the next one
            return got

    @property
    def waiting(self) -> int:
        """Writers waiting for their turn now."""
        with self._guard:
            return self._waiting

    def release(self) -> None:
        with self._guard:
            self._busy = False
            self._wake_next()

    def _may_take(self, urgent: bool) -> bool:
        return not self._busy and (urgent or self._urgent_waiting == 0)

    def _wake_next(self) -> None:
        if not self._busy:
            (self._urgent_line if self._urgent_waiting else self._line).notify()

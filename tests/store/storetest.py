"""Helpers of the store tests: reading the whole oplog as a tailing reader does, and store_writer.py child
processes whose acknowledgements are collected as they come."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from opsmgr.store import OplogEntry, Store


def all_entries(store: Store, after: int = 0, page: int = 7) -> list[OplogEntry]:
    """Every entry after ``after``, paging through the tail API as a reader would."""
    out: list[OplogEntry] = []
    while entries := store.oplog_after(after, limit=page):
        out += entries
        after = entries[-1].ts
    return out


class WriterProcess:
    """A ``store_writer.py`` child; a thread collects its acknowledgement lines as they come."""

    SCRIPT = Path(__file__).with_name("store_writer.py")

    def __init__(self, url: str, prefix: str, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(self.SCRIPT), url, prefix, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.acks: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _take(self, timeout: float) -> bool:
        line = self._lines.get(timeout=timeout)
        if line is None:
            return False
        self.acks.append(line)
        return True

    def wait_for_acks(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acks) < n:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(self.acks)} of {n} writes acknowledged in {timeout}s"
            assert self._take(remaining), f"writer exited early: {self.stderr()}"

    def finish(self, timeout: float = 60) -> list[str]:
        """Wait for the process to end (by itself or after a kill); every line it printed is in ``acks``."""
        self.proc.wait(timeout)
        while self._take(timeout):
            pass
        return self.acks

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

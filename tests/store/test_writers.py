"""The queue of a process's SQLite writers: one at a time, urgent ones first, no wake-up lost to a timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from opsmgr.store.writers import WriterQueue, urgent_writes


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


class Writer(threading.Thread):
    def __init__(self, queue: WriterQueue, name: str, order: list[str], *, urgent: bool = False) -> None:
        super().__init__(name=name)
        self.queue, self.order, self.urgent = queue, order, urgent
        self.got: bool | None = None

    def run(self) -> None:
        if self.urgent:
            with urgent_writes():
                self._write()
        else:
            self._write()

    def _write(self) -> None:
        self.got = self.queue.acquire(timeout=30)
        if self.got:
            self.order.append(self.name)
            self.queue.release()


def test_one_writer_at_a_time() -> None:
    queue, inside, most = WriterQueue(), [0], [0]
    guard = threading.Lock()

    def write() -> None:
        for _ in range(200):
            assert queue.acquire(timeout=30)
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            with guard:
                inside[0] -= 1
            queue.release()

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert most[0] == 1 and inside[0] == 0 and queue.waiting == 0


def test_waiting_urgent_writers_go_before_the_others() -> None:
    queue, order = WriterQueue(), []
    assert queue.acquire(timeout=1)
    normal = [Writer(queue, f"status-{i}", order) for i in range(5)]
    for w in normal:
        w.start()
    _until(lambda: queue.waiting == 5)
    urgent = [Writer(queue, f"upload-{i}", order, urgent=True) for i in range(2)]
    for w in urgent:
        w.start()
    _until(lambda: queue.waiting == 7)
    queue.release()
    for w in normal + urgent:
        w.join(30)
    assert sorted(order[:2]) == ["upload-0", "upload-1"]
    assert sorted(order[2:]) == [f"status-{i}" for i in range(5)]


def test_a_writer_giving_up_passes_its_wake_up_on() -> None:
    queue, order = WriterQueue(), []
    assert queue.acquire(timeout=1)
    assert queue.acquire(timeout=0.05) is False  # given up while the lock is held
    patient = Writer(queue, "patient", order)
    patient.start()
    _until(lambda: queue.waiting == 1)
    queue.release()
    patient.join(30)
    assert patient.got is True and order == ["patient"]


def test_an_urgent_writer_giving_up_lets_the_others_through() -> None:
    queue, order = WriterQueue(), []
    assert queue.acquire(timeout=1)
    normal = Writer(queue, "status", order)
    normal.start()
    _until(lambda: queue.waiting == 1)
    with urgent_writes():
        assert queue.acquire(timeout=0.05) is False
    queue.release()
    normal.join(30)
    assert normal.got is True and order == ["status"]

"""Processes that do one thing at the same instant: forked children released together by a barrier, for the
races a fresh file meets when several processes (agents, a server and a CLI) open it at once."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path


def _at_the_gate(act: Callable[[str], None], path: str, gate: Barrier, errors: Queue[str]) -> None:
    gate.wait(timeout=30)
    try:
        act(path)
    except Exception as exc:  # reported to the test, which names it
        errors.put(f"{exc.__class__.__name__}: {exc}")


def errors_opening_at_once(
    act: Callable[[str], None], folder: Path, processes: int = 4, rounds: int = 40
) -> list[str]:
    """Runs ``act(path)`` in ``processes`` forked children at once, on a new path each round; the errors."""
    ctx = multiprocessing.get_context("fork")
    errors: Queue[str] = ctx.Queue()
    for attempt in range(rounds):
        gate = ctx.Barrier(processes)
        path = str(folder / f"fresh{attempt}.sqlite")
        children = [
            ctx.Process(target=_at_the_gate, args=(act, path, gate, errors)) for _ in range(processes)
        ]
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=60)
        assert [c.exitcode for c in children] == [0] * processes
    found = []
    while not errors.empty():
        found.append(errors.get())
    return found

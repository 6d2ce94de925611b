"""``opsmgr backup restore-stores`` following the restore job the backing agent carries out (no processes):
it returns the job once it ended, draws the job's progress, and gives up with a reason when no agent takes the
job up or its progress stands still (the job itself goes on)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from opsmgr.cli import secondary
from opsmgr.cli.secondary import RestoreFailed, follow_job


class Jobs:
    """A secondary answering the job's successive states, the last one for ever."""

    def __init__(self, *states: dict[str, Any]) -> None:
        self.states = list(states)

    def get(self, _path: str) -> dict[str, Any]:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


drawn: list[tuple[float, str]] = []


@contextmanager
def bar(_description: str) -> Iterator[Callable[[float, str], None]]:
    yield lambda fraction, status: drawn.append((fraction, status))


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secondary, "POLL_S", 0.0)
    drawn.clear()


def job(status: str, **progress: Any) -> dict[str, Any]:
    return {"id": "j1", "statusName": status, **({"progress": progress} if progress else {})}


def test_it_draws_the_progress_and_returns_the_ended_job() -> None:
    api = Jobs(
        job("QUEUED"),
        job("RUNNING", phase="WRITING", fraction=0.5, message="application database: 10 of 20"),
        job("FINISHED", phase="DONE", fraction=1.0, message="restored"),
    )
    assert follow_job(api, "/x", bar)["statusName"] == "FINISHED"
    assert drawn == [
        (0.0, "queued"),
        (0.5, "writing: application database: 10 of 20"),
        (1.0, "done: restored"),
    ]


def test_no_agent_taking_the_job_up_is_named() -> None:
    with pytest.raises(RestoreFailed, match="no backing agent took restore job j1 up"):
        follow_job(Jobs(job("QUEUED")), "/x", bar, queued_s=0.0)


def test_progress_standing_still_is_named() -> None:
    stuck = job("RUNNING", phase="WRITING", fraction=0.2, message="oplog")
    with pytest.raises(RestoreFailed, match="reported no progress"):
        follow_job(Jobs(stuck), "/x", bar, stalled_s=0.0)

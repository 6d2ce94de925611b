"""How a restore of backing databases carried out by the CLI itself (``cli.secondary.run_restore``: ``opsmgr
drill``'s into its sandbox; the primary's own stores are restored by the backing agent) ends when it does
not finish, and what it then tells the operator.

Before it writes anything (declined, end of input or Ctrl-C at the confirmation, an error), a restore removes
its fences: nothing was changed (:class:`RestoreAborted`). Once writing has begun, its fences stay on every
store it may have half-written, and :class:`RestoreInterrupted` names them and the way out: the same restore,
run again, takes them over. SIGTERM and SIGHUP (a closed terminal) end it as Ctrl-C does, through that
cleanup (:func:`stops_as_interrupts`); only SIGKILL leaves things where they stood, which the fences and the
well-known download folder (``backup.restore_download``) then tell. May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opsmgr.errors import OpsmgrError


class RestoreAborted(OpsmgrError):
    """The restore ended before it wrote anything: nothing was changed."""


class RestoreInterrupted(OpsmgrError):
    """The restore ended once writing had begun: its fences stay on the stores it may have half-written."""


@contextmanager
def stops_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the block instead of killing the process where it is."""

    def interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def aborted_message(exc: BaseException, still_fenced: Sequence[str]) -> str:
    """``still_fenced``: the stores whose fence the restore took over from an interrupted one (they stay)."""
    how = "declined" if isinstance(exc, RestoreAborted) else "interrupted"
    said = f"restore {how} before anything was written: nothing was changed"
    if not still_fenced:
        return f"{said} and the fences were removed"
    return (
        f"{said}; the fences stay on the {', '.join(still_fenced)}, which an interrupted restore had begun "
        "writing: run a restore to its end before starting the primary"
    )


def interrupted_message(fenced: Sequence[str], job_id: str, exc: BaseException) -> str:
    cause = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(getattr(exc, "detail", exc))
    return (
        f"the restore stopped while writing ({cause}). The {', '.join(fenced)} may be half-restored, so "
        f"their restore fences (restore job {job_id}) stay and a server refuses to start on them. Run the "
        "restore again: it takes the fences over and removes them once every store is written (`opsmgr "
        "fence show` lists them)."
    )

"""Named points where a crash hurts most, which a test can stop a process at to SIGKILL it there.

``OPSMGR_BACKUP_CRASHPOINT=<point>:<marker path>`` arms nothing by itself: the process stops at ``<point>``
only while the file ``<marker path>.armed`` exists, so a test arms it at the moment it chooses. Reaching an
armed point writes ``<marker path>`` (the test polls for it) and blocks the calling thread for good; the
test then kills the process. Unset (the normal case), :func:`reached` costs one dictionary lookup.

Points: ``agent-slice-upload`` (the agent has sent a slice and the daemon answered, before the agent uses
the answer), ``daemon-snapshot-commit`` (every block of a snapshot is written, its metadata is not),
``store-restore-batch`` (a restore of a backing database has committed a batch of its documents).
May import the standard library only.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

ENV = "OPSMGR_BACKUP_CRASHPOINT"


def reached(point: str) -> None:
    setting = os.environ.get(ENV)
    if not setting:
        return
    name, _, marker = setting.partition(":")
    if name != point or not marker or not Path(marker + ".armed").exists():
        return
    Path(marker).write_text(f"{point} {os.getpid()}\n")
    threading.Event().wait()  # until the test kills the process

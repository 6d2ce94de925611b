"""Named points where a crash hurts most, which a test can stop a process at to SIGKILL it there.

``OPSMGR_BACKUP_CRASHPOINT=<point>:<marker path>`` arms nothing by itself: the process stops at ``<point>``
only while the file ``<marker path>.armed`` exists, so a test arms it at the moment it chooses (several
points, each with its own marker, are separated by commas). Reaching an armed point writes ``<marker path>``
(``<point> <pid>``, then what the point says about itself: the test polls for it) and blocks the calling
thread until the ``.armed`` file is removed: the test kills the process there (and disarms it after), or
disarms it to let the process go on (a test cancelling a restore held there). Unset (the normal case),
:func:`reached` costs one dictionary lookup.

Points: ``agent-slice-upload`` (the agent has sent a slice and the daemon answered, before the agent uses
the answer), ``daemon-snapshot-commit`` (every block of a snapshot is written, its metadata is not),
``daemon-slice-commit`` (an uploaded slice's block is written, its record and the chain's new tip are not;
the marker names the block), ``store-restore-batch`` (a restore of a backing database has committed a batch
of its documents),
``backing-restore-downloaded`` (the backing agent has downloaded every store of a restore, touched none),
``backing-restore-fenced`` (it has fenced every store, written none).
May import the standard library only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "OPSMGR_BACKUP_CRASHPOINT"


def reached(point: str, detail: str = "") -> None:
    setting = os.environ.get(ENV)
    if not setting:
        return
    marker = next((m for name, _, m in (i.partition(":") for i in setting.split(",")) if name == point), "")
    if not marker or not Path(marker + ".armed").exists():
        return
    Path(marker).write_text(f"{point} {os.getpid()} {detail}".rstrip() + "\n")
    while Path(marker + ".armed").exists():  # until the test kills the process or disarms the point
        time.sleep(0.05)

"""How this installation runs its own command line as a child process (the demo's servers and agents, a
drill's sandbox and shadow agents, a secondary's scheduled drills): the ``opsmgr`` script beside the running
interpreter, or the module when there is none. May import nothing of opsmgr."""

from __future__ import annotations

import sys
from pathlib import Path


def opsmgr_command() -> list[str]:
    script = Path(sys.executable).with_name("opsmgr")
    return [str(script)] if script.exists() else [sys.executable, "-m", "opsmgr.cli.main"]

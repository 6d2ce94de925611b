"""An agent is a small program: importing the agent's loop and fleet in a fresh interpreter loads neither
SQLAlchemy (the store), nor the server, nor the maintenance service; only an agent that backs up backing
databases opens a store, and imports it then."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("sqlalchemy", "opsmgr.server", "opsmgr.maintenance.service", "opsmgr.store")


def server_side(*modules: str) -> list[str]:
    """The server-side modules importing ``modules`` in a fresh interpreter loads (all of them must load)."""
    code = f"import sys, json; import {', '.join(modules)}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = json.loads(out.stdout)
    assert set(modules) <= set(loaded)
    return [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


def test_backup_and_restore_in_the_agent_import_no_store() -> None:
    """The shipper, its two adapters (the backing store's imports the store only when it opens one), restores
    and the slice codec."""
    assert server_side("opsmgr.agent.shipper", "opsmgr.agent.backing", "opsmgr.agent.backup") == []


def test_the_agent_loop_and_fleet_import_no_server_side_module() -> None:
    assert server_side("opsmgr.agent.loop", "opsmgr.agent.fleet") == []

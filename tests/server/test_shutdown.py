"""A clean stop: SIGTERM and SIGINT end ``opsmgr server`` with exit status 0, saying so in its log, its
periodic jobs stopped and its SQLite backing databases closed (their write-ahead logs checkpointed into the
files and removed)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.procs import ServerProcess, free_port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    server = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        key = server.create_key("ORG_OWNER")
        with server.client(key) as api:  # a write, so that the stores have something to checkpoint
            assert api.post("/groups", json={"name": "before-the-stop"}).status_code == 201
        assert list(tmp_path.rglob("*.sqlite*-wal")) or list(tmp_path.rglob("*-wal")), "no WAL while serving"
    finally:
        code = server.stop(sig)
    log = server.log()
    assert code == 0, log[-2000:]
    assert "stopping: the periodic jobs, then the stores" in log
    assert "stopped: the backing databases are closed" in log
    assert "Traceback" not in log, log[-2000:]
    assert not list(tmp_path.rglob("*-wal")), list(tmp_path.rglob("*-wal"))

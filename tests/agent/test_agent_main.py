"""``opsmgr agent`` as a process: config errors name the keys, SIGTERM/SIGINT end it cleanly."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.procs import OPSMGR, free_port, run_cli, wait_for


def test_a_bad_config_names_the_keys_and_exits_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "automation-agent.config"
    config.write_text("mmsBaseUrl=ftp://somewhere\ndriver=docker\n")
    result = run_cli("agent", "--config", str(config))
    assert result.returncode != 0
    for key in ("mmsGroupId", "mmsApiKey", "mmsBaseUrl", "stateDir", "driver"):
        assert key in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_agent_cleanly_while_the_server_is_away(tmp_path: Path, sig: signal.Signals) -> None:
    config = tmp_path / "automation-agent.config"
    log_file = tmp_path / "agent.log"
    config.write_text(
        "mmsGroupId=g1\nmmsApiKey=k1\n"
        f"mmsBaseUrl=http://127.0.0.1:{free_port()}\n"  # nothing listens there
        f"hostname=h1.example.net\nstateDir=state\nlogFile={log_file}\n"
        "driver=mongod\nmongod.binary=/nonexistent/mongod\npollIntervalSeconds=0.2\n"
    )
    proc = subprocess.Popen(
        [*OPSMGR, "agent", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: "server unreachable, retrying in" in log_file.read_text(), 30, what="a failed poll")
        proc.send_signal(sig)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log_file.read_text()
    assert "agent stopped; processes left as they are" in text
    assert (tmp_path / "state").is_dir()

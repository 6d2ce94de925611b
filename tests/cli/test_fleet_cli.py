"""``opsmgr fleet`` against a real server: the agent API key comes from a file or the environment, never the
command line (where ``ps`` shows it to every user), and the agent configs it writes are readable by their
owner only.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import OPSMGR, ServerProcess, run_cli

pytestmark = pytest.mark.e2e

HOSTS = ["f0.fleetkey.sim", "f1.fleetkey.sim", "f2.fleetkey.sim"]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def deployment(server: ServerProcess, owner: dict[str, Any], tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(server, owner, tmp_path, f"fleet-key-{tmp_path.name}")
    try:
        yield d
    finally:
        d.close()


@pytest.mark.parametrize("source", ["file", "env"])
def test_fleet_takes_its_key_from_a_file_or_the_environment(
    deployment: Deployment, tmp_path: Path, source: str
) -> None:
    d = deployment
    state = tmp_path / "fleet"
    args = ["--url", d.server.url, "--group-id", d.group_id, "--hosts", ",".join(HOSTS)]
    env = dict(os.environ)
    if source == "file":
        key_file = tmp_path / "agent.key"
        key_file.write_text(d.agent_key + "\n")
        args += ["--agent-key-file", str(key_file)]
    else:
        env["OPSMGR_AGENT_KEY"] = d.agent_key
    version = d.put(replica_set_config(HOSTS, rs=f"fk{source}"))
    with open(tmp_path / "fleet.out", "wb") as out:
        proc = subprocess.Popen(
            [*OPSMGR, "fleet", *args, "--state-dir", str(state), "--poll-interval", "0.2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        d.wait_goal(version, 3)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"fleet" in cmdline and d.agent_key.encode() not in cmdline
    finally:
        proc.terminate()
        proc.wait(30)
    assert mode(state) == 0o700
    for host in HOSTS:
        config = state / host / "automation-agent.config"
        assert d.agent_key in config.read_text()
        assert mode(config) == 0o600, f"{config} is readable by others"


def test_fleet_refuses_a_key_on_the_command_line(tmp_path: Path) -> None:
    state = tmp_path / "fleet"
    base = ["fleet", "--url", "http://127.0.0.1:9", "--group-id", "g1", "--hosts", "h1.sim"]
    done = run_cli(*base, "--agent-key", "s3cret", "--state-dir", str(state))
    assert done.returncode != 0
    assert "--agent-key-file" in done.stderr and "OPSMGR_AGENT_KEY" in done.stderr
    assert not state.exists(), "nothing is started"
    missing = run_cli(*base, "--state-dir", str(state), env={"OPSMGR_AGENT_KEY": ""})
    assert missing.returncode != 0 and "--agent-key-file" in missing.stderr
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    blank = run_cli(*base, "--agent-key-file", str(empty), "--state-dir", str(state))
    assert blank.returncode != 0 and "empty" in blank.stderr
    assert not state.exists()

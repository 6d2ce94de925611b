"""Losing both instances: the installation (and so every backup of its backing databases) is deleted while
real ``opsmgr agent`` processes keep running a replica set on simulated hosts. A new installation adopts the
project with the id and key read from a host's ``automation-agent.config`` (``opsmgr adopt``), the agents'
``mmsBaseUrl`` is pointed at it, and the project takes its latest configuration from them by Restoration
Mode's reconciliation without a process being stopped; an agent of a host not named, with the right key, is
refused; backups of the adopted deployment start again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.test_restoration_mode import HOSTS, INDEX, fresh_hosts, start_backup
from tests.procs import ServerProcess, free_port, run_cli, wait_for

pytestmark = pytest.mark.e2e

MEMBERS = HOSTS[:3]


def agent_config(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_adopt_after_deleting_both_installations(tmp_path: Path) -> None:
    old = ServerProcess(tmp_path / "lost", free_port()).start()
    d = Deployment(old, old.create_key(), tmp_path, "lost")
    new: ServerProcess | None = None
    try:
        for host in MEMBERS:
            d.agent(host)
        d.wait_goal(d.put(replica_set_config(MEMBERS)), 3)
        latest = replica_set_config(MEMBERS) | {"indexConfigs": [INDEX]}
        version = d.put(latest)
        d.wait_goal(version, 3)
        old.stop()
        shutil.rmtree(old.data_dir)

        new = ServerProcess(tmp_path / "new", free_port()).start()
        read = agent_config(d.agents[MEMBERS[0]].config_path)
        adopted = run_cli(
            "adopt",
            *("--group-id", read["mmsGroupId"], "--agent-key", read["mmsApiKey"]),
            *("--hosts", ",".join(MEMBERS), "--name", "adopted", "--json"),
            *new.setup_args(),
        )
        assert adopted.returncode == 0, adopted.stderr
        assert json.loads(adopted.stdout)["id"] == d.group_id
        twice = run_cli(
            "adopt",
            *("--group-id", d.group_id, "--agent-key", d.agent_key, "--hosts", MEMBERS[0]),
            *new.setup_args(),
        )
        assert twice.returncode != 0 and "already exists" in twice.stderr + twice.stdout
        d.server, d.api = new, new.client(new.create_key())
        marks = {host: len(agent.log()) for host, agent in d.agents.items()}
        cut_ms = int(time.time() * 1000)
        for agent in d.agents.values():
            agent.base_url = new.url
            agent.write_config()

        def reconciled() -> dict[str, Any] | None:
            fresh = fresh_hosts(d, cut_ms)
            assert all(h["running"] for h in fresh), f"no agent may stop a process while adopted: {fresh}"
            view = d.api.get(f"/groups/{d.group_id}/restorationMode").json()
            return view if view["state"] == "INACTIVE" else None

        view = wait_for(reconciled, 60, interval=0.2, what="the adopted project reconciled")
        assert view["armedBy"]["restoreJobId"] == "adoption" and view["history"][-1]["exitReason"].startswith(
            "reconciled"
        )
        config = d.api.get(f"/groups/{d.group_id}/automationConfig").json()
        assert config["version"] == version == view["authoritativeConfigVersion"]
        assert [p["hostname"] for p in config["processes"]] == MEMBERS
        assert config["indexConfigs"] == [INDEX]
        d.wait_goal(version, 3)
        for host in MEMBERS:
            log = d.agents[host].log()[marks[host] :]
            assert "Stop (" not in log, f"no process was stopped on {host}"
            assert "adopting automation config version 0 " not in log, "the empty config was never served"

        forged = httpx.get(
            f"{new.url}/agents/api/automation/conf/v1/{d.group_id}",
            params={"hostname": "forged.e2e.sim", "cv": version + 10},
            auth=(d.group_id, d.agent_key),
        )
        assert forged.status_code == 403 and forged.json()["errorCode"] == "AGENT_HOST_NOT_IN_PROJECT"
        assert d.api.get(f"/groups/{d.group_id}/restorationMode").json()["state"] == "INACTIVE"
        start_backup(d)
    finally:
        d.close()
        old.stop()
        if new is not None:
            new.stop()

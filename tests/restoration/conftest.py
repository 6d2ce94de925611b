"""Fixtures of the Restoration Mode tests: a real server whose application database was rolled back while its
agents (plain HTTP clients of the agent protocol) hold a later config."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.agent_protocol import AgentProject, FakeAgent
from tests.configs import replica_set_config
from tests.procs import ServerProcess, free_port, wait_for

HOSTS = ["a.rm.sim", "b.rm.sim", "c.rm.sim"]
APPDB_FILES = ("appdb.sqlite", "appdb.sqlite-wal", "appdb.sqlite-shm")

RolledBack = tuple[ServerProcess, httpx.Client, str, list[FakeAgent]]


@pytest.fixture
def rolled_back(tmp_path: Path) -> Iterator[tuple[ServerProcess, httpx.Client, str, list[FakeAgent]]]:
    """A project whose agents hold config v3 while the application database was rolled back to v1."""
    server = ServerProcess(tmp_path / "data", free_port()).start()
    api = server.client(server.create_key())
    config = replica_set_config(HOSTS)
    project = AgentProject(server.url, api, "rolled-back", config)
    group_id = project.gid
    assert project.version == 1
    agents = [FakeAgent(server.url, group_id, project.agent_key, h) for h in HOSTS]
    for a in agents:
        assert a.poll() == 200
    server.stop()
    backup = tmp_path / "t0"
    backup.mkdir()
    for name in APPDB_FILES:
        if (server.data_dir / name).exists():
            shutil.copy2(server.data_dir / name, backup / name)
    server.start()
    newer = copy.deepcopy(config)
    newer["processes"][0]["version"] = "7.0.6"
    api.put(f"/groups/{group_id}/automationConfig", json=newer)
    newer["indexConfigs"] = [
        {
            "dbName": "app",
            "collectionName": "orders",
            "key": [["customer", 1]],
            "rsName": "rs0",
            "options": {"name": "customer_1"},
        }
    ]
    assert api.put(f"/groups/{group_id}/automationConfig", json=newer).json()["version"] == 3
    for a in agents:
        wait_for(lambda a=a: a.poll() in (200, 304) and a.cv == 3, 10, what="agents at v3")
    server.stop()
    for name in APPDB_FILES:
        (server.data_dir / name).unlink(missing_ok=True)
        if (backup / name).exists():
            shutil.copy2(backup / name, server.data_dir / name)
    server.start()
    try:
        yield server, api, group_id, agents
    finally:
        api.close()
        server.stop()

"""Agent status reports through a real server: bounded to what the server reads, kept only for hosts of the
project, and served fresh to agents after Restoration Mode writes a config (single server: the goal-version
cache is invalidated by every config write)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.agent_protocol import AgentProject, FakeAgent
from tests.configs import replica_set_config
from tests.procs import ServerProcess, free_port, wait_for

HOSTS = ["a.status.sim", "b.status.sim", "c.status.sim"]


Project = tuple[ServerProcess, httpx.Client, str, str]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    server = ServerProcess(tmp_path_factory.mktemp("status") / "data", free_port()).start()
    api = server.client(server.create_key())
    project = AgentProject(server.url, api, "status", replica_set_config(HOSTS))
    try:
        yield server, api, project.gid, project.agent_key
    finally:
        api.close()
        server.stop()


def _appdb_bytes(server: ServerProcess) -> int:
    return sum(p.stat().st_size for p in Path(server.data_dir).glob("appdb.sqlite*"))


def test_huge_reports_do_not_grow_the_database(project: Project) -> None:
    server, api, group_id, agent_key = project
    agent = FakeAgent(server.url, group_id, agent_key, HOSTS[0])
    assert agent.poll() == 200
    before = _appdb_bytes(server)
    body = agent.status()
    body["junk"] = "x" * (7 * 1024 * 1024)  # a field the server never reads
    body["statusSentence"] = "s" * 100_000
    for _ in range(5):
        r = agent.post_status(body)
        assert r.status_code == 200, r.text[:300]
    grown = _appdb_bytes(server) - before
    assert grown < 2 * 1024 * 1024, f"five 7 MiB reports grew the application database by {grown} bytes"
    status = api.get(f"/groups/{group_id}/automationStatus").json()
    sentence = next(p["agentStatus"] for p in status["processes"] if p["hostname"] == HOSTS[0])
    assert sentence.startswith("sss") and len(sentence) <= 2000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"processes": [{"name": f"p{i}"} for i in range(201)]}, "processes"),
        ({"cv": 2**63}, "cv"),
        ({"cv": "5"}, "cv"),
        ({"cv": 1.5}, "cv"),
        ({"cvHash": "not-a-hash"}, "cvHash"),
        ({"processes": [{"name": "p", "observed": {"port": 70000}}]}, "port"),
        ({"processes": [{"name": "p", "observed": {"lagSeconds": -1}}]}, "lagSeconds"),
        ({"processes": [{"name": ""}]}, "name"),
        ({"processes": "all"}, "processes"),
    ],
)
def test_malformed_reports_are_refused(
    project: Project, change: dict[str, object], field: str
) -> None:
    server, _api, group_id, agent_key = project
    agent = FakeAgent(server.url, group_id, agent_key, HOSTS[1])
    agent.poll()
    r = agent.post_status({**agent.status(), **change})
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"]


def test_reports_of_other_hosts_are_not_kept(project: Project) -> None:
    server, api, group_id, agent_key = project
    stranger = FakeAgent(server.url, group_id, agent_key, "stranger.status.sim")
    assert stranger.poll() == 200  # a new agent is served the config: polling claims nothing
    body = stranger.status()
    body["processes"] = [{"name": "ghost", "observed": {"running": True, "replicaStateName": "PRIMARY"}}]
    assert stranger.post_status(body).status_code == 200
    hosts = api.get(f"/groups/{group_id}/hosts").json()["results"]
    assert all(h["processName"] != "ghost" for h in hosts)


def test_a_forced_exit_reaches_agents_holding_the_cached_version(tmp_path: Path) -> None:
    """The defect: the version cache was never reloaded, so an agent at the cached version got "unchanged"
    for ever after Restoration Mode wrote a new goal version."""
    server = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        with server.client(server.create_key()) as api:
            project = AgentProject(server.url, api, "forced", replica_set_config(HOSTS))
            group_id = project.gid
            steady, ahead = (FakeAgent(server.url, group_id, project.agent_key, h) for h in HOSTS[:2])
            assert steady.poll() == 200 and steady.cv == 1
            for _ in range(3):
                assert steady.poll() == 304  # version 1 is cached now
            ahead.held = dict(steady.held, version=9)
            assert ahead.poll() == 304  # the mode begins
            forced = api.delete(f"/groups/{group_id}/restorationMode").json()
            version = api.get(f"/groups/{group_id}/automationConfig").json()["version"]
            assert forced["state"] == "FORCED_EXIT_CONVERGING" and version > 9
            wait_for(lambda: steady.poll() == 200 and steady.cv == version, 2, 0.02, what="the forced config")
            assert ahead.poll() == 200 and ahead.cv == version
    finally:
        server.stop()

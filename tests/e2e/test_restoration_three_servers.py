"""Restoration Mode through three servers reconciles once: three real ``opsmgr server`` processes on one
real PostgreSQL set behind a real HAProxy (round robin, so every server hears the agents), agents that hold
a config newer than the project's goal. The project enters the mode, every agent's claim is collected
across the servers, exactly one agent is asked for its config, its upload is accepted once (a retry of it
reaching another server at the same time writes nothing), the goal version moves once, to the chosen
agent's, the mode's history has one exit, and the agents end holding the reconciled version."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent_protocol import AgentProject, FakeAgent
from tests.configs import replica_set_config
from tests.haproxy import HAProxy, three_servers_behind_haproxy
from tests.pgserver import PgServer
from tests.procs import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

HOSTS = [f"r{i}.three.sim" for i in range(3)]
STATUS_ROUTE = "/agents/api/automation/status/v1/"
NEWER = 3  # the version the agents hold; the project's goal is at 1


@pytest.fixture
def behind_proxy(tmp_path: Path, pg_server: PgServer) -> Iterator[tuple[list[ServerProcess], HAProxy]]:
    # A 2 s poll interval: a round's deadline (3 intervals) is far above what these agents take to report.
    extra = {"mms.agent.pollIntervalSeconds": "2", "mms.server.jobLeaseSeconds": "2"}
    with three_servers_behind_haproxy(tmp_path, pg_server, extra) as both:
        yield both


def _status_reports(server: ServerProcess) -> int:
    """The agent status reports ``server`` answered (from its ``/metrics``)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    counters = [ln for ln in text.splitlines() if ln.startswith("opsmgr_http_requests_total")]
    return sum(int(ln.rsplit(" ", 1)[1]) for ln in counters if STATUS_ROUTE in ln)


def _asked(reports: list[dict[str, Any]]) -> bool:
    return any(r.get("type") == "UPLOAD_CONFIG" for r in reports)


def _holding_newer(agents: list[FakeAgent], config: dict[str, Any]) -> None:
    """Every agent holds ``config`` at version ``NEWER`` (as after a change the restore rolled back), each
    since another instant, so the choice (highest version, then latest timestamp) has one answer."""
    base = int(time.time() * 1000) - 60_000
    for i, agent in enumerate(agents):
        agent.held = copy.deepcopy(config) | {"version": NEWER}
        agent.held_at = base + i * 1000


def test_restoration_mode_through_three_servers_reconciles_once(
    behind_proxy: tuple[list[ServerProcess], HAProxy],
) -> None:
    servers, proxy = behind_proxy
    key = servers[0].create_key()
    api = httpx.Client(
        base_url=f"{proxy.url}/api/public/v1.0",
        auth=httpx.DigestAuth(key["publicKey"], key["privateKey"]),
        timeout=10,
    )
    config = replica_set_config(HOSTS)
    project = AgentProject(proxy.url, api, "three-servers", config)
    assert project.version == 1
    agents = [FakeAgent(proxy.url, project.gid, project.agent_key, h) for h in HOSTS]
    newer = copy.deepcopy(config)
    newer["processes"][0]["version"] = "7.0.6"
    _holding_newer(agents, newer)
    latest = agents[-1]
    reports_before = [_status_reports(s) for s in servers]

    def view() -> dict[str, Any]:
        return dict(api.get(f"/groups/{project.gid}/restorationMode").json())

    assert agents[0].poll() == 304, "an agent holding a newer config is not served the goal"
    wait_for(lambda: view()["state"] == "COLLECTING", 5, what="the project in Restoration Mode")

    # Each agent polls and reports, as a real one does every interval, until one is asked for its config;
    # then a few more cycles, through whichever server HAProxy picks: nobody else is ever asked.
    asked: list[str] = []
    for _cycle in range(40):
        for agent in agents:
            assert agent.poll() == 304
            if _asked(agent.report()):
                asked.append(agent.hostname)
        if asked and len(asked) >= 3:
            break
        time.sleep(0.05)
    assert asked and set(asked) == {latest.hostname}, asked
    waiting = view()
    assert waiting["state"] == "AWAITING_UPLOAD" and waiting["chosenAgent"]["hostname"] == latest.hostname
    heard = {a["hostname"]: a["configVersion"] for a in waiting["agentsHeard"]}
    assert heard == dict.fromkeys(HOSTS, NEWER), "every agent's claim collected across the servers"
    reported = [_status_reports(s) - before for s, before in zip(servers, reports_before, strict=True)]
    assert all(n > 0 for n in reported), f"every server heard reports: {reported}"

    # The upload and its retry (the agent timed out and tried again, reaching another server) at once.
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: latest.upload(), range(2)))
    accepted = [r for r in answers if r.status_code == 200]
    assert accepted, [r.text for r in answers]
    assert all(r.json()["version"] == NEWER for r in accepted), [r.text for r in accepted]
    assert all(r.status_code in (200, 409) for r in answers), [r.text for r in answers]
    late = latest.upload()  # a retry arriving after the exit
    assert late.status_code in (200, 409), late.text
    assert late.status_code == 409 or late.json()["version"] == NEWER

    goal = api.get(f"/groups/{project.gid}/automationConfig").json()
    assert goal["version"] == NEWER, "written once, at the chosen agent's version (a second write is +1)"
    assert goal["processes"][0]["version"] == "7.0.6"
    route = f"/groups/{project.gid}/restorationMode"
    for server in servers:  # every server sees one exit, within the caches' bound
        with server.client(key) as direct:
            wait_for(
                lambda c=direct: c.get(route).json()["state"] == "INACTIVE", 5, what=f"{server.url} exited"
            )
            done = direct.get(route).json()
            assert len(done["history"]) == 1 and done["history"][0]["authoritativeVersion"] == NEWER
            assert done["authoritativeConfigVersion"] == NEWER
    for agent in agents:
        assert agent.poll() == 304 and agent.cv == NEWER, "the agents hold the reconciled version"
        assert not _asked(agent.report())

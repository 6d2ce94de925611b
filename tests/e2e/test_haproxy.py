"""Three real servers on one real PostgreSQL set behind a real HAProxy, as README.md deploys them: the public
API and the agents go through HAProxy only; a config change made through it reaches every agent whichever
server it polls, every server serves agents, each periodic job runs on one server, and when a server is
killed the agents keep their answers through the others and its jobs are taken over."""

from __future__ import annotations

import signal
from collections.abc import Iterator
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

HOSTS = [f"h{i}.haproxy.sim" for i in range(3)]
LEASE_S = 2.0
JOBS = {"backup", "restoration", "alert-webhook", "deployment-alerts"}


@pytest.fixture
def fleet(tmp_path: Path, pg_server: PgServer) -> Iterator[tuple[list[ServerProcess], HAProxy]]:
    extra = {"mms.agent.pollIntervalSeconds": "1", "mms.server.jobLeaseSeconds": str(LEASE_S)}
    with three_servers_behind_haproxy(tmp_path, pg_server, extra) as both:
        yield both


def _metrics(server: ServerProcess) -> str:
    return httpx.get(f"{server.url}/metrics", timeout=10).text


def _agent_polls(server: ServerProcess) -> int:
    lines = _metrics(server).splitlines()
    polls = [
        line
        for line in lines
        if line.startswith("opsmgr_http_requests_total") and "/automation/conf/" in line
    ]
    return sum(int(line.rsplit(" ", 1)[1]) for line in polls)




def _answered(agent: FakeAgent) -> int:
    try:
        return agent.poll()
    except httpx.HTTPError:
        return 0


def test_servers_behind_haproxy_serve_agents_and_share_the_jobs(
    fleet: tuple[list[ServerProcess], HAProxy],
) -> None:
    servers, proxy = fleet
    key = servers[0].create_key()
    api = httpx.Client(
        base_url=f"{proxy.url}/api/public/v1.0",
        auth=httpx.DigestAuth(key["publicKey"], key["privateKey"]),
        timeout=10,
    )
    project = AgentProject(proxy.url, api, "behind-haproxy")
    config: dict[str, Any] = replica_set_config(HOSTS)
    assert project.put(config) == 1
    agents = [FakeAgent(proxy.url, project.gid, project.agent_key, host) for host in HOSTS]

    def all_at(version: int) -> bool:
        return all(_answered(a) in (200, 304) and a.cv == version for a in agents)

    wait_for(lambda: all_at(1), 10, 0.05, what="every agent holding version 1")
    config["processes"][0]["version"] = "7.0.6"
    assert project.put(config) == 2
    wait_for(lambda: all_at(2), 5, 0.05, what="every agent holding version 2, through any server")
    for _ in range(20):
        all_at(2)
    assert all(_agent_polls(s) > 0 for s in servers), [_agent_polls(s) for s in servers]

    wait_for(lambda: set().union(*(s.held_jobs() for s in servers)) >= JOBS, 30, what="every job held")
    held = [s.held_jobs() for s in servers]
    assert all(not (held[i] & held[j]) for i in range(3) for j in range(i + 1, 3)), held

    victim = next(s for s in servers if "backup" in s.held_jobs())
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    survivors = [s for s in servers if s is not victim]
    config["processes"][1]["version"] = "7.0.6"
    wait_for(
        lambda: api.put(f"/groups/{project.gid}/automationConfig", json=config).status_code == 200,
        10,
        0.1,
        what="a config change accepted through HAProxy after the kill",
    )
    wait_for(lambda: all_at(3), 10, 0.05, what="every agent holding version 3 from the survivors")
    wait_for(
        lambda: any("backup" in s.held_jobs() for s in survivors),
        2 * LEASE_S + 5,
        0.1,
        what="the killed server's backup job taken over",
    )

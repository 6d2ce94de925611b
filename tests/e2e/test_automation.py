"""Goal-state automation end to end: a real server process, one real ``opsmgr agent`` process per simulated
host (sharing a sim world file, as real hosts share a network), everything through HTTP.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"node{i}.e2e.sim" for i in range(4)]


@pytest.fixture
def deployment(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    d = Deployment(server, owner, tmp_path, request.node.name[:60])
    try:
        yield d
    finally:
        d.close()


def test_fresh_project_reaches_goal_then_membership_and_priorities_converge(deployment: Deployment) -> None:
    for host in HOSTS:
        deployment.agent(host)
    config = replica_set_config(HOSTS[:3])
    deployment.wait_goal(deployment.put(config), 3)

    grown = replica_set_config(HOSTS)
    deployment.wait_goal(deployment.put(grown), 4)

    prioritised = copy.deepcopy(grown)
    prioritised["replicaSets"][0]["members"][3]["priority"] = 5
    version = deployment.put(prioritised)
    deployment.wait_goal(version, 4)
    primary = [h for h in deployment.hosts() if h["replicaStateName"] == "PRIMARY"]
    assert primary[0]["hostname"] == HOSTS[3], "the highest-priority member becomes primary"

    shrunk = copy.deepcopy(prioritised)
    shrunk["processes"] = shrunk["processes"][:3]
    shrunk["replicaSets"][0]["members"] = shrunk["replicaSets"][0]["members"][:3]
    deployment.wait_goal(deployment.put(shrunk), 3)


def test_agents_restarted_mid_plan_resume_and_converge(deployment: Deployment) -> None:
    for host in HOSTS[:3]:
        deployment.agent(host)
    version = deployment.put(replica_set_config(HOSTS[:3]))
    wait_for(lambda: any(p["plan"] for p in deployment.status()["processes"]), 30, what="a plan in progress")
    for agent in deployment.agents.values():
        agent.stop()
    for agent in deployment.agents.values():
        agent.start()
    deployment.wait_goal(version, 3)


def test_server_restart_leaves_processes_alone(deployment: Deployment) -> None:
    for host in HOSTS[:3]:
        deployment.agent(host)
    version = deployment.put(replica_set_config(HOSTS[:3]))
    deployment.wait_goal(version, 3)
    before = {h["hostname"]: (h["replicaStateName"], h["running"]) for h in deployment.hosts()}
    deployment.server.stop()
    wait_for(
        lambda: all("unreachable" in a.log().splitlines()[-1] for a in deployment.agents.values() if a.log()),
        30,
        what="agents noticing the server is gone",
    )
    deployment.server.start()
    deployment.wait_goal(version, 3)
    after = {h["hostname"]: (h["replicaStateName"], h["running"]) for h in deployment.hosts()}
    assert after == before


def test_wrong_agent_key_is_reported_and_recovers_when_fixed(deployment: Deployment) -> None:
    good = deployment.agent_key
    for host in HOSTS[:2]:
        deployment.agent(host)
    bad = deployment.agent(HOSTS[2], api_key="0" * 64)
    version = deployment.put(replica_set_config(HOSTS[:3]))
    wait_for(lambda: "401" in bad.log(), 30, what="the 401 in the agent's log")
    assert bad.proc is not None and bad.proc.poll() is None, "a rejected key is no reason to exit"
    bad.api_key = good
    bad.write_config()
    deployment.wait_goal(version, 3)


def test_hosts_endpoint_shows_what_agents_observe(deployment: Deployment) -> None:
    for host in HOSTS[:3]:
        deployment.agent(host)
    deployment.wait_goal(deployment.put(replica_set_config(HOSTS[:3])), 3)
    hosts = deployment.hosts()
    assert {h["hostname"] for h in hosts} == set(HOSTS[:3])
    assert all(h["port"] == 27017 and h["replicaSetName"] == "rs0" for h in hosts)
    assert all(h["typeName"] in ("REPLICA_PRIMARY", "REPLICA_SECONDARY") for h in hosts)
    r = httpx.get(f"{deployment.server.url}/metrics")
    assert "/agents/api/automation/conf/v1/{group_id}" in r.text

"""Freshness end to end: a real server told that agents poll every second, real agents on a sim replica set.
An agent stopped -> within 3 poll intervals its host is unreachable (``DOWN``, not running, ``stale``) with
the ``lastPing`` of its last report and what that report said kept in ``lastReportedState``, and its
processes are stale in ``automationStatus``; started again -> fresh. A report received before the server
(re)started is stale however recent (a restored application database holds old reports). Also the
deployment page's row of such a host (pure)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.timestamps import epoch_ms
from opsmgr.ui.deployment_view import UNREACHABLE, deployment_view
from tests.configs import replica_set_config
from tests.deployments import Deployment, replica_set_at_goal
from tests.procs import ServerProcess, started_server, wait_for

pytestmark = pytest.mark.e2e

HOSTS = ["f0.fresh.sim", "f1.fresh.sim"]
POLL_S = 1.0  # the server's notion; the agents poll every 0.2 s, well within it even under load
STALE_MS = 3 * POLL_S * 1000


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    conf = {"mms.agent.pollIntervalSeconds": str(POLL_S)}
    with (
        started_server(tmp_path / "data", conf) as server,
        replica_set_at_goal(server, server.create_key("ORG_OWNER"), tmp_path, "fresh", HOSTS) as d,
    ):
        yield d


def _host(d: Deployment, hostname: str) -> dict[str, Any]:
    return next(h for h in d.hosts() if h["hostname"] == hostname)


def test_a_stopped_agents_host_turns_unreachable_and_back(deployment: Deployment) -> None:
    d, silent, other = deployment, HOSTS[1], HOSTS[0]
    wait_for(lambda: not any(h["stale"] for h in d.hosts()), 30, interval=0.1, what="every host fresh")
    said = _host(d, silent)["replicaStateName"]
    d.agents[silent].stop()
    stopped_ms = time.time() * 1000

    host = wait_for(lambda: (h := _host(d, silent))["stale"] and h, 30, interval=0.1, what="host unreachable")
    seen_ms = time.time() * 1000
    last_ping = epoch_ms(host["lastPing"])
    # lastPing is the agent's last report: before it stopped, and over 3 intervals before the server said so.
    assert last_ping <= stopped_ms and seen_ms - last_ping > STALE_MS, (last_ping, stopped_ms, seen_ms)
    assert seen_ms - stopped_ms < STALE_MS + 10_000, "unreachable within 3 poll intervals (plus load)"
    assert (host["replicaStateName"], host["running"]) == ("DOWN", False)
    assert host["lastReportedState"]["replicaStateName"] == said and host["lastReportedState"]["running"]
    processes = {p["hostname"]: p for p in d.status()["processes"]}
    assert processes[silent]["stale"] is True and processes[silent]["lastReport"] == last_ping
    wait_for(lambda: not _host(d, other)["stale"], 30, interval=0.1, what="the other host stays fresh")

    d.agents[silent].start()
    back = wait_for(lambda: not (h := _host(d, silent))["stale"] and h, 60, interval=0.1, what="host fresh")
    assert back["running"] is True and back["replicaStateName"] in ("PRIMARY", "SECONDARY")
    assert "lastReportedState" not in back and epoch_ms(back["lastPing"]) > stopped_ms
    wait_for(lambda: not {p["hostname"]: p for p in d.status()["processes"]}[silent]["stale"], 30)


def _report(server: ServerProcess, gid: str, key: str, hostname: str) -> None:
    """One status report of ``hostname``'s agent: its process ``rs0_0`` runs as PRIMARY."""
    observed = {"running": True, "replicaStateName": "PRIMARY", "replicaSetName": "rs0"}
    r = httpx.post(
        f"{server.url}/agents/api/automation/status/v1/{gid}",
        params={"hostname": hostname},
        json={"cv": 1, "processes": [{"name": "rs0_0", "observed": observed}]},
        headers={"Authorization": "Basic " + base64.b64encode(f"{gid}:{key}".encode()).decode()},
    )
    assert r.status_code == 200, r.text


def test_reports_from_before_the_servers_start_are_stale(tmp_path: Path) -> None:
    host = "r0.fresh.sim"
    # Agents told to poll every minute: only the restart can make the report stale within this test.
    with started_server(tmp_path / "data", {"mms.agent.pollIntervalSeconds": "60"}) as server:
        owner = server.create_key("ORG_OWNER")
        with server.client(owner) as api:
            gid = api.post("/groups", json={"name": "restarted"}).json()["id"]
            key = api.post(f"/groups/{gid}/agentapikeys", json={"desc": "a"}).json()["key"]
            assert (
                api.put(f"/groups/{gid}/automationConfig", json=replica_set_config([host])).status_code == 200
            )
            _report(server, gid, key, host)
            before = api.get(f"/groups/{gid}/hosts").json()["results"][0]
            assert (before["stale"], before["replicaStateName"], before["running"]) == (
                False,
                "PRIMARY",
                True,
            )
        server.stop()
        server.start()
        with server.client(owner) as api:
            after = api.get(f"/groups/{gid}/hosts").json()["results"][0]
            assert (after["stale"], after["replicaStateName"], after["running"]) == (True, "DOWN", False)
            assert after["lastPing"] == before["lastPing"]
            assert after["lastReportedState"]["replicaStateName"] == "PRIMARY"
            assert api.get(f"/groups/{gid}/automationStatus").json()["processes"][0]["stale"] is True
            _report(server, gid, key, host)
            again = api.get(f"/groups/{gid}/hosts").json()["results"][0]
            assert (again["stale"], again["replicaStateName"], again["running"]) == (False, "PRIMARY", True)


def test_the_deployment_page_says_when_an_unreachable_host_was_last_heard() -> None:
    config = replica_set_config(HOSTS) | {"version": 1}
    status = {"goalVersion": 1, "processes": []}
    hosts = [
        {"processName": "rs0_0", "running": True, "replicaStateName": "PRIMARY", "lastPing": 90_000},
        {
            "processName": "rs0_1",
            "running": False,
            "replicaStateName": "DOWN",
            "lastPing": 50_000,
            "stale": True,
        },
    ]
    view = deployment_view(config, status, hosts, now_ms=100_000)
    rows = {r.name: r for r in view.groups[0].rows}
    assert (rows["rs0_0"].state, rows["rs0_0"].heard) == ("PRIMARY", "")
    assert (rows["rs0_1"].state, rows["rs0_1"].heard) == (UNREACHABLE, "last heard 50 s ago")
    assert view.reported == 1, "an unreachable host is not reporting"

"""Deployment alerts end to end: a real server told that agents poll every second, real sim agents on a
3-member replica set, and the project's default alert configurations (none stored). An agent stopped ->
within a few poll intervals HOST_DOWN (typeName HOST) opens for its host, once, and AUTOMATION_AGENT_DOWN for
its agent, while the other two hosts raise nothing (2 of 3 healthy is a majority); started again -> both
close. Then with NO_PRIMARY enabled (notified by a signed webhook) and HOST_DOWN configured only for a host
that stays up (a matcher), the primary's agent stopped opens NO_PRIMARY only, posted to the
configuration's webhook when it opens and when it closes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployments import Deployment, replica_set_at_goal
from tests.procs import started_server, wait_for
from tests.server.test_alerts_api import Receiver

pytestmark = pytest.mark.e2e

HOSTS = ["d0.alerts.sim", "d1.alerts.sim", "d2.alerts.sim"]
POLL_S = 1.0  # the server's notion; the agents poll every 0.2 s
DEPLOYMENT_EVENTS = {"HOST_DOWN", "AUTOMATION_AGENT_DOWN", "NO_PRIMARY", "TOO_FEW_HEALTHY_MEMBERS"}


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    conf = {"mms.agent.pollIntervalSeconds": str(POLL_S)}
    with (
        started_server(tmp_path / "data", conf) as server,
        replica_set_at_goal(server, server.create_key("ORG_OWNER"), tmp_path, "alerts", HOSTS) as d,
    ):
        yield d


def _alerts(d: Deployment, status: str) -> list[dict[str, Any]]:
    r = d.api.get(f"/groups/{d.group_id}/alerts", params={"status": status})
    assert r.status_code == 200, r.text
    return [a for a in r.json()["results"] if a["eventTypeName"] in DEPLOYMENT_EVENTS]


def _of(d: Deployment, status: str, event: str) -> list[dict[str, Any]]:
    return [a for a in _alerts(d, status) if a["eventTypeName"] == event]


def test_a_stopped_agent_opens_host_down_once_and_it_closes_when_back(deployment: Deployment) -> None:
    d, silent = deployment, HOSTS[2]
    wait_for(lambda: not any(h["stale"] for h in d.hosts()), 30, interval=0.1, what="every host fresh")
    # While the set came up its members were not yet healthy: what that opened closes.
    wait_for(lambda: not _alerts(d, "OPEN"), 30, interval=0.2, what="no deployment alert open at goal")
    d.agents[silent].stop()

    (down,) = wait_for(lambda: _of(d, "OPEN", "HOST_DOWN"), 20, interval=0.2, what="HOST_DOWN open")
    assert down["typeName"] == "HOST" and down["hostnameAndPort"].startswith(silent + ":")
    assert down["replicaSetName"] == "rs0"
    (agent,) = wait_for(lambda: _of(d, "OPEN", "AUTOMATION_AGENT_DOWN"), 10, interval=0.2, what="agent down")
    assert agent["typeName"] == "AGENT" and silent in agent["message"]
    # Opened once: later evaluations keep the one alert; 2 of 3 members healthy raise nothing of the set.
    assert [a["id"] for a in _of(d, "OPEN", "HOST_DOWN")] == [down["id"]]
    assert {a["eventTypeName"] for a in _alerts(d, "OPEN")} == {"HOST_DOWN", "AUTOMATION_AGENT_DOWN"}

    d.agents[silent].start()
    wait_for(lambda: not _alerts(d, "OPEN"), 60, interval=0.2, what="the deployment alerts closing")
    closed = {a["id"]: a for a in _alerts(d, "CLOSED")}
    assert closed[down["id"]]["resolved"] and closed[agent["id"]]["status"] == "CLOSED"


def test_only_enabled_configurations_are_evaluated_and_their_webhook_hears(deployment: Deployment) -> None:
    d = deployment
    wait_for(lambda: not _alerts(d, "OPEN"), 30, interval=0.2, what="no deployment alert open at goal")
    receiver = Receiver(failures=0)
    try:
        note = {"typeName": "WEBHOOK", "intervalMin": 5, "delayMin": 0, "webhookUrl": receiver.url}
        path = f"/groups/{d.group_id}/alertConfigs"
        made = d.api.post(path, json={"eventTypeName": "NO_PRIMARY", "notifications": [note]})
        assert made.status_code == 201, made.text
        primary = next(h["hostname"] for h in d.hosts() if h["replicaStateName"] == "PRIMARY")
        elsewhere = [{"fieldName": "HOSTNAME", "operator": "NOT_EQUALS", "value": primary}]
        narrowed = {"eventTypeName": "HOST_DOWN", "matchers": elsewhere, "notifications": [note]}
        assert d.api.post(path, json=narrowed).status_code == 201
        d.agents[primary].stop()

        # The primary's agent silent: its host is unreachable, the two that report have no primary.
        # NO_PRIMARY opens in the same evaluation HOST_DOWN would, had its matcher not excluded the host.
        (alert,) = wait_for(lambda: _of(d, "OPEN", "NO_PRIMARY"), 20, interval=0.2, what="NO_PRIMARY open")
        assert alert["typeName"] == "REPLICA_SET" and alert["replicaSetName"] == "rs0"
        assert {a["eventTypeName"] for a in _alerts(d, "OPEN")} == {"NO_PRIMARY"}
        (heard,) = wait_for(lambda: receiver.received, 10, interval=0.1, what="the configuration's webhook")
        assert (heard["id"], heard["notification"]) == (alert["id"], "OPEN")
        assert receiver.signed[0][0]["X-MMS-Event"] == "alert.open"

        d.agents[primary].start()
        wait_for(lambda: not _alerts(d, "OPEN"), 60, interval=0.2, what="NO_PRIMARY closed")
        wait_for(lambda: len(receiver.received) == 2, 10, interval=0.1, what="the closing's webhook")
        assert (receiver.received[1]["id"], receiver.received[1]["notification"]) == (alert["id"], "CLOSED")
    finally:
        receiver.close()

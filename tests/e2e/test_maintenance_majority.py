"""Majority lost during a rolling change, end to end: a real server and one real ``opsmgr agent`` per
simulated host. A 3-member set rolls a restart; the member it takes out cannot start again, and meanwhile
another member crashes: the set has one vote of three. The server sees it in the agents' reports:
``MAINTENANCE_MAJORITY_LOST`` opens, the change's record keeps the spell and the change does not read RUNNING
(``ROLLING_CHANGE_BLOCKED`` opens for it); once the members are back the alerts close and the spell has its
duration. With a temporary arbiter
configured, the arbiter is listed by ``GET /hosts`` while it exists, and the change's kept warnings say it is
in place rather than asking for one."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import QUICK_MAINTENANCE, Deployment, replica_set_at_goal
from tests.procs import ServerProcess, started_server, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"q{i}.e2e.sim" for i in range(3)]
ALERT = "MAINTENANCE_MAJORITY_LOST"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with started_server(tmp_path_factory.mktemp("server") / "data", QUICK_MAINTENANCE) as srv:
        yield srv


def _alerts(d: Deployment, event: str = ALERT) -> list[dict[str, Any]]:
    r = d.api.get(f"/groups/{d.group_id}/alerts", params={"status": "OPEN"})
    assert r.status_code == 200, r.text
    return [a for a in r.json()["results"] if a["eventTypeName"] == event]


def _change(d: Deployment) -> dict[str, Any] | None:
    r = d.api.get(f"/groups/{d.group_id}/maintenance")
    assert r.status_code == 200, r.text
    return next(iter(r.json()["results"]), None)


def _restart_all(config: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(config)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for p in out["processes"]:
        p["lastRestart"] = stamp
    return out


def test_a_second_failure_during_a_rolling_change_opens_the_majority_lost_alert(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path
) -> None:
    with replica_set_at_goal(server, owner, tmp_path, "majority", HOSTS) as d:
        world = SimWorld.open(tmp_path / "world.sqlite")
        config = dict(d.api.get(f"/groups/{d.group_id}/automationConfig").json())
        primary = next(v for v in world.replica_sets() if v.name == "rs0").primary
        secondaries = [
            (p["name"], p["hostname"])
            for p in config["processes"]
            if f"{p['hostname']}:{p['args2_6']['net']['port']}" != primary
        ]
        for name, host in secondaries:
            world.fail_start(host, name)  # whichever goes out first stays out
        try:
            d.put(_restart_all(config))
            out = wait_for(
                lambda: next((n for n, h in secondaries if world.observe(h, n).pid is None), None),
                30,
                0.1,
                what="a member out for its maintenance",
            )
            other, other_host = next((n, h) for n, h in secondaries if n != out)
            assert world.kill(other_host, other)
            (alert,) = wait_for(lambda: _alerts(d), 20, 0.2, what="the majority-lost alert")
            assert alert["replicaSetName"] == "rs0" and "1 of 3 votes" in alert["message"], alert
            change = _change(d)
            assert change is not None and change["state"] != "RUNNING", change
            spell = change["majorityLost"][-1]
            assert spell["until"] is None and set(spell["down"]) >= {out, other}, spell
            # The deployment alerts see the change in its state too (BLOCKED while the majority is lost).
            stuck = f"ROLLING_CHANGE_{change['state']}"
            (blocked,) = wait_for(lambda: _alerts(d, stuck), 20, 0.2, what=stuck)
            assert blocked["replicaSetName"] == "rs0" and blocked["typeName"] == "REPLICA_SET", blocked
        finally:
            world.heal()
        wait_for(lambda: not _alerts(d), 60, 0.2, what="the alert closing once the majority is back")
        wait_for(lambda: not _alerts(d, stuck), 60, 0.2, what="the change's alert closing as it moves on")
        change = _change(d)
        assert change is not None and change["majorityLost"][-1]["durationSecs"] > 0, change
        world.close()


def _arbiter_hosts(d: Deployment) -> list[dict[str, Any]]:
    return [h for h in d.hosts() if (h.get("opsmgr") or {}).get("temporary")]


def test_the_temporary_arbiter_is_a_host_while_it_exists_and_the_warning_says_it_is_in_place(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path
) -> None:
    d = Deployment(server, owner, tmp_path, "arbiter")
    try:
        for host in [*HOSTS, "arb.e2e.sim"]:
            d.agent(host)
        config = replica_set_config(HOSTS)
        d.wait_goal(d.put(config), 3)
        rolled = _restart_all(config)
        rolled["replicaSets"][0]["maintenance"] = {
            "temporaryArbiter": {"hostname": "arb.e2e.sim", "port": 27020}
        }
        d.put(rolled)
        seen: list[dict[str, Any]] = []

        def arbiter_listed() -> bool:
            seen.extend(h for h in _arbiter_hosts(d) if h["replicaStateName"] == "ARBITER")
            return bool(seen)

        wait_for(arbiter_listed, 60, 0.1, what="the temporary arbiter in /hosts")
        host = seen[0]
        assert (host["typeName"], host["hostname"], host["port"]) == ("REPLICA_ARBITER", "arb.e2e.sim", 27020)
        change = wait_for(lambda: (c := _change(d)) and c["state"] == "DONE" and c, 90, 0.2, what="DONE")
        assert host["opsmgr"]["temporaryFor"] == change["id"]
        assert _arbiter_hosts(d) == [], "gone once stopped"
        in_place = [w for w in change["warnings"] if "arb.e2e.sim:27020 is in place" in w]
        assert in_place and not any("remedies" in w for w in change["warnings"]), change["warnings"]
    finally:
        d.close()

"""Deployment alerts' decisions (pure): which conditions hold for hosts and agents as the server sees them,
and which open alerts close."""

from __future__ import annotations

from typing import Any

from opsmgr.automation.deployment_alerts import (
    LAG_METRIC,
    Condition,
    agents_down,
    conditions,
    hosts_down,
    lagging,
    no_primary,
    to_close,
    too_few_healthy,
)
from opsmgr.store.alert_configs import DEFAULTS


def host(
    n: int, state: str = "SECONDARY", *, stale: bool = False, rs: str | None = "rs0", **more: Any
) -> dict[str, Any]:
    return {
        "id": f"h{n}",
        "hostname": f"n{n}.sim",
        "port": 27017,
        "replicaSetName": rs,
        "replicaStateName": "DOWN" if stale else state,
        "stale": stale,
    } | more


def keys(found: list[Condition]) -> list[str]:
    return [c.key for c in found]


def test_a_stale_host_is_down_and_a_fresh_one_is_not() -> None:
    found = hosts_down([host(0, "PRIMARY"), host(1, stale=True)])
    assert keys(found) == ["deployment:HOST_DOWN:h1"]
    assert (found[0].event_type, found[0].type_name) == ("HOST_DOWN", "HOST")
    assert found[0].details["hostnameAndPort"] == "n1.sim:27017"


def test_no_primary_needs_reporting_members_without_a_primary() -> None:
    assert no_primary([host(0, "PRIMARY"), host(1), host(2)]) == []
    assert keys(no_primary([host(0), host(1), host(2, stale=True)])) == ["deployment:NO_PRIMARY:rs0"]
    # No member reporting: that is HOST_DOWN's to say, not NO_PRIMARY's.
    assert no_primary([host(0, stale=True), host(1, stale=True)]) == []
    # A stale member's last word of PRIMARY does not count.
    assert keys(
        no_primary([host(0, stale=True, lastReportedState={"replicaStateName": "PRIMARY"}), host(1)])
    ) == ["deployment:NO_PRIMARY:rs0"]
    assert no_primary([host(0, rs=None)]) == []


def test_too_few_healthy_members_is_fewer_than_a_majority() -> None:
    three = [host(0, "PRIMARY"), host(1), host(2)]
    assert too_few_healthy(three) == []
    assert too_few_healthy([*three[:2], host(2, stale=True)]) == []  # 2 of 3 is a majority
    # A temporary arbiter votes: with it, 2 data members of 3 still make a majority of 4 (3).
    assert too_few_healthy([*three[:2], host(2, stale=True), host(3, "ARBITER")]) == []
    found = too_few_healthy([three[0], host(1, stale=True), host(2, "RECOVERING")])
    assert (
        keys(found) == ["deployment:TOO_FEW_HEALTHY_MEMBERS:rs0"]
        and "1 healthy members of 3" in found[0].message
    )
    assert keys(too_few_healthy([host(0, "PRIMARY"), host(1, stale=True)])) == [
        "deployment:TOO_FEW_HEALTHY_MEMBERS:rs0"
    ]  # 1 of 2 is not a majority


def test_replication_lag_over_the_threshold_on_fresh_hosts_only() -> None:
    hosts = [
        host(0, "PRIMARY", lagSeconds=0),
        host(1, lagSeconds=61.5),
        host(2, lagSeconds=60),
        host(3, stale=True, lagSeconds=500),
        host(4, lagSeconds=None),
        host(5, lagSeconds=True),
    ]
    found = lagging(hosts, 60)
    assert keys(found) == [f"deployment:{LAG_METRIC}:h1"]
    assert found[0].event_type == "OUTSIDE_METRIC_THRESHOLD" and found[0].details["metricName"] == LAG_METRIC
    assert found[0].details["currentValue"] == {"number": 61.5, "units": "SECONDS"}
    assert keys(lagging(hosts, 100)) == []


def test_an_agent_not_reporting_is_down() -> None:
    found = agents_down({"a.sim": True, "b.sim": False})
    assert keys(found) == ["deployment:AUTOMATION_AGENT_DOWN:b.sim"] and found[0].type_name == "AGENT"


def test_only_the_configured_event_types_are_decided() -> None:
    hosts = [host(0, stale=True), host(1, lagSeconds=90)]
    every = keys(conditions(hosts, {"n0.sim": False}, DEFAULTS))
    assert every == [
        "deployment:HOST_DOWN:h0",
        "deployment:NO_PRIMARY:rs0",
        "deployment:TOO_FEW_HEALTHY_MEMBERS:rs0",
        f"deployment:{LAG_METRIC}:h1",
        "deployment:AUTOMATION_AGENT_DOWN:n0.sim",
    ]
    assert keys(conditions(hosts, {"n0.sim": False}, {"HOST_DOWN": None})) == ["deployment:HOST_DOWN:h0"]
    assert keys(conditions(hosts, {}, {LAG_METRIC: 120.0})) == []
    assert conditions(hosts, {"n0.sim": False}, {}) == []


def test_open_deployment_alerts_whose_condition_cleared_close_and_others_raisers_keys_stay() -> None:
    holding = hosts_down([host(0, stale=True)])
    open_keys = ["deployment:HOST_DOWN:h0", "deployment:HOST_DOWN:h1", "backup:s1:snapshot-missed"]
    assert to_close(open_keys, holding) == ["deployment:HOST_DOWN:h1"]

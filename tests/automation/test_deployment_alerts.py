"""Deployment alerts' decisions (pure): which conditions hold for hosts and agents as the server sees them,
and which open alerts close."""

from __future__ import annotations

from typing import Any

from opsmgr.automation.deployment_alerts import (
    ChangeFact,
    Condition,
    Facts,
    agents_down,
    conditions,
    confirmed,
    hosts_down,
    lagging,
    no_primary,
    to_close,
    too_few_healthy,
)
from opsmgr.store.alert_rules import DEFAULT_RULES, LAG_METRIC, METRIC, OPLOG_METRIC, Matcher, Rule


def lag_rule(threshold: float) -> Rule:
    return Rule(METRIC, LAG_METRIC, "GREATER_THAN", threshold)


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
    found = lagging(hosts, lag_rule(60))
    assert keys(found) == [f"deployment:{LAG_METRIC}:h1"]
    assert found[0].event_type == "OUTSIDE_METRIC_THRESHOLD" and found[0].details["metricName"] == LAG_METRIC
    assert found[0].details["currentValue"] == {"number": 61.5, "units": "SECONDS"}
    assert keys(lagging(hosts, lag_rule(100))) == []


def test_an_agent_not_reporting_is_down() -> None:
    found = agents_down({"a.sim": True, "b.sim": False})
    assert keys(found) == ["deployment:AUTOMATION_AGENT_DOWN:b.sim"] and found[0].type_name == "AGENT"


def test_only_the_configured_event_types_are_decided() -> None:
    facts = Facts(hosts=[host(0, stale=True), host(1, lagSeconds=90)], agents={"n0.sim": False})
    every = keys(conditions(facts, DEFAULT_RULES))
    assert every == [
        "deployment:HOST_DOWN:h0",
        "deployment:NO_PRIMARY:rs0",
        "deployment:TOO_FEW_HEALTHY_MEMBERS:rs0",
        "deployment:AUTOMATION_AGENT_DOWN:n0.sim",
        f"deployment:{LAG_METRIC}:h1",
    ]
    assert keys(conditions(facts, [Rule("HOST_DOWN")])) == ["deployment:HOST_DOWN:h0"]
    assert keys(conditions(facts, [lag_rule(120.0)])) == []
    assert conditions(facts, []) == []


def test_matchers_keep_only_the_conditions_they_hold_for() -> None:
    facts = Facts(hosts=[host(0, stale=True), host(1, stale=True, rs="other"), host(2, lagSeconds=90)])
    on_rs0 = Rule("HOST_DOWN", matchers=(Matcher("REPLICA_SET_NAME", "EQUALS", "rs0"),))
    assert keys(conditions(facts, [on_rs0])) == ["deployment:HOST_DOWN:h0"]
    by_host = Rule("HOST_DOWN", matchers=(Matcher("HOSTNAME", "REGEX", r"n[01]\.sim"),))
    assert keys(conditions(facts, [by_host])) == ["deployment:HOST_DOWN:h0", "deployment:HOST_DOWN:h1"]
    by_port = Rule("HOST_DOWN", matchers=(Matcher("PORT", "NOT_EQUALS", "27017"),))
    assert conditions(facts, [by_port]) == []
    secondaries = Rule(METRIC, LAG_METRIC, "GREATER_THAN", 30, (Matcher("TYPE_NAME", "EQUALS", "SECONDARY"),))
    assert keys(conditions(facts, [secondaries])) == [f"deployment:{LAG_METRIC}:h2"]
    primaries = Rule(METRIC, LAG_METRIC, "GREATER_THAN", 30, (Matcher("TYPE_NAME", "EQUALS", "PRIMARY"),))
    assert conditions(facts, [primaries]) == []


def test_an_oplog_window_below_what_maintenance_needs_is_one_alert_per_set() -> None:
    hosts = [
        host(0, "PRIMARY", processName="p0"),
        host(1, processName="p1"),
        host(2, stale=True, processName="p2"),
    ]
    needed = 300 * 2 / 3600  # the preflight's default estimate times its margin
    short = Facts(hosts=hosts, oplog_hours={"p0": 0.1, "p1": 0.12, "p2": 50.0}, oplog_needed_h=needed)
    by_default = [r for r in DEFAULT_RULES if r.metric == OPLOG_METRIC]
    found = conditions(short, by_default)
    assert keys(found) == [f"deployment:{OPLOG_METRIC}:rs0"]
    assert found[0].details["currentValue"] == {"number": 0.12, "units": "HOURS"}
    assert found[0].details["hostnameAndPort"] == "n1.sim:27017", "the best fresh window is what counts"
    assert conditions(Facts(hosts=hosts, oplog_hours={"p1": 0.2}, oplog_needed_h=needed), by_default) == []
    explicit = Rule(METRIC, OPLOG_METRIC, "LESS_THAN", 24.0)
    assert keys(conditions(Facts(hosts=hosts, oplog_hours={"p1": 0.2}), [explicit])) == [
        f"deployment:{OPLOG_METRIC}:rs0"
    ]


def test_a_rolling_change_blocked_or_failed_raises_while_it_is_in_that_state() -> None:
    changes = [
        ChangeFact("rs0", "BLOCKED", "majority lost"),
        ChangeFact("rs1", "FAILED", "n2 did not come back"),
        ChangeFact("rs2", "RUNNING", None),
    ]
    found = conditions(Facts(changes=changes), DEFAULT_RULES)
    assert keys(found) == ["deployment:ROLLING_CHANGE_BLOCKED:rs0", "deployment:ROLLING_CHANGE_FAILED:rs1"]
    assert "majority lost" in found[0].message and found[1].details == {"replicaSetName": "rs1"}
    assert conditions(Facts(changes=changes[2:]), DEFAULT_RULES) == []


def test_open_deployment_alerts_whose_condition_cleared_close_and_others_raisers_keys_stay() -> None:
    holding = hosts_down([host(0, stale=True)])
    open_keys = ["deployment:HOST_DOWN:h0", "deployment:HOST_DOWN:h1", "backup:s1:snapshot-missed"]
    assert to_close(open_keys, holding) == ["deployment:HOST_DOWN:h1"]


def test_a_lag_threshold_of_zero_is_the_one_the_message_names() -> None:
    (found,) = lagging([host(1, lagSeconds=2)], lag_rule(0))
    assert "threshold 0 s" in found.message


def test_a_condition_is_raised_once_it_held_twice_or_is_open_already() -> None:
    holding = no_primary([host(0, "SECONDARY"), host(1, "STARTUP2")])
    key = "deployment:NO_PRIMARY:rs0"
    assert confirmed(holding, set(), []) == [], "seen once: members still starting"
    assert keys(confirmed(holding, {key}, [])) == [key], "held at the previous evaluation too"
    assert keys(confirmed(holding, set(), [key])) == [key], "already open: refreshed"

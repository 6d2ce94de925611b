"""Alert configurations' validation and what a project evaluates (pure)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsmgr.errors import InvalidInput
from opsmgr.store.alert_configs import SECRET_MASK, sealed, shown_notifications, validated
from opsmgr.store.alert_rules import (
    DEFAULT_RULES,
    LAG_METRIC,
    MAX_SUBJECT,
    Matcher,
    Rule,
    evaluated,
    holds,
    webhooks,
)

EMAIL = [{"typeName": "GROUP", "intervalMin": 5, "delayMin": 0, "emailEnabled": True}]


def lag(threshold: float, enabled: bool = True) -> dict[str, Any]:
    metric = {
        "metricName": LAG_METRIC,
        "operator": "GREATER_THAN",
        "threshold": threshold,
        "units": "SECONDS",
    }
    return {"eventTypeName": "OUTSIDE_METRIC_THRESHOLD", "enabled": enabled, "metricThreshold": metric}


def test_a_valid_body_is_kept_with_its_defaults() -> None:
    fields = validated({"eventTypeName": "HOST_DOWN", "notifications": EMAIL})
    assert fields["enabled"] is True and fields["typeName"] == "HOST" and fields["matchers"] == []
    assert fields["notifications"] == EMAIL and fields["metricThreshold"] is None
    metric = validated(
        lag(30) | {"notifications": [{"typeName": "WEBHOOK", "webhookUrl": "http://127.0.0.1/h"}]}
    )
    assert metric["metricThreshold"]["threshold"] == 30.0 and metric["notifications"][0]["intervalMin"] == 60


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (
            {"eventTypeName": "NO_SUCH", "notifications": EMAIL},
            "eventTypeName",
            "INVALID_EVENT_TYPE_FOR_ALERT",
        ),
        ({"eventTypeName": 7, "notifications": EMAIL}, "eventTypeName", "INVALID_EVENT_TYPE_FOR_ALERT"),
        ({"eventTypeName": "HOST_DOWN"}, "notifications", "MISSING_NOTIFICATIONS"),
        ({"eventTypeName": "HOST_DOWN", "notifications": []}, "notifications", "MISSING_NOTIFICATIONS"),
        ({"eventTypeName": "HOST_DOWN", "notifications": EMAIL, "enabled": "yes"}, "enabled", None),
        (
            {"eventTypeName": "HOST_DOWN", "notifications": [{"typeName": "FAX"}]},
            "notifications[0].typeName",
            None,
        ),
        (
            {"eventTypeName": "HOST_DOWN", "notifications": [{"typeName": "WEBHOOK"}]},
            "notifications[0].webhookUrl",
            None,
        ),
        (
            {"eventTypeName": "HOST_DOWN", "notifications": [{"typeName": "GROUP", "intervalMin": 1}]},
            "notifications[0].intervalMin",
            None,
        ),
        (
            {"eventTypeName": "HOST_DOWN", "notifications": [{"typeName": "GROUP", "bogus": 1}]},
            "notifications[0]",
            None,
        ),
        ({"eventTypeName": "HOST_DOWN", "notifications": EMAIL * 11}, "notifications", None),
        (
            {"eventTypeName": "HOST_DOWN", "notifications": EMAIL, "matchers": [{"fieldName": "X"}]},
            "matchers[0].fieldName",
            None,
        ),
        ({"eventTypeName": "OUTSIDE_METRIC_THRESHOLD", "notifications": EMAIL}, "metricThreshold", None),
        (lag(-1) | {"notifications": EMAIL}, "metricThreshold.threshold", None),
        (
            lag(5) | {"notifications": EMAIL, "metricThreshold": {"metricName": "CPU", "threshold": 1}},
            "metricThreshold.metricName",
            None,
        ),
    ],
)
def test_a_wrong_body_is_refused_naming_the_field(body: dict[str, Any], field: str, code: str | None) -> None:
    with pytest.raises(InvalidInput) as raised:
        validated(body)
    assert raised.value.field == field, (str(raised.value), field)
    if code is not None:
        assert raised.value.error_code == code


def test_what_a_project_evaluates() -> None:
    assert evaluated([], []) == list(DEFAULT_RULES)
    configs = [
        {"eventTypeName": "HOST_DOWN", "enabled": True},
        {"eventTypeName": "NO_PRIMARY", "enabled": False},
        lag(90),
        lag(5, enabled=False),
    ]
    assert evaluated(configs, []) == [
        Rule("HOST_DOWN"),
        Rule("OUTSIDE_METRIC_THRESHOLD", LAG_METRIC, "GREATER_THAN", 90),
    ]
    assert evaluated([{"eventTypeName": "HOST_DOWN", "enabled": False}], []) == []
    globally = [
        {"eventTypeName": "NO_PRIMARY", "enabled": True},
        {"eventTypeName": "HOST_DOWN", "enabled": False},
    ]
    assert evaluated([], globally) == [*DEFAULT_RULES, Rule("NO_PRIMARY")], "global rules add to the defaults"


def test_an_alert_goes_to_the_webhooks_of_the_enabled_configurations_that_cover_it() -> None:
    def hook(url: str) -> dict[str, Any]:
        return {"typeName": "WEBHOOK", "webhookUrl": url}

    on_rs1 = [{"fieldName": "REPLICA_SET_NAME", "operator": "EQUALS", "value": "rs1"}]
    configs = [
        {"eventTypeName": "HOST_DOWN", "enabled": True, "notifications": [hook("http://a/"), EMAIL[0]]},
        {
            "eventTypeName": "HOST_DOWN",
            "enabled": True,
            "notifications": [hook("http://a/"), hook("http://b/") | {"webhookSecret": "sealed"}],
        },
        {"eventTypeName": "HOST_DOWN", "enabled": False, "notifications": [hook("http://off/")]},
        {
            "eventTypeName": "HOST_DOWN",
            "enabled": True,
            "matchers": on_rs1,
            "notifications": [hook("http://rs1/")],
        },
        {"eventTypeName": "NO_PRIMARY", "enabled": True, "notifications": [hook("http://np/")]},
        lag(30) | {"notifications": [hook("http://lag/")]},
    ]
    down = {"eventTypeName": "HOST_DOWN", "hostnameAndPort": "n0:27017", "replicaSetName": "rs0"}
    assert webhooks(configs, down) == [("http://a/", None), ("http://b/", "sealed")]
    assert [u for u, _ in webhooks(configs, down | {"replicaSetName": "rs1"})] == [
        "http://a/",
        "http://b/",
        "http://rs1/",
    ]
    lagging = {"eventTypeName": "OUTSIDE_METRIC_THRESHOLD", "metricName": LAG_METRIC}
    assert webhooks(configs, lagging) == [("http://lag/", None)]
    assert webhooks(configs, lagging | {"metricName": "OTHER"}) == []
    assert webhooks(configs, {"eventTypeName": "AUTOMATION_AGENT_DOWN"}) == []


def test_a_webhook_secret_is_sealed_shown_masked_and_kept_when_the_mask_comes_back() -> None:
    def seal(text: str) -> str:
        return "enc:" + text

    sent = [{"typeName": "WEBHOOK", "webhookUrl": "http://a/", "webhookSecret": "s3cret"}]
    stored = sealed(sent, [], seal)
    assert stored[0]["webhookSecret"] == "enc:s3cret"
    assert shown_notifications(stored)[0]["webhookSecret"] == SECRET_MASK
    round_trip = sealed(shown_notifications(stored), stored, seal)
    assert round_trip == stored, "a GET then PUT keeps the secret"
    moved = sealed(
        [{"typeName": "WEBHOOK", "webhookUrl": "http://b/", "webhookSecret": SECRET_MASK}], stored, seal
    )
    assert "webhookSecret" not in moved[0], "the mask never becomes another URL's secret"


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+$",
        "(x*)*",
        "(a|b+){2,}",
        "[unclosed",
        "a" * 201,
        # Each of these passed the earlier check and takes seconds to hours on a 40-character hostname.
        "(a|aa)+$",
        "((a+))+",
        "(?:a|a)*b",
        "(a?){25}a{25}",
        "(a|a)" * 33 + "b",
        r"\w*\w*\w*\w*!x",
        r"(a)\1",
        "(?P<x>a)(?P=x)",
    ],
)
def test_a_regex_matcher_that_could_stall_the_evaluation_is_refused(pattern: str) -> None:
    body = {
        "eventTypeName": "HOST_DOWN",
        "notifications": EMAIL,
        "matchers": [{"fieldName": "HOSTNAME", "operator": "REGEX", "value": pattern}],
    }
    with pytest.raises(InvalidInput) as raised:
        validated(body)
    assert raised.value.field == "matchers[0].value"


@pytest.mark.parametrize(
    ("pattern", "hostname"),
    [
        (r"db[0-9]+\.example\.com", "db12.example.com"),
        (".*prod.*", "n1.prod.local"),
        ("(rs0|rs1|rs2)-.*", "rs1-a"),
        ("(?:ab){2,5}c", "ababc"),
        ("(?i)DB-1", "db-1"),
    ],
)
def test_an_ordinary_regex_matcher_is_kept_and_holds(pattern: str, hostname: str) -> None:
    matcher = {"fieldName": "HOSTNAME", "operator": "REGEX", "value": pattern}
    body = {"eventTypeName": "HOST_DOWN", "notifications": EMAIL, "matchers": [matcher]}
    assert validated(body)["matchers"] == [matcher]
    assert holds(Matcher("HOSTNAME", "REGEX", pattern), {"HOSTNAME": hostname})


@pytest.mark.parametrize("pattern", ["[unclosed", "(a|aa)+$", "(a)\\1"])
def test_a_stored_regex_never_checked_neither_fails_nor_stalls_an_alert(pattern: str) -> None:
    """Configurations stored before their REGEX was checked: the alert's transaction must go on."""
    hook = {"typeName": "WEBHOOK", "webhookUrl": "http://h/"}
    config = {
        "eventTypeName": "HOST_DOWN",
        "enabled": True,
        "matchers": [{"fieldName": "HOSTNAME", "operator": "REGEX", "value": pattern}],
        "notifications": [hook],
    }
    alert = {"eventTypeName": "HOST_DOWN", "hostnameAndPort": "a" * 60 + "!:27017"}
    started = time.monotonic()
    assert webhooks([config], alert) == []
    assert time.monotonic() - started < 1.0


def test_a_regex_never_holds_for_a_subject_longer_than_a_hostname() -> None:
    matcher = Matcher("HOSTNAME", "REGEX", ".*")
    assert holds(matcher, {"HOSTNAME": "a" * MAX_SUBJECT})
    assert not holds(matcher, {"HOSTNAME": "a" * (MAX_SUBJECT + 1)})


def test_a_malformed_stored_configuration_is_ignored_not_fatal() -> None:
    """A document edited by hand or left by an older version: every project's rules are read in one pass
    and an alert's webhooks inside its transaction, so one bad document must not stop either."""
    hook = {"typeName": "WEBHOOK", "webhookUrl": "http://ok/"}
    bad = [
        {
            "eventTypeName": "OUTSIDE_METRIC_THRESHOLD",
            "enabled": True,
            "metricThreshold": {"metricName": "X"},
        },
        {"eventTypeName": "HOST_DOWN", "enabled": True, "matchers": [{"fieldName": "HOSTNAME"}]},
        {"eventTypeName": "HOST_DOWN"},
    ]
    good = {"eventTypeName": "HOST_DOWN", "enabled": True, "notifications": [hook]}
    assert evaluated([*bad, good], bad) == [Rule("HOST_DOWN")]
    assert webhooks([*bad, good], {"eventTypeName": "HOST_DOWN"}) == [("http://ok/", None)]

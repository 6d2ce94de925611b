"""Alert configurations' validation and what a project evaluates (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.errors import InvalidInput
from opsmgr.store.alert_configs import DEFAULTS, LAG_METRIC, thresholds_of, validated, webhook_urls

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
    assert thresholds_of([]) == DEFAULTS and DEFAULTS[LAG_METRIC] == 60.0
    configs = [
        {"eventTypeName": "HOST_DOWN", "enabled": True},
        {"eventTypeName": "NO_PRIMARY", "enabled": False},
        lag(90),
        lag(30),
        lag(5, enabled=False),
    ]
    assert thresholds_of(configs) == {"HOST_DOWN": None, LAG_METRIC: 30.0}
    assert thresholds_of([{"eventTypeName": "HOST_DOWN", "enabled": False}]) == {}


def test_an_alert_goes_to_the_webhooks_of_its_enabled_configurations() -> None:
    def hook(url: str) -> dict[str, Any]:
        return {"typeName": "WEBHOOK", "webhookUrl": url}

    configs = [
        {"eventTypeName": "HOST_DOWN", "enabled": True, "notifications": [hook("http://a/"), EMAIL[0]]},
        {
            "eventTypeName": "HOST_DOWN",
            "enabled": True,
            "notifications": [hook("http://a/"), hook("http://b/")],
        },
        {"eventTypeName": "HOST_DOWN", "enabled": False, "notifications": [hook("http://off/")]},
        {"eventTypeName": "NO_PRIMARY", "enabled": True, "notifications": [hook("http://np/")]},
        lag(30) | {"notifications": [hook("http://lag/")]},
    ]
    assert webhook_urls(configs, "HOST_DOWN", None) == ["http://a/", "http://b/"]
    assert webhook_urls(configs, "OUTSIDE_METRIC_THRESHOLD", LAG_METRIC) == ["http://lag/"]
    assert webhook_urls(configs, "OUTSIDE_METRIC_THRESHOLD", "OTHER") == []
    assert webhook_urls(configs, "AUTOMATION_AGENT_DOWN", None) == []

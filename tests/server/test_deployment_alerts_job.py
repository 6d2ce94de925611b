"""What the deployment alerts' job reads of the agents' reports (pure): each process's oplog window from
its last measurements, ignoring what is not a number."""

from __future__ import annotations

from opsmgr.server.deployment_alerts_job import oplog_hours
from opsmgr.store.alert_rules import OPLOG_METRIC


def test_each_processes_oplog_window_comes_from_its_last_measurements() -> None:
    statuses = [
        {
            "processes": [
                {"name": "a", "measurements": {OPLOG_METRIC: 1.5, "CONNECTIONS": 3}},
                {"name": "b", "measurements": {"CONNECTIONS": 3}},
                {"name": "c"},
            ]
        },
        {
            "processes": [
                {"name": "d", "measurements": {OPLOG_METRIC: 2}},
                {"name": "e", "measurements": {OPLOG_METRIC: True}},
            ]
        },
        {"hostname": "silent"},
    ]
    assert oplog_hours(statuses) == {"a": 1.5, "d": 2.0}

"""The primary's watch over its secondaries: the record ``secondary attach`` writes, and the global alert
``BACKUP_SECONDARY_UNREACHABLE`` raised only after the threshold, kept single while the failure lasts, and
resolved when the secondary answers again or is no longer recorded; through the real AlertService."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmgr.alerts import AlertService, AlertStatus
from opsmgr.backup.alerts import AlertPolicy
from opsmgr.backup.secondaries import (
    GLOBAL_GROUP_ID,
    UNREACHABLE,
    SecondaryWatch,
    alert_key,
    record_secondary,
    secondaries,
)
from opsmgr.store import Store

URL = "http://secondary.test:8080"
POLICY = AlertPolicy(secondary_unreachable_ms=10_000)
T0 = 1_700_000_000_000


class FakeProbe:
    def __init__(self) -> None:
        self.down: set[str] = set()
        self.calls: list[str] = []

    def __call__(self, url: str) -> str | None:
        self.calls.append(url)
        return "ConnectError: connection refused" if url in self.down else None


@pytest.fixture
def store(tmp_path: Path):
    s = Store(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        yield s
    finally:
        s.close()


def open_alerts(alerts: AlertService) -> list[dict]:
    return alerts.of_group(GLOBAL_GROUP_ID, AlertStatus.OPEN)


def test_attach_records_one_document_per_secondary_url(store: Store) -> None:
    record_secondary(store, URL + "/", "g1", "c1", T0)
    record_secondary(store, URL, "g2", "c2", T0 + 1)
    record_secondary(store, "http://other.test", "g3", "c3", T0 + 2)
    assert [(d["url"], d["groupId"], d["clusterId"]) for d in secondaries(store)] == [
        ("http://other.test", "g3", "c3"),
        (URL, "g2", "c2"),
    ]


def test_an_alert_opens_only_after_the_threshold_and_closes_when_the_secondary_answers(store: Store) -> None:
    alerts = AlertService(store)
    probe = FakeProbe()
    watch = SecondaryWatch(alerts, probe, POLICY)
    recorded = [record_secondary(store, URL, "g1", "c1", T0)]
    watch.run(recorded, T0)
    assert open_alerts(alerts) == []

    probe.down.add(URL)
    for t in range(T0 + 2_500, T0 + 12_501, 2_500):  # failing from T0+2.5 s to T0+12.5 s: exactly 10 s
        watch.run(recorded, t)
    assert open_alerts(alerts) == []
    watch.run(recorded, T0 + 15_000)
    [alert] = open_alerts(alerts)
    assert alert["eventTypeName"] == UNREACHABLE
    assert alert["secondaryUrl"] == URL and alert["secondaryGroupId"] == "g1" and alert["clusterId"] == "c1"
    assert "connection refused" in alert["message"]

    for t in range(T0 + 17_500, T0 + 30_001, 2_500):
        watch.run(recorded, t)
    assert [a["id"] for a in open_alerts(alerts)] == [alert["id"]]  # still one alert

    probe.down.clear()
    watch.run(recorded, T0 + 32_500)
    assert open_alerts(alerts) == []
    assert alerts.get(GLOBAL_GROUP_ID, alert["id"])["status"] == "CLOSED"
    # Two notifications for the webhook: opened and closed.
    assert [n["payload"]["notification"] for n in alerts.notifications()] == ["OPEN", "CLOSED"]


def test_a_short_failure_raises_nothing_and_the_count_restarts(store: Store) -> None:
    alerts = AlertService(store)
    probe = FakeProbe()
    watch = SecondaryWatch(alerts, probe, POLICY)
    recorded = [record_secondary(store, URL, "g1", "c1", T0)]
    probe.down.add(URL)
    watch.run(recorded, T0)
    probe.down.clear()
    watch.run(recorded, T0 + 9_000)
    probe.down.add(URL)
    watch.run(recorded, T0 + 12_000)  # failing again since 12 s, not since 0 s
    watch.run(recorded, T0 + 21_000)
    assert open_alerts(alerts) == []
    watch.run(recorded, T0 + 23_500)  # the next probe, 2.5 s after the last one
    assert len(open_alerts(alerts)) == 1


def test_probes_are_spaced_by_the_probe_interval(store: Store) -> None:
    probe = FakeProbe()
    watch = SecondaryWatch(AlertService(store), probe, POLICY)
    recorded = [record_secondary(store, URL, "g1", "c1", T0)]
    assert watch.probe_interval_ms == 2_500
    for t in range(T0, T0 + 10_000, 500):
        watch.run(recorded, t)
    assert len(probe.calls) == 4  # at 0, 2.5, 5 and 7.5 s


def test_an_alert_left_by_an_earlier_process_or_of_a_detached_secondary_is_resolved(store: Store) -> None:
    alerts = AlertService(store)
    alerts.raise_alert(GLOBAL_GROUP_ID, UNREACHABLE, alert_key(URL), "left open by an earlier process")
    SecondaryWatch(alerts, FakeProbe(), POLICY).run([record_secondary(store, URL, "g1", "c1", T0)], T0)
    assert open_alerts(alerts) == []

    probe = FakeProbe()
    probe.down.add(URL)
    watch = SecondaryWatch(alerts, probe, POLICY)
    watch.run(secondaries(store), T0)
    watch.run(secondaries(store), T0 + 10_001)
    assert len(open_alerts(alerts)) == 1
    watch.run([], T0 + 12_000)  # no longer recorded: nothing is expected of it
    assert open_alerts(alerts) == []

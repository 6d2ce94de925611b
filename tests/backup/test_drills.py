"""Restore drills kept on the secondary: a report checked field by field, kept newest first (at most
MAX_KEPT per deployment), RPO and RTO derived, and the failed and overdue alerts opened and closed."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.alerts import AlertService, AlertStatus
from opsmgr.backup.clusters import Clusters
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.drills import FAILED_ALERT, MAX_KEPT, OVERDUE_ALERT, Drills, overdue, scheduled_due
from opsmgr.errors import InvalidInput
from tests.backup.backuptest import FakeClock, Stores

DAY_MS = 86_400_000


def report(passed: bool = True, started: int = 1_000_000, **more: Any) -> dict[str, Any]:
    steps = [
        {"name": "restore", "passed": True, "seconds": 3.5, "detail": "3 stores"},
        {
            "name": "preflight",
            "passed": passed,
            "seconds": 1.0,
            "detail": "" if passed else "gen.key differs",
        },
    ]
    body = {
        "passed": passed,
        "started": started,
        "finished": started + 9_000,
        "restorePointUTCMillis": started - 2_000,
        "restoreJobId": "j1",
        "storeBytes": {"app": 10, "snapshot": 20, "oplog": 30},
        "steps": steps,
    }
    return body | more


@pytest.fixture
def drills(stores: Stores, daemon: BackupDaemon, clock: FakeClock) -> tuple[Drills, AlertService, str]:
    cluster = Clusters(stores.app, daemon).create_backing("g1", "stores", "primary.example")
    alerts = AlertService(stores.app, clock=clock.now)
    return Drills(stores.app, alerts, clock=clock.now), alerts, str(cluster["_id"])


def _open(alerts: AlertService, event: str) -> list[dict[str, Any]]:
    return [a for a in alerts.of_group("g1", AlertStatus.OPEN) if a["eventTypeName"] == event]


def test_a_report_is_kept_with_its_rpo_and_rto(drills: tuple[Drills, AlertService, str]) -> None:
    kept, _alerts, cid = drills
    shown = kept.record("g1", cid, report())
    assert (shown["rpoSeconds"], shown["rtoSeconds"], shown["passed"]) == (2.0, 9.0, True)
    assert shown["storeBytes"] == {"app": 10, "snapshot": 20, "oplog": 30}
    assert kept.history("g1", cid) == [shown]
    assert kept.history("g2", cid) == [], "another project's view holds none"


def test_only_the_newest_are_kept(drills: tuple[Drills, AlertService, str]) -> None:
    kept, _alerts, cid = drills
    for i in range(MAX_KEPT + 3):
        kept.record("g1", cid, report(started=1_000_000 + i))
    history = kept.history("g1", cid)
    assert len(history) == MAX_KEPT and history[0]["started"] == 1_000_000 + MAX_KEPT + 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        (report(passed=True, steps=[]), "steps"),
        (report(finished=0), "finished"),
        (report(passed=True) | {"passed": False}, "passed"),
        (report(started=-1), "started"),
        (report(storeBytes={"a": 1, "b": 2, "c": 3, "d": 4}), "storeBytes"),
        (report(bogus=1), "bogus"),
        (report(steps=[{"name": "x" * 65, "passed": True, "seconds": 1}]), "steps.0.name"),
    ],
)
def test_a_wrong_report_is_refused_naming_the_field(
    drills: tuple[Drills, AlertService, str], body: Any, field: str
) -> None:
    kept, _alerts, cid = drills
    with pytest.raises(InvalidInput) as refused:
        kept.record("g1", cid, body)
    assert field in str(refused.value.field), refused.value.detail
    assert kept.history("g1", cid) == []


def test_a_failed_drill_opens_its_alert_and_a_passing_one_closes_it(
    drills: tuple[Drills, AlertService, str],
) -> None:
    kept, alerts, cid = drills
    kept.record("g1", cid, report(passed=False))
    (failed,) = _open(alerts, FAILED_ALERT)
    assert "preflight" in failed["message"] and "gen.key differs" in failed["message"]
    kept.record("g1", cid, report(passed=True))
    assert _open(alerts, FAILED_ALERT) == []


def test_overdue_counts_from_the_last_pass_or_the_first_sight() -> None:
    assert not overdue(None, since_ms=0, now_ms=7 * DAY_MS, interval_ms=7 * DAY_MS)
    assert overdue(None, since_ms=0, now_ms=7 * DAY_MS + 1, interval_ms=7 * DAY_MS)
    assert not overdue(5 * DAY_MS, since_ms=0, now_ms=8 * DAY_MS, interval_ms=7 * DAY_MS)


def test_a_deployment_without_a_recent_passing_drill_is_overdue(
    drills: tuple[Drills, AlertService, str], clock: FakeClock
) -> None:
    kept, alerts, cid = drills
    assert kept.check_overdue(7) == 0, "first sight: the interval starts now"
    clock.advance(7 * 86_400 + 1)
    assert kept.check_overdue(7) == 1 and len(_open(alerts, OVERDUE_ALERT)) == 1
    kept.record("g1", cid, report(started=int(clock.now() * 1000)))
    assert _open(alerts, OVERDUE_ALERT) == [], "a passing drill closes it"
    assert kept.check_overdue(7) == 0


def test_a_scheduled_drill_is_due_twice_an_interval(
    drills: tuple[Drills, AlertService, str], clock: FakeClock
) -> None:
    kept, _alerts, cid = drills
    assert kept.due(7) == [], "not seen by the overdue check yet: its interval has not begun"
    kept.check_overdue(7)
    assert kept.due(7) == []
    clock.advance(3.5 * 86_400 + 1)
    assert kept.due(7) == [("g1", cid)]
    kept.record("g1", cid, report(passed=False, started=int(clock.now() * 1000)))
    assert kept.due(7) == [], "a drill, even a failed one, restarts the half interval"
    assert scheduled_due(None, since_ms=0, now_ms=3 * DAY_MS, interval_ms=7 * DAY_MS) is False

"""The alert store and its webhook outbox, on a real SQLite store with a controlled clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsmgr.alerts import (
    CLAIM_S,
    MAX_ATTEMPTS,
    NOTIFICATION_KEEP_S,
    NOTIFICATIONS,
    AlertService,
    AlertStatus,
    Delivery,
    DeliveryState,
    retry_delay_s,
)
from opsmgr.errors import NotFound
from opsmgr.store.engine import Store
from opsmgr.store.job_leases import fenced
from tests.clock import Clock

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def service(tmp_path: Path) -> tuple[AlertService, Clock]:
    clock = Clock()
    return AlertService(Store(f"sqlite:///{tmp_path / 'app.db'}"), clock=clock), clock


def test_raising_an_open_condition_again_refreshes_it(service: tuple[AlertService, Clock]) -> None:
    alerts, clock = service
    first = alerts.raise_alert(
        "g1", "BACKUP_SNAPSHOT_MISSED", "backup:s1:missed", "no snapshot for 7 h", clusterId="c1"
    )
    clock.now += 60
    again = alerts.raise_alert(
        "g1", "BACKUP_SNAPSHOT_MISSED", "backup:s1:missed", "no snapshot for 8 h", clusterId="c1"
    )
    assert again["id"] == first["id"]
    assert again["message"] == "no snapshot for 8 h"
    assert again["updated"] > first["updated"]
    assert [a["id"] for a in alerts.of_group("g1")] == [first["id"]]
    assert first["clusterId"] == "c1" and first["status"] == AlertStatus.OPEN
    # Only the opening is notified, not the refresh.
    assert len(alerts.notifications()) == 1


def test_resolve_closes_and_a_new_occurrence_opens_a_new_alert(service: tuple[AlertService, Clock]) -> None:
    alerts, clock = service
    first = alerts.raise_alert("g1", "OPLOG_BEHIND", "k", "lag 5 s")
    assert alerts.is_open("g1", "k")
    assert alerts.resolve("g1", "k") is True
    assert alerts.resolve("g1", "k") is False
    assert not alerts.is_open("g1", "k")
    closed = alerts.get("g1", first["id"])
    assert closed["status"] == AlertStatus.CLOSED and closed["resolved"] is not None
    clock.now += 1
    second = alerts.raise_alert("g1", "OPLOG_BEHIND", "k", "lag 9 s")
    assert second["id"] != first["id"]
    assert [a["id"] for a in alerts.of_group("g1", AlertStatus.OPEN)] == [second["id"]]
    assert [a["id"] for a in alerts.of_group("g1", AlertStatus.CLOSED)] == [first["id"]]
    assert [n["payload"]["notification"] for n in alerts.notifications()].count("CLOSED") == 1


def test_alerts_are_per_project(service: tuple[AlertService, Clock]) -> None:
    alerts, _ = service
    mine = alerts.raise_alert("g1", "T", "k", "m")
    alerts.raise_alert("g2", "T", "k", "m")
    assert len(alerts.of_group("g1")) == 1
    with pytest.raises(NotFound):
        alerts.get("g2", mine["id"])


def test_delivery_retries_with_backoff_then_delivers_once(service: tuple[AlertService, Clock]) -> None:
    alerts, clock = service
    alerts.raise_alert("g1", "T", "k", "m")
    sent: list[dict[str, Any]] = []
    failures = 2

    def post(delivery: Delivery) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("receiver down")
        assert delivery.url == HOOK and delivery.secret is None
        sent.append(delivery.payload)

    assert alerts.deliver(post, None) == 0, "no webhook: the notification waits for one"
    assert alerts.deliver(post, HOOK) == 0
    # Not due again before the backoff has passed.
    assert alerts.deliver(post, HOOK) == 0 and failures == 1
    clock.now += retry_delay_s(1)
    assert alerts.deliver(post, HOOK) == 0 and failures == 0
    clock.now += retry_delay_s(2) - 0.5
    assert alerts.deliver(post, HOOK) == 0
    clock.now += 0.5
    assert alerts.deliver(post, HOOK) == 1
    assert alerts.deliver(post, HOOK) == 0
    assert [p["notification"] for p in sent] == ["OPEN"]
    note = alerts.notifications(DeliveryState.DELIVERED)[0]
    assert note["attempts"] == 3 and note["lastError"] == "receiver down"


def test_delivery_gives_up_after_max_attempts(service: tuple[AlertService, Clock]) -> None:
    alerts, clock = service
    alerts.raise_alert("g1", "T", "k", "m")

    def post(_delivery: Delivery) -> None:
        raise TimeoutError("no answer")

    for _ in range(MAX_ATTEMPTS):
        alerts.deliver(post, HOOK)
        clock.now += 3600
    assert alerts.notifications(DeliveryState.PENDING) == []
    assert alerts.notifications(DeliveryState.GAVE_UP)[0]["attempts"] == MAX_ATTEMPTS


def test_backoff_grows_and_is_capped() -> None:
    delays = [retry_delay_s(n) for n in range(1, 20)]
    assert delays == sorted(delays)
    assert delays[0] < delays[3]
    assert max(delays) == delays[-1] <= 300


def test_the_outbox_forgets_what_is_a_week_old(service: tuple[AlertService, Clock]) -> None:
    """Read whole every second, the outbox must not keep every notification ever made: delivered ones, and
    those that waited a week for an installation webhook never configured, are dropped."""
    alerts, clock = service
    alerts.raise_alert("g1", "T", "sent", "m")
    alerts.deliver(lambda d: None, HOOK)
    alerts.raise_alert("g1", "T", "waiting", "m")  # no installation webhook: it waits for one
    clock.now += NOTIFICATION_KEEP_S - 1
    recent = alerts.raise_alert("g1", "T", "recent", "m")
    assert alerts.deliver(lambda d: None, None) == 0
    assert len(alerts.notifications()) == 3, "nothing a week old yet"
    clock.now += 2 + CLAIM_S  # the sent one's last attempt: when it was claimed for its post
    assert alerts.deliver(lambda d: None, None) == 0
    assert [n["alertId"] for n in alerts.notifications()] == [recent["id"]]
    assert alerts.deliver(lambda d: None, HOOK) == 1, "the recent one still reaches a webhook configured now"


def test_servers_sharing_the_store_post_each_notification_once(service: tuple[AlertService, Clock]) -> None:
    """Every server of a shared store runs the delivery pass: one that reads a notification while another
    is posting it must not post it again."""
    alerts, clock = service
    other = AlertService(alerts.store, clock=clock)
    alerts.raise_alert("g1", "T", "k", "m")
    received: list[str] = []

    def post(delivery: Delivery) -> None:
        received.append(delivery.payload["id"])
        if len(received) == 1:  # the other server's pass runs while this post is under way
            assert other.deliver(post, HOOK) == 0

    assert alerts.deliver(post, HOOK) == 1
    assert len(received) == 1
    assert other.deliver(post, HOOK) == 0 and len(received) == 1


def test_a_claim_of_a_lost_lease_is_taken_at_once_by_the_next_holder(
    service: tuple[AlertService, Clock],
) -> None:
    """A delivery job's holder killed mid-post leaves its notification claimed; the server that takes the job
    over (a higher fencing token) posts it on its first pass instead of after the claim's 60 s. The same
    holder's own claim, and a claim made without a lease, still wait for the claim to lapse."""
    alerts, _ = service
    alerts.raise_alert("g1", "T", "k", "m")
    received: list[str] = []

    def dies(delivery: Delivery) -> None:
        received.append(delivery.payload["id"])
        raise SystemExit  # the process ends mid-post: no outcome is written

    with fenced("alert-webhook", 10), pytest.raises(SystemExit):
        alerts.deliver(dies, HOOK)
    with fenced("alert-webhook", 10):
        assert alerts.deliver(lambda d: received.append(d.payload["id"]), HOOK) == 0
    assert alerts.deliver(lambda d: received.append(d.payload["id"]), HOOK) == 0
    with fenced("alert-webhook", 11):
        assert alerts.deliver(lambda d: received.append(d.payload["id"]), HOOK) == 1
    assert len(received) == 2 and received[0] == received[1]
    (note,) = alerts.store.find(NOTIFICATIONS)
    assert note["state"] == DeliveryState.DELIVERED.value


def test_a_failed_post_keeps_its_backoff_under_a_new_holder(service: tuple[AlertService, Clock]) -> None:
    """Only a claim left by a dead holder is taken early: a post that failed waits for its retry."""
    alerts, clock = service
    alerts.raise_alert("g1", "T", "k", "m")

    def fails(delivery: Delivery) -> None:
        raise OSError("refused")

    with fenced("alert-webhook", 10):
        assert alerts.deliver(fails, HOOK) == 0
    with fenced("alert-webhook", 11):
        assert alerts.deliver(lambda d: None, HOOK) == 0
    clock.now += retry_delay_s(1)
    with fenced("alert-webhook", 11):
        assert alerts.deliver(lambda d: None, HOOK) == 1

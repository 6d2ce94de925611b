"""The login throttle on its own clock: per user, per address, the window, and bounded memory."""

from __future__ import annotations

import pytest

from opsmgr.ui import throttle
from opsmgr.ui.throttle import LoginThrottle
from tests.clock import Clock


def test_a_user_is_held_after_the_limit_until_the_oldest_failure_leaves_the_window() -> None:
    clock = Clock(1000.0)
    t = LoginThrottle(limit=3, address_limit=10, window_s=60, clock=clock)
    for i in range(3):
        assert t.retry_after("ann", f"10.0.0.{i}") == 0
        t.failed("ann", f"10.0.0.{i}")
        clock.now += 1
    assert t.retry_after("ANN", "10.9.9.9") == 57  # any address, any case: the user is held
    assert t.retry_after("bob", "10.0.0.1") == 0
    clock.now += 57
    assert t.retry_after("ann", "10.0.0.1") == 0


def test_an_address_is_held_after_its_own_limit_across_users() -> None:
    clock = Clock(1000.0)
    t = LoginThrottle(limit=3, address_limit=4, window_s=60, clock=clock)
    for user in ("a", "b", "c", "d"):
        t.failed(user, "192.0.2.7")
    assert t.retry_after("someone-else", "192.0.2.7") == 60
    assert t.retry_after("someone-else", "192.0.2.8") == 0


def test_success_clears_the_user_but_not_the_address() -> None:
    t = LoginThrottle(limit=2, address_limit=3, window_s=60, clock=Clock(1000.0))
    t.failed("ann", "192.0.2.1")
    t.failed("ann", "192.0.2.1")
    t.succeeded("ann")
    assert t.retry_after("ann", "192.0.2.2") == 0
    t.failed("zed", "192.0.2.1")
    assert t.retry_after("x", "192.0.2.1") > 0


def test_memory_stays_bounded_under_a_flood_of_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "MAX_TRACKED", 50)
    t = LoginThrottle(clock=Clock(1000.0))
    for i in range(500):
        t.failed(f"user{i}", f"198.51.100.{i % 250}")
    assert len(t._failures) <= 50

"""The poll path's cache: fresh values without loading, and one loader per expiry instead of a crowd."""

from __future__ import annotations

import time

from opsmgr.server.cache import TtlCache


def test_get_loads_once_then_serves_from_cache() -> None:
    calls: list[str] = []
    cache: TtlCache[str, int] = TtlCache(60)
    assert cache.get("g", lambda k: calls.append(k) or 1) == 1
    assert cache.get("g", lambda k: calls.append(k) or 2) == 1
    assert calls == ["g"]
    assert cache.peek("g") == 1


def test_peek_on_unknown_key_asks_the_caller_to_load() -> None:
    assert TtlCache[str, int](60).peek("nope") is None


def test_expired_value_is_reloaded_by_exactly_one_caller() -> None:
    cache: TtlCache[str, int] = TtlCache(0.05)
    cache.get("g", lambda _k: 1)
    deadline = time.monotonic() + 5
    while cache.peek("g") is not None:  # wait until the entry expires (a real clock: no fake here)
        assert time.monotonic() < deadline
    # The caller that got None is the loader; everyone else keeps the old value meanwhile.
    assert [cache.peek("g") for _ in range(5)] == [1] * 5


def test_invalidate_forces_a_load() -> None:
    cache: TtlCache[str, int] = TtlCache(60)
    cache.get("g", lambda _k: 1)
    cache.invalidate("g")
    assert cache.peek("g") is None
    assert cache.get("g", lambda _k: 2) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expired_value_is_reloaded_not_served_as_fresh() -> None:
    """The defect: peek() re-armed an expired entry and get() then returned the old value as fresh."""
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(1.0, clock=clock)
    assert cache.get("g", lambda _k: 1) == 1
    clock.now += 1.5
    assert cache.peek("g") is None  # this caller reloads
    assert cache.get("g", lambda _k: 2) == 2
    assert cache.peek("g") == 2


def test_the_old_value_is_handed_out_only_during_the_reload_grace() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(1.0, clock=clock)
    cache.get("g", lambda _k: 1)
    clock.now += 1.5
    assert cache.peek("g") is None
    assert cache.peek("g") == 1
    clock.now += cache.reload_grace_s + 0.01  # the loader never came back: someone else must load
    assert cache.peek("g") is None


def test_a_load_overtaken_by_an_invalidation_is_not_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(60)

    def load(_k: str) -> int:
        cache.invalidate("g")  # the value changed while it was being read
        return 1

    assert cache.get("g", load) == 1
    assert cache.peek("g") is None
    assert cache.get("g", lambda _k: 2) == 2


def test_clear_forgets_every_key() -> None:
    cache: TtlCache[str, int] = TtlCache(60)
    cache.get("a", lambda _k: 1)
    cache.get("b", lambda _k: 2)
    cache.clear()
    assert cache.peek("a") is None and cache.peek("b") is None

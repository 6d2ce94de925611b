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

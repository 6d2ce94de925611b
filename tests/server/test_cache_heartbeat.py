"""The heartbeat that vouches for cached values past their time to live (``server.cache.Heartbeat``): only a
heartbeat of this server heard back through the change listener counts (not the store's echo at commit, not
another server's), it vouches for values up to its maximum age, an announced change still invalidates at
once, and once heartbeats stop coming back values expire by their time to live. Then the same over a real
PostgreSQL channel, sent as ``Services.start`` sends it (``ChannelSender``)."""

from __future__ import annotations

import time

import psycopg
import pytest

from opsmgr.server.cache import HEARTBEAT, Heartbeat, TtlCache
from opsmgr.server.services import ChannelSender, PollCaches
from opsmgr.store import Store
from opsmgr.store.changes import ChangeListener, libpq_conninfo
from opsmgr.store.engine import Change
from tests.pgserver import PgServer
from tests.procs import wait_for

TTL_S = 1.0
MAX_AGE_S = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Channel:
    """A notification channel the test delivers by hand: what was sent, heard when the test says so."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, key: str) -> None:
        self.sent.append(key)


def started(clock: FakeClock) -> tuple[Heartbeat, TtlCache[str, int], Channel]:
    beat = Heartbeat(clock=clock)
    beat.max_age_s = MAX_AGE_S  # what start() sets, without its thread: the test beats by hand
    return beat, TtlCache(TTL_S, clock=clock, vouch=beat.vouches), Channel()


def test_a_heartbeat_heard_back_vouches_for_a_value_up_to_its_maximum_age() -> None:
    clock = FakeClock()
    beat, cache, channel = started(clock)
    cache.get("g", lambda _k: 1)
    for _ in range(int(MAX_AGE_S / 0.5) - 1):
        clock.now += 0.5
        beat.beat(channel.send)
        beat.heard(channel.sent[-1])  # the listener hears it
        assert cache.peek("g") == 1, f"{clock.now - 1000:.1f} s after the load"
    clock.now += 0.6  # past the maximum age: a write nobody announced is read again
    beat.beat(channel.send)
    beat.heard(channel.sent[-1])
    assert cache.fresh("g") is None
    assert cache.get("g", lambda _k: 2) == 2


def test_without_heartbeats_heard_values_expire_by_their_time_to_live() -> None:
    clock = FakeClock()
    beat, cache, channel = started(clock)
    cache.get("g", lambda _k: 1)
    beat.beat(channel.send)
    beat.heard(channel.sent[-1])
    clock.now += TTL_S + 0.1
    beat.beat(channel.send)  # sent, never heard: the channel died silently
    assert cache.fresh("g") is None
    assert cache.peek("g") is None


def test_the_stores_echo_at_commit_and_other_servers_heartbeats_prove_nothing() -> None:
    clock = FakeClock()
    beat, cache, _ = started(clock)
    cache.get("g", lambda _k: 1)
    clock.now += TTL_S + 0.1
    # The store announces a transaction's changes in the committing thread: here, inside send().
    beat.beat(beat.heard)
    beat.heard("another-server.7")
    assert cache.fresh("g") is None


def test_a_heartbeat_vouches_only_for_what_was_committed_before_it_was_sent() -> None:
    clock = FakeClock()
    beat, cache, channel = started(clock)
    cache.get("g", lambda _k: 1)
    beat.beat(channel.send)  # sent at 1000.0
    clock.now += TTL_S + 0.1
    beat.heard(channel.sent[-1])  # heard late: it proves the channel as of its sending, 1.1 s ago
    assert cache.fresh("g") is None


def test_an_announced_change_still_invalidates_a_vouched_value() -> None:
    clock = FakeClock()
    beat, cache, channel = started(clock)
    cache.get("g", lambda _k: 1)
    clock.now += 3
    beat.beat(channel.send)
    beat.heard(channel.sent[-1])
    assert cache.peek("g") == 1
    cache.invalidate("g")
    assert cache.get("g", lambda _k: 2) == 2


def test_an_unstarted_heartbeat_vouches_for_nothing() -> None:
    clock = FakeClock()
    beat = Heartbeat(clock=clock)
    cache: TtlCache[str, int] = TtlCache(TTL_S, clock=clock, vouch=beat.vouches)
    cache.get("g", lambda _k: 1)
    channel = Channel()
    beat.beat(channel.send)
    beat.heard(channel.sent[-1])
    clock.now += TTL_S + 0.1
    assert cache.fresh("g") is None


@pytest.mark.postgres
def test_over_postgresql_the_heartbeat_comes_back_and_stops_with_the_listener(pg_server: PgServer) -> None:
    store = Store(pg_server.create_database())
    caches = PollCaches(Heartbeat(interval_s=0.05))
    store.on_change(caches.forget)
    listener = ChangeListener(store).start()
    conninfo = libpq_conninfo(store.url)
    assert conninfo is not None
    sender = ChannelSender(conninfo)
    caches.heartbeat.start(sender, max_age_s=MAX_AGE_S)

    def vouched() -> bool:  # for a value loaded 5 s ago, past its time to live
        now = time.monotonic()
        return caches.heartbeat.vouches(now - 5, now, TTL_S)

    try:
        wait_for(vouched, 10, 0.02, what="a heartbeat heard back through LISTEN")
        caches.goal_versions.get("g", lambda _k: 1)
        with store.tx() as t:  # a change announced by a write is heard as before
            t.notify("automation_config", "g")
        wait_for(lambda: caches.goal_versions.fresh("g") is None, 5, 0.02, what="the invalidation")
        listener.stop()  # the channel goes quiet: the heartbeats sent are no longer heard
        wait_for(lambda: not vouched(), TTL_S + 5, 0.02, what="the vouching to end")
    finally:
        caches.heartbeat.stop()
        sender.close()
        listener.stop()
        store.close()


def test_a_heartbeat_change_is_not_a_change_of_any_cached_value() -> None:
    caches = PollCaches()
    caches.goal_versions.get("g", lambda _k: 1)
    caches.forget(Change(HEARTBEAT, "someone.1"))
    assert caches.goal_versions.fresh("g") == 1


@pytest.mark.postgres
def test_a_sender_whose_connection_died_raises_once_then_sends_on_a_new_one(pg_server: PgServer) -> None:
    conninfo = libpq_conninfo(pg_server.create_database())
    assert conninfo is not None
    sender = ChannelSender(conninfo)
    try:
        sender("x.0")
        with psycopg.connect(conninfo, autocommit=True) as admin:  # the database drops the sender's session
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(psycopg.Error):
            sender("x.1")
        sender("x.2")  # the heartbeat thread's next beat: a new connection
    finally:
        sender.close()

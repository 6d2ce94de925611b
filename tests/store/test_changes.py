"""Changes announced by write transactions: to this process's listeners at commit (both engines), and to
other processes on the same PostgreSQL database through LISTEN/NOTIFY."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from opsmgr.store import Store
from opsmgr.store.changes import EVERYTHING, ChangeListener
from opsmgr.store.engine import Change
from tests.pgserver import PgServer
from tests.procs import wait_for


def test_a_committed_write_announces_its_changes_to_local_listeners(make_store: Callable[..., Store]) -> None:
    store = make_store()
    heard: list[Change] = []
    store.on_change(heard.append)
    with store.tx() as t:
        t.put("things", {"_id": "a"})
        t.notify("things", "a")
        assert heard == [], "nothing is announced before the commit"
    assert heard == [Change("things", "a")]


def test_a_rolled_back_write_announces_nothing(make_store: Callable[..., Store]) -> None:
    store = make_store()
    heard: list[Change] = []
    store.on_change(heard.append)
    with pytest.raises(RuntimeError), store.tx() as t:
        t.notify("things", "a")
        raise RuntimeError("abort")
    assert heard == []


@pytest.mark.postgres
def test_another_process_on_the_same_postgresql_hears_the_change(pg_server: PgServer) -> None:
    url = pg_server.create_database()
    writer, reader = Store(url), Store(url)  # a second server's store: its own engine and connections
    heard: list[Change] = []
    lock = threading.Lock()

    def hear(change: Change) -> None:
        with lock:
            heard.append(change)

    reader.on_change(hear)
    listener = ChangeListener(reader).start()
    try:
        wait_for(listener.listening.is_set, 10, what="LISTEN")
        assert EVERYTHING in heard, "starting to listen must invalidate what was cached before"
        with writer.tx() as t:
            t.notify("automation_config", "g1")
        wait_for(lambda: Change("automation_config", "g1") in heard, 5, what="the notification")
        with pytest.raises(RuntimeError), writer.tx() as t:
            t.notify("automation_config", "rolled-back")
            raise RuntimeError("abort")
        with writer.tx() as t:
            t.notify("automation_config", "g2")
        wait_for(lambda: Change("automation_config", "g2") in heard, 5, what="the next notification")
        assert Change("automation_config", "rolled-back") not in heard
    finally:
        listener.stop()
        writer.close()
        reader.close()


def test_a_sqlite_store_needs_no_listener(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/a.db")
    try:
        listener = ChangeListener(store).start()
        assert not listener.listening.is_set()
        listener.stop()
    finally:
        store.close()

"""The running-server lock: a restore refuses while a server holds it (naming the server's pid and URL), a
server refuses to start while a restore holds it, and the lock is free again once its holder is gone; on
SQLite through the lock file, on a PostgreSQL application database also through its advisory lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsmgr.errors import PreflightFailure
from opsmgr.store.running import ServerRunning, hold_for_restore, hold_for_server
from tests.pgserver import PgServer


def test_restore_refused_while_a_server_holds_the_lock_file(tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'appdb.sqlite'}"
    with (
        hold_for_server(tmp_path, sqlite, "http://127.0.0.1:9999"),
        pytest.raises(ServerRunning) as refused,
        hold_for_restore(tmp_path, sqlite),
    ):
        pass
    assert f"pid {os.getpid()}" in refused.value.detail
    assert "http://127.0.0.1:9999" in refused.value.detail
    with hold_for_restore(tmp_path, sqlite) as me:
        assert me.role == "restore"
        with (
            pytest.raises(PreflightFailure, match="restore pid"),
            hold_for_server(tmp_path, sqlite, "http://x:1"),
        ):
            pass


def test_postgres_advisory_lock_names_the_running_server(tmp_path: Path, pg_server: PgServer) -> None:
    app = pg_server.create_database()
    # Two servers on other hosts (other configuration directories) share the database: both may run.
    with (
        hold_for_server(tmp_path / "a", app, "http://a:8080"),
        hold_for_server(tmp_path / "b", app, "http://b:1"),
        pytest.raises(ServerRunning) as refused,
        hold_for_restore(tmp_path / "c", app),
    ):
        pass
    assert "url=http://a:8080" in refused.value.detail and "url=http://b:1" in refused.value.detail
    with (
        hold_for_restore(None, app),
        pytest.raises(PreflightFailure, match="restore of the application database"),
        hold_for_server(tmp_path / "d", app, "http://d:1"),
    ):
        pass
    with hold_for_server(tmp_path / "d", app, "http://d:1"):
        pass

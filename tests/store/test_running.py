"""The running-server locks, keyed on the stores: a restore refuses while a server holds them (naming the
server's pid and URL), a server refuses to start while a restore or another server holds one of its SQLite
files, and the locks are free again once their holder is gone; on SQLite through a lock file beside each
database file, on PostgreSQL through an advisory lock on each database, shared by servers and exclusive to a
restore."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsmgr.errors import PreflightFailure
from opsmgr.store.running import ServerRunning, hold_for_restore, hold_for_server, lock_path
from tests.pgserver import PgServer


def sqlite_stores(folder: Path) -> dict[str, str]:
    return {
        "application database": f"sqlite:///{folder / 'appdb.sqlite'}",
        "snapshot metadata store": f"sqlite:///{folder / 'snapshotdb.sqlite'}",
        "oplog metadata store": f"sqlite:///{folder / 'oplogdb.sqlite'}",
    }


def test_restore_refused_while_a_server_holds_the_lock_beside_each_file(tmp_path: Path) -> None:
    stores = sqlite_stores(tmp_path)
    with hold_for_server(stores, "http://127.0.0.1:9999"):
        for name in ("appdb.sqlite", "snapshotdb.sqlite", "oplogdb.sqlite"):
            assert lock_path(tmp_path / name).is_file()
        with pytest.raises(ServerRunning) as refused, hold_for_restore(stores):
            pass
    assert f"pid {os.getpid()}" in refused.value.detail
    assert "http://127.0.0.1:9999" in refused.value.detail
    with hold_for_restore(stores) as me:
        assert me.role == "restore"
        with pytest.raises(PreflightFailure, match="restore pid"), hold_for_server(stores, "http://x:1"):
            pass


def test_one_shared_sqlite_file_is_enough_to_refuse_a_second_server(tmp_path: Path) -> None:
    """Another configuration (other folders) naming one of the same files: the lock is the file's."""
    first = sqlite_stores(tmp_path / "a")
    second = sqlite_stores(tmp_path / "b")
    second["oplog metadata store"] = first["oplog metadata store"]
    with hold_for_server(first, "http://a:1"):
        with pytest.raises(PreflightFailure) as refused, hold_for_server(second, "http://b:1"):
            pass
        assert "oplog metadata store" in refused.value.detail and "http://a:1" in refused.value.detail
        assert str(tmp_path / "a" / "oplogdb.sqlite") in refused.value.detail
        # What the refused server had locked before it met the held one is free again.
        with hold_for_restore({"application database": second["application database"]}):
            pass
    with hold_for_server(second, "http://b:1"):
        pass


def test_postgres_advisory_lock_per_database_shared_by_servers(tmp_path: Path, pg_server: PgServer) -> None:
    stores = {
        "application database": pg_server.create_database(),
        "snapshot metadata store": pg_server.create_database(),
        "oplog metadata store": pg_server.create_database(),
    }
    # Two servers on other hosts share the databases: both may run; a restore of any of them is refused.
    with hold_for_server(stores, "http://a:8080"), hold_for_server(stores, "http://b:1"):
        for label, uri in stores.items():
            with pytest.raises(ServerRunning) as refused, hold_for_restore({label: uri}):
                pass
            assert "url=http://a:8080" in refused.value.detail and "url=http://b:1" in refused.value.detail
    # A restore of the snapshot metadata store alone keeps servers off the set.
    snapshot = {"snapshot metadata store": stores["snapshot metadata store"]}
    with (
        hold_for_restore(snapshot),
        pytest.raises(PreflightFailure, match="snapshot metadata store"),
        hold_for_server(stores, "http://d:1"),
    ):
        pass
    with hold_for_server(stores, "http://d:1"):
        pass


def test_a_lock_held_on_one_database_says_nothing_of_another(tmp_path: Path, pg_server: PgServer) -> None:
    """Advisory locks belong to their database: holders of another database's lock are not named."""
    ours, theirs = pg_server.create_database(), pg_server.create_database()
    with (
        hold_for_server({"application database": theirs}, "http://elsewhere:1"),
        hold_for_server({"application database": ours}, "http://ours:1"),
        pytest.raises(ServerRunning) as refused,
        hold_for_restore({"application database": ours}),
    ):
        pass
    assert "http://ours:1" in refused.value.detail and "elsewhere" not in refused.value.detail

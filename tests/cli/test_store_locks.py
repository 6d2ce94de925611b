"""The running-server lock is the stores' own, through real ``opsmgr server`` processes: a second server whose
configuration (in another folder) names the same SQLite files is refused, naming the server that holds
them; servers on one PostgreSQL set run together (the scale-out design) while a restore of any one of the
three databases keeps them off it."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmgr.store.running import ServerRunning, hold_for_restore
from tests.cli.test_lost_stores import refused_start
from tests.pgserver import PgServer
from tests.procs import ServerProcess, free_port, servers_sharing, write_conf


def test_a_second_server_on_the_same_sqlite_files_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        data = first.data_dir
        stores = {
            "application database": f"sqlite:///{data / 'appdb.sqlite'}",
            "snapshot metadata store": f"sqlite:///{data / 'snapshotdb.sqlite'}",
            "oplog metadata store": f"sqlite:///{data / 'oplogdb.sqlite'}",
        }
        port = free_port()
        conf = write_conf(tmp_path / "elsewhere", stores, data / "gen.key", data / "blockstore", port)
        out = refused_start(ServerProcess(tmp_path / "elsewhere" / "data", port, conf=conf))
        assert f"pid {first.proc.pid}" in out and first.url in out, out  # type: ignore[union-attr]
        assert "appdb.sqlite" in out
        first.wait_ready(5)
    finally:
        first.stop()


@pytest.mark.postgres
def test_servers_share_a_postgres_set_and_a_restore_of_one_database_keeps_them_off(
    tmp_path: Path, pg_server: PgServer
) -> None:
    stores = {
        label: pg_server.create_database()
        for label in ("application database", "snapshot metadata store", "oplog metadata store")
    }
    servers = servers_sharing(tmp_path, stores, ["one", "two"])
    try:
        for server in servers:
            server.start()
        with pytest.raises(ServerRunning) as running, hold_for_restore(stores):
            pass
        assert all(f"url={s.url}" in running.value.detail for s in servers), running.value.detail
        for server in servers:
            server.stop()
        snapshot = {"snapshot metadata store": stores["snapshot metadata store"]}
        with hold_for_restore(snapshot):
            out = refused_start(servers[0])
            assert "snapshot metadata store" in out and "restore pid" in out
        servers[0].start()
    finally:
        for server in servers:
            server.stop()

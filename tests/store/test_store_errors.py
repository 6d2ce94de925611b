"""A store that cannot take a write (a PostgreSQL database set read-only, a SQLite file opened read-only)
answers with a StoreError naming the store, which the server turns into its 503 for agents to retry, never
with a driver exception that would surface as a 500."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from opsmgr.errors import StoreError
from opsmgr.store import Store
from tests.pgserver import PgServer


@pytest.mark.postgres
def test_a_read_only_postgresql_database_is_a_store_error(pg_server: PgServer) -> None:
    url = pg_server.create_database()
    store = Store(url, name="snapshot metadata store")
    try:
        store.put("things", {"_id": "a"})
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(pg_server.uri, autocommit=True) as pg:
            pg.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        store.engine.dispose()  # the setting applies to new sessions
        with pytest.raises(StoreError) as refused:
            store.put("things", {"_id": "b"})
        assert "snapshot metadata store" in refused.value.detail
        assert "read-only" in refused.value.detail
        assert store.get("things", "a") == {"_id": "a"}, "reads go on"
    finally:
        store.close()


def test_a_read_only_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    Store(f"sqlite:///{path}").close()
    store = Store(f"sqlite:///file:{path}?mode=ro&uri=true", name="oplog metadata store")
    try:
        with pytest.raises(StoreError) as refused:
            store.put("things", {"_id": "b"})
        assert "oplog metadata store" in refused.value.detail
    finally:
        store.engine.dispose()

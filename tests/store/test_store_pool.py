"""A thread that cannot get a connection in time gets a StoreError (a 503), never an unhandled error."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from opsmgr.errors import StoreError
from opsmgr.store import engine
from opsmgr.store.engine import Store


def test_an_exhausted_pool_is_a_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_POOL_SIZE", 1)
    monkeypatch.setattr(engine, "_POOL_OVERFLOW", 0)
    monkeypatch.setattr(engine, "_POOL_TIMEOUT_S", 0.2)
    store = Store(f"sqlite:///{tmp_path / 'app.db'}")
    store.put("things", {"_id": "a", "n": 1})
    errors: list[BaseException] = []

    def read_elsewhere() -> None:
        try:
            store.get("things", "a")
        except BaseException as exc:
            errors.append(exc)

    with store.read() as t:
        assert t.get("things", "a") == {"_id": "a", "n": 1}
        other = threading.Thread(target=read_elsewhere)
        other.start()
        other.join(10)
    assert len(errors) == 1 and isinstance(errors[0], StoreError)
    assert errors[0].http_status == 503 and "too busy" in errors[0].detail
    # Once the connection is back, the same call works.
    assert store.get("things", "a") == {"_id": "a", "n": 1}
    store.close()

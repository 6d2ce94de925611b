"""Store fixtures: every test that takes ``store`` or ``make_store`` runs once on a fresh SQLite file and once
on a fresh database of the session's real PostgreSQL server (marked ``postgres``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.store import Store
from tests.store.storetest import WriterProcess

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def store_engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_store_url(store_engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], str]:
    """Makes the URI of a new, empty database of the engine under test."""

    def make() -> str:
        if store_engine == "sqlite":
            return f"sqlite:///{tmp_path / uuid.uuid4().hex}.db"
        return str(request.getfixturevalue("pg_server").create_database())

    return make


@pytest.fixture
def make_store(new_store_url: Callable[[], str]) -> Iterator[Callable[..., Store]]:
    """Opens a Store (on a new database unless given a URL); all are closed after the test."""
    opened: list[Store] = []

    def make(url: str | None = None, **kw: Any) -> Store:
        store = Store(url or new_store_url(), **kw)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


@pytest.fixture
def spawn_writer() -> Iterator[Callable[[str, str, int], WriterProcess]]:
    """Starts store_writer.py children; all are killed and reaped after the test."""
    started: list[WriterProcess] = []

    def spawn(url: str, prefix: str, count: int) -> WriterProcess:
        started.append(WriterProcess(url, prefix, count))
        return started[-1]

    yield spawn
    for writer in started:
        writer.stop()

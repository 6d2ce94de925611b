"""Fixtures shared by every test package. Keep each one thin: the machinery lives in helper modules."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.pgserver import PgServer
from tests.procs import ServerProcess, started_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server on a free loopback port for the whole session; ``create_database()`` gives
    each test its own database."""
    with PgServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real ``opsmgr server`` process on a free loopback port, one per test module."""
    with started_server(tmp_path_factory.mktemp("server") / "data") as srv:
        yield srv


@pytest.fixture(scope="module")
def owner(server: ServerProcess) -> dict[str, Any]:
    """An ORG_OWNER programmatic API key made with the real ``opsmgr keys create``."""
    return server.create_key("ORG_OWNER")

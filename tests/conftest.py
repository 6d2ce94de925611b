"""Fixtures shared by every test package. Keep each one thin: the machinery lives in helper modules."""

from collections.abc import Iterator

import pytest

from tests.pgserver import PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server on a free loopback port for the whole session; ``create_database()`` gives
    each test its own database."""
    with PgServer() as server:
        yield server

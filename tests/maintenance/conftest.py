"""Fixtures of the maintenance tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.maintenance.service_world import World, service_world


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    """The maintenance service of one project over a fresh application database (a test module may define
    a ``w`` of its own)."""
    with service_world(tmp_path) as world:
        yield world

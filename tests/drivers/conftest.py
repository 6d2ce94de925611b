"""A wire-protocol peer standing in for mongod, and the driver attached to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmgr.drivers.mongod import MongodDriver
from tests.drivers.specs import NAME
from tests.drivers.wirepeer import WirePeer


@pytest.fixture
def peer() -> Iterator[WirePeer]:
    with WirePeer() as p:
        yield p


@pytest.fixture
def driver(peer: WirePeer, tmp_path: Path) -> Iterator[MongodDriver]:
    d = MongodDriver("mongod", "db1.example.net", tmp_path, connect_timeout_s=0.5, stop_deadline_s=5)
    d.attach(NAME, peer.port, repl_set_name="rs0")
    try:
        yield d
    finally:
        d.close()

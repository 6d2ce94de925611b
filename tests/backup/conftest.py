"""Backup fixtures: a server's three stores on SQLite, a fake clock and a daemon over them; a source store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.store import Store
from tests.backup.backuptest import FakeClock, StoreAgent, Stores, open_stores


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    s = open_stores(tmp_path / "server")
    yield s
    s.close()


@pytest.fixture
def make_daemon(stores: Stores, clock: FakeClock, tmp_path: Path) -> Iterator[Callable[..., BackupDaemon]]:
    """Opens a daemon on the fixture's stores and blockstore (several: a restarted daemon)."""
    opened: list[BackupDaemon] = []

    def make(**kw: object) -> BackupDaemon:
        kw.setdefault("groom_grace_s", 0.0)
        daemon = BackupDaemon(stores, tmp_path / "blockstore", clock, **kw)  # type: ignore[arg-type]
        opened.append(daemon)
        return daemon

    yield make
    for d in opened:
        d.close()


@pytest.fixture
def daemon(make_daemon: Callable[..., BackupDaemon]) -> BackupDaemon:
    return make_daemon()


@pytest.fixture
def source_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'source.db'}", name="source")
    yield store
    store.close()


@pytest.fixture
def source(daemon: BackupDaemon) -> Source:
    return daemon.register_source("g1", "c1", "appdb", SourceKind.BACKING_DATABASE)


@pytest.fixture
def agent(daemon: BackupDaemon, source: Source, source_store: Store) -> StoreAgent:
    return StoreAgent(daemon, source.id, source_store)

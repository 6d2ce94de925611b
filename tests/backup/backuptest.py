"""Helpers of the backup tests: a fake clock, the three stores of a server on SQLite, a minimal agent that
initial-syncs a source store and ships its oplog as slices, as the real agent does, and restores read back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.positions import PositionKind, to_oplog
from opsmgr.backup.slices import SliceResult, SliceStatus
from opsmgr.store import Store


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Stores:
    app: Store
    snapshots: Store
    oplogs: Store

    def close(self) -> None:
        for s in (self.app, self.snapshots, self.oplogs):
            s.close()


def open_stores(folder: Path) -> Stores:
    folder.mkdir(parents=True, exist_ok=True)
    return Stores(
        Store(f"sqlite:///{folder / 'app.db'}", name="app"),
        Store(f"sqlite:///{folder / 'snapshots.db'}", name="snapshots"),
        Store(f"sqlite:///{folder / 'oplogs.db'}", name="oplogs"),
    )


def at(position: int) -> dict[str, int]:
    """A restore target at a store oplog position."""
    ts, inc = to_oplog(PositionKind.STORE, position)
    return {"oplogTs": ts, "oplogInc": inc}


def restored(daemon: BackupDaemon, source: Source, target: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The documents a restore of ``source`` to ``target`` gives, by (collection, _id)."""
    plan = daemon.restore_plan(source.id, target)
    return {(ns, doc["_id"]): doc for ns, doc in daemon.restore_documents(plan)}


def store_documents(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    """Every document of a store by (collection, _id)."""
    return {(c, d["_id"]): d for c in store.collections() for d in store.find(c)}


class StoreAgent:
    """Backs up one source Store: an initial sync, then slices of its oplog from the acknowledged position."""

    def __init__(self, daemon: BackupDaemon, source_id: str, store: Store, page: int = 50) -> None:
        self.daemon = daemon
        self.source_id = source_id
        self.store = store
        self.page = page
        self.acked: int | None = None

    def sync(self) -> SliceResult:
        start = self.store.oplog_bounds().last_ts or 0
        docs = [(c, d) for c in self.store.collections() for d in self.store.find(c)]
        min_valid = self.store.oplog_bounds().last_ts or 0
        result = self.daemon.initial_sync(self.source_id, start, docs, min_valid)
        self.acked = result.acknowledged
        return result

    def ship(self, until: int | None = None) -> list[SliceResult]:
        """Ships everything after the acknowledged position (up to ``until``), one slice per page."""
        results: list[SliceResult] = []
        while True:
            acked = self.acked
            assert acked is not None, "sync first"
            entries = [e for e in self.store.oplog_after(acked, self.page) if until is None or e.ts <= until]
            if not entries:
                return results
            result = self.daemon.ingest_slice(
                self.source_id, acked, entries[-1].ts, [e.to_json() for e in entries]
            )
            assert result.status in (SliceStatus.ACCEPTED, SliceStatus.DUPLICATE), result
            self.acked = result.acknowledged
            results.append(result)

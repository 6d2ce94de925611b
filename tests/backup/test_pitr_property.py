"""PITR correctness as a property: random write histories on a source, snapshots at random points, slices
shipped in random sizes, a restore to a random instant equals the state recorded at that instant, document
for document. Once for a backing database (a real Store, restored into a Store and as a stream) and once for
a MongoDB-like source (oplog records with replacements, ``$set`` and deletes, restored as a stream)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmgr.backup.daemon import BackupDaemon, SourceKind
from opsmgr.backup.positions import PositionKind, from_millis, to_millis, to_oplog
from opsmgr.store import Store
from tests.backup.backuptest import FakeClock, StoreAgent, open_stores, store_documents

KEYS = 6

step = st.one_of(
    st.tuples(st.just("put"), st.integers(0, KEYS - 1), st.integers(0, 1000)),
    st.tuples(st.just("set"), st.integers(0, KEYS - 1), st.integers(0, 1000)),
    st.tuples(st.just("del"), st.integers(0, KEYS - 1), st.just(0)),
    st.tuples(st.just("snapshot"), st.just(0), st.just(0)),
    st.tuples(st.just("ship"), st.integers(1, 7), st.just(0)),
)
history = st.lists(step, min_size=1, max_size=40)


@contextmanager
def daemon_in(folder: Path) -> Iterator[tuple[BackupDaemon, Any]]:
    stores = open_stores(folder / "server")
    daemon = BackupDaemon(stores, folder / "blockstore", FakeClock(), block_target=512, groom_grace_s=0)
    try:
        yield daemon, stores
    finally:
        daemon.close()
        stores.close()


def state_at(timeline: list[tuple[int, dict[Any, Any]]], position: int) -> dict[Any, Any]:
    """The state after the last write at or before ``position`` (timeline starts with the synced state)."""
    return next(state for ts, state in reversed(timeline) if ts <= position)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=history, pick=st.integers(0, 10**6), shift=st.sampled_from([-1, 0, 1]), by_millis=st.booleans())
def test_store_source_restores_to_any_instant_in_the_window(
    script: list[tuple[str, int, int]], pick: int, shift: int, by_millis: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp, daemon_in(Path(tmp)) as (daemon, _stores):
        folder = Path(tmp)
        source_store = Store(f"sqlite:///{folder / 'source.db'}")
        target = Store(f"sqlite:///{folder / 'target.db'}")
        try:
            src = daemon.register_source("g", "c", "appdb", SourceKind.BACKING_DATABASE)
            source_store.insert("things", {"_id": "seed", "v": -1})
            agent = StoreAgent(daemon, src.id, source_store)
            agent.sync()
            timeline = [(agent.acked or 0, store_documents(source_store))]
            snapshots = [daemon.take_snapshot(src.id).position]
            for op, key, value in script:
                doc_id = f"k{key}"
                if op == "put":
                    source_store.put("things", {"_id": doc_id, "v": value})
                elif op == "set":
                    source_store.update("things", doc_id, {"w": value})
                elif op == "del":
                    source_store.delete("things", doc_id)
                elif op == "ship":
                    agent.page = key
                    agent.ship()
                else:
                    agent.ship()
                    snapshots.append(daemon.take_snapshot(src.id).position)
                last = source_store.oplog_bounds().last_ts or 0
                if last > timeline[-1][0]:
                    timeline.append((last, store_documents(source_store)))
            agent.ship()
            window = daemon.pitr_window(src.id)
            assert [(r.start, r.end) for r in window] == [(snapshots[0], timeline[-1][0])]

            instant = timeline[pick % len(timeline)][0] + shift
            instant = min(max(instant, window[0].start), window[0].end)
            bodies = [_oplog_body(t) for t in {window[0].end, max(window[0].end - 1, window[0].start)}]
            if by_millis:
                ms = to_millis(PositionKind.STORE, instant)
                if from_millis(PositionKind.STORE, ms) > window[0].end:
                    ms -= 1
                if from_millis(PositionKind.STORE, ms) >= window[0].start:
                    bodies.append({"pointInTimeUTCMillis": ms})
            else:
                bodies.append(_oplog_body(instant))
            # The chosen instant, and both sides of the last write: the bound is inclusive.
            for body in bodies:
                plan = daemon.restore_plan(src.id, body)
                expected = state_at(timeline, plan.plan.target)
                assert plan.snapshot.position == max(p for p in snapshots if p <= plan.plan.target)
                target.insert("leftover", {"_id": "must-go"})
                daemon.restore_into_store(plan, target)
                assert store_documents(target) == expected
                streamed = {(ns, doc["_id"]): doc for ns, doc in daemon.restore_documents(plan)}
                assert streamed == expected
        finally:
            source_store.close()
            target.close()


def _oplog_body(position: int) -> dict[str, Any]:
    ts, inc = to_oplog(PositionKind.STORE, position)
    return {"oplogTs": ts, "oplogInc": inc}


def bson(seconds: int, inc: int) -> int:
    return (seconds << 32) | inc


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=history, pick=st.integers(0, 10**6), shift=st.sampled_from([-1, 0, 1]))
def test_replica_set_source_restores_to_any_instant_in_the_window(
    script: list[tuple[str, int, int]], pick: int, shift: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp, daemon_in(Path(tmp)) as (daemon, _stores):
        src = daemon.register_source("g", "c", "rs0", SourceKind.REPLICA_SET)
        state: dict[tuple[str, Any], dict[str, Any]] = {("db.c", "seed"): {"_id": "seed", "v": -1}}
        # Two ids per key, an int and its string: a restore must keep them apart.
        ids = [k if k % 2 else str(k) for k in range(KEYS)]
        position = bson(1_700_000_000, 1)
        acked = daemon.initial_sync(src.id, position, [(ns, d) for (ns, _), d in state.items()], position)
        assert acked.acknowledged == position
        timeline = [(position, dict(state))]
        snapshots = [daemon.take_snapshot(src.id).position]
        pending: list[dict[str, Any]] = []
        shipped_to = position
        clock_s, inc = 1_700_000_000, 1

        def ship(upto: int | None = None) -> None:
            nonlocal pending, shipped_to
            batch = pending if upto is None else pending[:upto]
            if batch:
                end = batch[-1]["ts"]
                assert daemon.ingest_slice(src.id, shipped_to, end, batch).acknowledged == end
                shipped_to = end
                pending = pending[len(batch) :]

        for op, key, value in script:
            if op in ("ship", "snapshot"):
                ship(key if op == "ship" else None)
                if op == "snapshot":
                    ship()
                    snapshots.append(daemon.take_snapshot(src.id).position)
                continue
            inc += 1
            if inc > 3:  # a few entries per second, as BSON timestamps have them
                clock_s, inc = clock_s + 1, 1
            ts = bson(clock_s, inc)
            doc_id = ids[key]
            current = state.get(("db.c", doc_id))
            if op == "put" and current is None:
                record = {"ts": ts, "op": "i", "ns": "db.c", "o": {"_id": doc_id, "v": value}}
                state[("db.c", doc_id)] = {"_id": doc_id, "v": value}
            elif op == "put":
                record = {"ts": ts, "op": "u", "ns": "db.c", "o": {"v": value}, "o2": {"_id": doc_id}}
                state[("db.c", doc_id)] = {"_id": doc_id, "v": value}
            elif op == "set" and current is not None:
                record = {
                    "ts": ts,
                    "op": "u",
                    "ns": "db.c",
                    "o": {"$set": {"w": value}},
                    "o2": {"_id": doc_id},
                }
                state[("db.c", doc_id)] = {**current, "w": value}
            elif op == "del" and current is not None:
                record = {"ts": ts, "op": "d", "ns": "db.c", "o": {"_id": doc_id}}
                del state[("db.c", doc_id)]
            else:
                record = {"ts": ts, "op": "n", "ns": "", "o": {"msg": "periodic noop"}}
            pending.append(record)
            timeline.append((ts, dict(state)))
        ship()
        window = daemon.pitr_window(src.id)
        assert [(r.start, r.end) for r in window] == [(snapshots[0], timeline[-1][0])]
        last_write = timeline[-1][0]
        chosen = timeline[pick % len(timeline)][0] + shift
        # The chosen instant, and both sides of the last write: the bound is inclusive.
        for instant in {
            min(max(t, window[0].start), window[0].end) for t in (chosen, last_write, last_write - 1)
        }:
            ts_s, ts_inc = to_oplog(PositionKind.BSON, instant)
            plan = daemon.restore_plan(src.id, {"oplogTs": ts_s, "oplogInc": ts_inc})
            restored = {(ns, doc["_id"]): doc for ns, doc in daemon.restore_documents(plan)}
            assert restored == state_at(timeline, instant)

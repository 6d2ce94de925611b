"""A restore to a point after the snapshot, streamed (``restore.materialize``): entries that are full
post-images and deletes are merged into the snapshot's stream in memory and give the same documents in the
same order as the scratch head (which the stream then never writes); entries an overlay cannot hold (updates
by operators, or more than ``overlay_max_bytes``) still go through the scratch head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.backup.positions import PositionKind, to_oplog
from opsmgr.backup.restore import ResolvedRestore, materialize
from tests.backup.backuptest import StoreAgent, at


def streamed(
    daemon: BackupDaemon, plan: ResolvedRestore, scratch: Path, **kw: int
) -> list[tuple[str, dict[str, Any]]]:
    return list(materialize(daemon.blockstore, plan, scratch, **kw))


def test_entries_after_the_snapshot_merge_into_its_stream_in_order(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, tmp_path: Path
) -> None:
    for i in range(10, 60, 2):
        agent.store.insert("things", {"_id": f"k{i:03d}", "v": i})
        agent.store.insert("users", {"_id": f"u{i:03d}", "v": i})
    agent.sync()
    daemon.take_snapshot(source.id)
    store = agent.store
    store.insert("things", {"_id": "k000", "v": "before the first"})
    store.update("things", "k020", {"v": "changed"})
    store.delete("things", "k030")
    store.insert("things", {"_id": "k031", "v": "new, in the middle"})
    store.insert("things", {"_id": "k099", "v": "after the last"})
    store.insert("aaa", {"_id": "x", "v": "a namespace before every other"})
    store.insert("zzz", {"_id": "x", "v": "and one after"})
    store.insert("users", {"_id": "u041", "v": "inserted then deleted"})
    store.delete("users", "u041")
    store.delete("users", "u050")
    store.insert("users", {"_id": "u050", "v": "deleted then inserted again"})
    middle = store.oplog_bounds().last_ts or 0
    store.update("users", "u010", {"v": "after the middle"})
    agent.ship()
    latest = store.oplog_bounds().last_ts or 0

    for point in (middle, latest):
        plan = daemon.restore_plan(source.id, at(point))
        assert plan.slices, "entries to replay after the snapshot"
        merged = streamed(daemon, plan, tmp_path / "merged")
        assert not (tmp_path / "merged").exists(), "no scratch head was written"
        through_head = streamed(daemon, plan, tmp_path / "head", overlay_max_bytes=0)
        assert merged == through_head
    docs = {(ns, doc["_id"]): doc for ns, doc in merged}
    assert docs[("things", "k020")]["v"] == "changed" and ("things", "k030") not in docs
    assert ("users", "u041") not in docs and docs[("users", "u050")]["v"] == "deleted then inserted again"
    assert docs[("users", "u010")]["v"] == "after the middle"
    assert merged[0][0] == "aaa" and merged[-1][0] == "zzz"


def test_updates_by_operators_go_through_the_scratch_head(daemon: BackupDaemon, tmp_path: Path) -> None:
    src = daemon.register_source("g1", "c2", "rs0", SourceKind.REPLICA_SET)
    start = (1_700_000_000 << 32) | 1  # a BSON timestamp
    docs = [("db.things", {"_id": i, "n": i}) for i in range(5)]
    daemon.initial_sync(src.id, start, iter(docs), start)
    daemon.take_snapshot(src.id)
    entries = [
        {"ts": start + 1, "op": "u", "ns": "db.things", "o": {"$set": {"n": 100}}, "o2": {"_id": 2}},
        {"ts": start + 2, "op": "i", "ns": "db.things", "o": {"_id": 9, "n": 9}},
    ]
    daemon.ingest_slice(src.id, start, start + 2, entries)
    ts, inc = to_oplog(PositionKind.BSON, start + 2)
    plan = daemon.restore_plan(src.id, {"oplogTs": ts, "oplogInc": inc})
    scratch = tmp_path / "scratch"
    got = streamed(daemon, plan, scratch)
    assert scratch.exists(), "the $set needs the document it updates: the scratch head"
    assert got == [("db.things", {"_id": i, "n": 100 if i == 2 else i}) for i in (0, 1, 2, 3, 4, 9)]

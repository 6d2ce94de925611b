"""Head copies: initial-sync loading, applying changes with the position in step, streaming records, and the
files of successive syncs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmgr.backup.changes import Change, ChangeOp, doc_key
from opsmgr.backup.head import Head, Heads
from opsmgr.backup.snapshots import parse_record
from opsmgr.errors import InvalidInput


@pytest.fixture
def head(tmp_path: Path) -> Iterator[Head]:
    h = Head(tmp_path / "head.sqlite")
    yield h
    h.close()


def test_state_moves_from_loading_to_consistent(head: Head) -> None:
    assert head.state() is None
    head.init("s1", 100)
    head.load([("db.c", {"_id": 1}), ("db.c", {"_id": "1"})])
    state = head.finish_load(150)
    assert (state.applied, state.min_valid, state.loaded, state.consistent) == (100, 150, True, False)
    head.apply([Change(120, ChangeOp.PUT, "db.c", doc_key(2), {"_id": 2})], 150, after=100)
    after = head.state()
    assert after is not None and after.consistent and after.applied == 150
    assert [doc for _, doc in head.documents()] == [{"_id": "1"}, {"_id": 1}, {"_id": 2}]


def test_records_stream_in_namespace_and_key_order_and_parse_back(head: Head) -> None:
    head.init("s1", 0)
    head.load([("b", {"_id": "z"}), ("a", {"_id": "y", "x": [1]}), ("a", {"_id": "x"})])
    recs = list(head.records())
    assert [(ns, key) for ns, key, _ in recs] == [("a", '"x"'), ("a", '"y"'), ("b", '"z"')]
    assert parse_record(recs[1][2]) == ("a", '"y"', {"_id": "y", "x": [1]})
    assert head.count() == 3


def test_a_database_drop_sees_collections_created_just_before_it(head: Head) -> None:
    head.init("s1", 0)
    head.load([("db.old", {"_id": 1}), ("other.c", {"_id": 1})])
    head.finish_load(0)
    head.apply(
        [
            Change(1, ChangeOp.PUT, "db.new", doc_key(1), {"_id": 1}),
            Change(2, ChangeOp.DROP_DB, "db"),
            Change(3, ChangeOp.PUT, "db.after", doc_key(1), {"_id": 1}),
        ],
        3,
    )
    assert [ns for ns, _ in head.documents()] == ["db.after", "other.c"]


def test_initial_sync_documents_need_an_id_and_a_free_namespace(head: Head) -> None:
    head.init("s1", 0)
    with pytest.raises(InvalidInput):
        head.load([("c", {"x": 1})])
    with pytest.raises(InvalidInput):
        head.load([("$head", {"_id": 1})])


def test_promoting_a_sync_replaces_the_current_head_and_removes_the_old_files(tmp_path: Path) -> None:
    heads = Heads(tmp_path)
    try:
        heads.open("src1", "sync1").init("sync1", 1)
        heads.promote("src1", "sync1")
        assert heads.current_sync("src1") == "sync1"
        second = heads.open("src1", "sync2")
        second.init("sync2", 5)
        current = heads.current("src1")
        state = current.state() if current else None
        assert state is not None and state.sync_id == "sync1"  # the new sync is not in use until promoted
        heads.promote("src1", "sync2")
        assert heads.current_sync("src1") == "sync2"
        assert sorted(p.name for p in (tmp_path / "heads" / "src1").glob("*.sqlite")) == ["sync2.sqlite"]
        with pytest.raises(InvalidInput):
            heads.open("../x", "s")
    finally:
        heads.close()

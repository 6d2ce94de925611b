"""Both kinds of oplog entries normalised into one applied form, and replaying it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.backup.changes import (
    Change,
    ChangeOp,
    apply_changes,
    apply_update,
    decode_changes,
    doc_key,
    encode_changes,
    from_mongo_record,
    from_store_entry,
)
from opsmgr.errors import InvalidInput


class DictTarget:
    """A DocTarget over a dict, the model the real targets must agree with."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, ns: str, key: str) -> dict[str, Any] | None:
        return self.docs.get((ns, key))

    def put(self, ns: str, key: str, doc: dict[str, Any]) -> None:
        self.docs[(ns, key)] = doc

    def delete(self, ns: str, key: str) -> None:
        self.docs.pop((ns, key), None)

    def drop(self, ns: str, *, database: bool) -> None:
        for k in [k for k in self.docs if (k[0].startswith(ns + ".") if database else k[0] == ns)]:
            del self.docs[k]


def test_store_entries_become_puts_and_deletes() -> None:
    put = from_store_entry({"ts": 5, "op": "u", "ns": "projects", "_id": "p1", "doc": {"_id": "p1", "n": 2}})
    assert put == Change(5, ChangeOp.PUT, "projects", '"p1"', {"_id": "p1", "n": 2})
    delete = from_store_entry({"ts": 6, "op": "d", "ns": "projects", "_id": "p1", "doc": None})
    assert delete == Change(6, ChangeOp.DELETE, "projects", '"p1"')


@pytest.mark.parametrize(
    "raw",
    [
        {"ts": 1, "op": "i", "ns": "c", "_id": "a", "doc": {"_id": "b"}},
        {"ts": 1, "op": "x", "ns": "c", "_id": "a", "doc": {"_id": "a"}},
        {"ts": -1, "op": "i", "ns": "c", "_id": "a", "doc": {"_id": "a"}},
        {"ts": True, "op": "i", "ns": "c", "_id": "a", "doc": {"_id": "a"}},
        {"ts": 1, "op": "i", "ns": "", "_id": "a", "doc": {"_id": "a"}},
        {"ts": 1, "op": "i", "ns": "c", "_id": "a", "doc": None},
        {"op": "i", "ns": "c", "_id": "a", "doc": {"_id": "a"}},
        {"ts": 1, "op": "i", "ns": "$head", "_id": "a", "doc": {"_id": "a"}},  # the head's own state
    ],
)
def test_malformed_store_entries_are_invalid_input(raw: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        from_store_entry(raw)


def test_keys_keep_ids_of_different_types_apart() -> None:
    assert doc_key(5) != doc_key("5")
    assert doc_key({"b": 1, "a": 2}) == doc_key({"a": 2, "b": 1})
    with pytest.raises(InvalidInput):
        doc_key("x" * 300)


def test_mongo_records_insert_replace_update_delete_noop() -> None:
    ins = from_mongo_record({"ts": 10, "op": "i", "ns": "db.c", "o": {"_id": 1, "a": 1}})
    assert ins == [Change(10, ChangeOp.PUT, "db.c", "1", {"_id": 1, "a": 1})]
    rep = from_mongo_record({"ts": 11, "op": "u", "ns": "db.c", "o": {"a": 2}, "o2": {"_id": 1}})
    assert rep == [Change(11, ChangeOp.PUT, "db.c", "1", {"a": 2, "_id": 1})]
    upd = from_mongo_record({"ts": 12, "op": "u", "ns": "db.c", "o": {"$set": {"a": 3}}, "o2": {"_id": 1}})
    assert upd == [Change(12, ChangeOp.PATCH, "db.c", "1", {"$set": {"a": 3}})]
    assert from_mongo_record({"ts": 13, "op": "d", "ns": "db.c", "o": {"_id": 1}}) == [
        Change(13, ChangeOp.DELETE, "db.c", "1")
    ]
    assert from_mongo_record({"ts": 14, "op": "n", "ns": "", "o": {"msg": "periodic noop"}}) == []


def test_mongo_commands() -> None:
    txn = from_mongo_record(
        {
            "ts": 20,
            "op": "c",
            "ns": "admin.$cmd",
            "o": {
                "applyOps": [
                    {"op": "i", "ns": "db.c", "o": {"_id": "x"}},
                    {"op": "d", "ns": "db.d", "o": {"_id": "y"}},
                ]
            },
        }
    )
    assert [(c.ts, c.op, c.ns) for c in txn] == [(20, ChangeOp.PUT, "db.c"), (20, ChangeOp.DELETE, "db.d")]
    assert from_mongo_record({"ts": 21, "op": "c", "ns": "db.$cmd", "o": {"drop": "c"}}) == [
        Change(21, ChangeOp.DROP, "db.c")
    ]
    assert from_mongo_record({"ts": 22, "op": "c", "ns": "db.$cmd", "o": {"dropDatabase": 1}}) == [
        Change(22, ChangeOp.DROP_DB, "db")
    ]
    assert from_mongo_record({"ts": 23, "op": "c", "ns": "db.$cmd", "o": {"create": "c"}}) == []
    with pytest.raises(InvalidInput, match="resync"):
        from_mongo_record({"ts": 24, "op": "c", "ns": "db.$cmd", "o": {"renameCollection": "db.c"}})


def test_set_and_unset_with_dotted_paths() -> None:
    doc = {"_id": 1, "a": {"b": 1, "c": [1, 2]}, "d": 4}
    out = apply_update(doc, {"$set": {"a.b": 9, "a.c.1": 7, "e.f": 1}, "$unset": {"d": "", "a.x.y": ""}})
    assert out == {"_id": 1, "a": {"b": 9, "c": [1, 7]}, "e": {"f": 1}}
    assert doc == {"_id": 1, "a": {"b": 1, "c": [1, 2]}, "d": 4}  # not mutated
    with pytest.raises(InvalidInput):
        apply_update(doc, {"$inc": {"d": 1}})


def test_v2_diffs_on_documents_and_arrays() -> None:
    doc = {"_id": 1, "a": 1, "gone": True, "sub": {"x": 1, "y": 2}, "arr": [1, 2, 3, {"k": 1}]}
    diff = {
        "$v": 2,
        "diff": {
            "d": {"gone": False},
            "u": {"a": 2},
            "i": {"new": "yes"},
            "ssub": {"u": {"x": 10}, "d": {"y": False}},
            "sarr": {"a": True, "u1": 20, "s3": {"u": {"k": 2}}},
        },
    }
    assert apply_update(doc, diff) == {
        "_id": 1,
        "a": 2,
        "new": "yes",
        "sub": {"x": 10},
        "arr": [1, 20, 3, {"k": 2}],
    }
    truncated = apply_update({"_id": 1, "arr": [1, 2, 3]}, {"$v": 2, "diff": {"sarr": {"a": True, "l": 1}}})
    assert truncated == {"_id": 1, "arr": [1]}


def test_applying_a_patch_to_a_missing_document_skips_it() -> None:
    target = DictTarget()
    n = apply_changes(target, [Change(1, ChangeOp.PATCH, "db.c", "1", {"$set": {"a": 1}})])
    assert n == 1 and target.docs == {}


def test_drops() -> None:
    target = DictTarget()
    apply_changes(
        target,
        [
            Change(1, ChangeOp.PUT, "db.a", "1", {"_id": 1}),
            Change(2, ChangeOp.PUT, "db.b", "1", {"_id": 1}),
            Change(3, ChangeOp.PUT, "other.a", "1", {"_id": 1}),
            Change(4, ChangeOp.DROP, "db.a"),
        ],
    )
    assert set(target.docs) == {("db.b", "1"), ("other.a", "1")}
    apply_changes(target, [Change(5, ChangeOp.DROP_DB, "db")])
    assert set(target.docs) == {("other.a", "1")}


ops = st.lists(
    st.tuples(st.sampled_from(["put", "set", "del"]), st.integers(0, 4), st.integers(0, 100)), max_size=30
)


def _changes(script: list[tuple[str, int, int]]) -> list[Change]:
    out = []
    for ts, (op, k, v) in enumerate(script, start=1):
        key = doc_key(k)
        if op == "put":
            out.append(Change(ts, ChangeOp.PUT, "db.c", key, {"_id": k, "v": v}))
        elif op == "set":
            out.append(Change(ts, ChangeOp.PATCH, "db.c", key, {"$set": {"w": v}}))
        else:
            out.append(Change(ts, ChangeOp.DELETE, "db.c", key))
    return out


@settings(max_examples=60, deadline=None)
@given(script=ops, cut=st.integers(0, 30))
def test_replaying_a_suffix_twice_changes_nothing(script: list[tuple[str, int, int]], cut: int) -> None:
    changes = _changes(script)
    once = DictTarget()
    apply_changes(once, changes)
    twice = DictTarget()
    apply_changes(twice, changes)
    apply_changes(twice, changes[min(cut, len(changes)) :])
    assert twice.docs == once.docs


def test_changes_encode_and_decode() -> None:
    changes = _changes([("put", 1, 1), ("set", 1, 2), ("del", 1, 0)])
    assert list(decode_changes(b"".join(encode_changes(changes)).splitlines())) == changes

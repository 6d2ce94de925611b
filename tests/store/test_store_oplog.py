"""The same-transaction oplog: one entry per write, ts order, capping by size and age, tailing with gaps,
and idempotent replay onto another store."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmgr.errors import OplogGap
from opsmgr.store import OplogEntry, Store
from opsmgr.store import engine as store_engine_module
from tests.store.storetest import all_entries


def test_every_write_appends_exactly_one_entry_with_its_post_image(store: Store) -> None:
    doc = store.insert("c", {"v": 1})
    store.put("c", {"_id": "p", "v": 2})
    store.put("c", {"_id": "p", "v": 3})
    store.update("c", "p", {"w": 4})
    store.delete("c", doc["_id"])
    got = [(e.op, e.ns, e.id, e.doc) for e in all_entries(store)]
    assert got == [
        ("i", "c", doc["_id"], doc),
        ("i", "c", "p", {"_id": "p", "v": 2}),
        ("u", "c", "p", {"_id": "p", "v": 3}),
        ("u", "c", "p", {"_id": "p", "v": 3, "w": 4}),
        ("d", "c", doc["_id"], None),
    ]


def test_writes_that_change_nothing_append_nothing(store: Store) -> None:
    store.insert("c", {"_id": "a"})
    before = store.oplog_bounds()
    with store.tx() as t:
        with pytest.raises(Exception, match="duplicate"):
            t.insert("c", {"_id": "a", "v": 2})
        assert t.update("c", "missing", {"v": 1}) is None
        assert t.delete("c", "missing") is False
    assert store.oplog_bounds() == before


def test_a_rolled_back_transaction_leaves_neither_document_nor_entry(store: Store) -> None:
    store.insert("c", {"_id": "kept"})
    with pytest.raises(RuntimeError), store.tx() as t:
        t.insert("c", {"_id": "a"})
        t.put("c", {"_id": "kept", "v": 2})
        t.delete("c", "kept")
        raise RuntimeError("abort")
    assert store.find("c") == [{"_id": "kept"}]
    assert [(e.op, e.id) for e in all_entries(store)] == [("i", "kept")]


def test_a_transaction_appends_its_entries_in_order_with_increasing_ts(store: Store) -> None:
    with store.tx() as t:
        for i in range(20):
            t.put("c", {"_id": f"d{i}", "i": i})
    entries = all_entries(store)
    assert [e.id for e in entries] == [f"d{i}" for i in range(20)]
    assert all(a.ts < b.ts for a, b in itertools.pairwise(entries))


def test_entry_json_round_trip(store: Store) -> None:
    store.put("c", {"_id": "a", "v": [1, {"x": None}]})
    store.delete("c", "a")
    for e in all_entries(store):
        assert OplogEntry.from_json(e.to_json()) == e
        assert set(e.to_json()) == {"ts", "op", "ns", "_id", "doc"}


def test_tail_returns_entries_after_a_ts_in_pages(store: Store) -> None:
    for i in range(10):
        store.insert("c", {"_id": f"d{i:02}"})
    entries = store.oplog_after(0)
    assert [e.id for e in entries] == [f"d{i:02}" for i in range(10)]
    assert [e.id for e in store.oplog_after(entries[3].ts, limit=2)] == ["d04", "d05"]
    assert store.oplog_after(entries[-1].ts) == []
    assert all_entries(store) == entries
    bounds = store.oplog_bounds()
    assert (bounds.first_ts, bounds.last_ts, bounds.entries) == (entries[0].ts, entries[-1].ts, 10)


def test_cap_by_size_keeps_the_newest_suffix_that_fits(store: Store) -> None:
    for i in range(30):
        store.insert("c", {"_id": f"d{i:02}", "pad": "x" * (i * 3)})
    sizes = sum_sizes(store)
    entries = all_entries(store)
    limit = sum(sizes[-12:]) + sizes[-13] // 2  # 12 newest fit, the 13th does not
    removed = store.cap(max_bytes=limit, max_age_s=1e9)
    assert removed == 18
    bounds = store.oplog_bounds()
    assert bounds.entries == 12 and bounds.bytes == sum(sizes[-12:]) <= limit
    assert bounds.truncated_through == entries[17].ts
    assert all_entries(store, bounds.truncated_through) == entries[18:]
    # Documents are untouched by capping.
    assert len(store.find("c")) == 30
    assert store.cap(max_bytes=limit, max_age_s=1e9) == 0


def sum_sizes(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT size FROM oplog ORDER BY ts"))]


def test_cap_by_age(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        store.insert("old", {"_id": str(i)})
    for i in range(4):
        store.insert("new", {"_id": str(i)})
    entries = all_entries(store)
    first_new = entries[5].ts
    # Pretend it is 60 s after the first new entry: with a 60 s age limit exactly the old ones are too old.
    monkeypatch.setattr(store_engine_module, "now_us", lambda: first_new + 60_000_000)
    assert store.cap(max_age_s=60, max_bytes=10**12) == 5
    assert all_entries(store, store.oplog_bounds().truncated_through) == entries[5:]
    assert store.oplog_bounds().truncated_through == entries[4].ts


def test_cap_uses_the_store_limits_by_default(make_store: Callable[..., Store]) -> None:
    store = make_store(oplog_max_bytes=1, oplog_max_age_s=3600)
    store.insert("c", {"_id": "a"})
    store.insert("c", {"_id": "b"})
    assert store.cap() == 2
    assert store.oplog_bounds().entries == 0


def test_gap_when_the_ts_is_no_longer_covered_and_not_at_the_truncation_point(store: Store) -> None:
    for i in range(6):
        store.insert("c", {"_id": str(i)})
    entries = all_entries(store)
    reader_at = entries[1].ts
    store.cap(max_bytes=sum(sum_sizes(store)[3:]), max_age_s=1e9)
    through = store.oplog_bounds().truncated_through
    assert through == entries[2].ts

    with pytest.raises(OplogGap) as gap:
        store.oplog_after(reader_at)
    assert gap.value.after_ts == reader_at
    assert gap.value.first_available_ts == entries[3].ts
    with pytest.raises(OplogGap):
        store.oplog_after(0)
    with pytest.raises(OplogGap):
        store.oplog_after(through - 1)
    assert store.oplog_after(through) == entries[3:]
    assert store.oplog_after(entries[4].ts) == entries[5:]


def test_ts_stays_above_the_truncation_point_when_the_oplog_was_emptied(store: Store) -> None:
    store.insert("c", {"_id": "a"})
    store.cap(max_bytes=0)
    # As if the clock went back (or another server's clock lags) after everything was truncated.
    future = store.oplog_bounds().truncated_through + 3_600_000_000
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE oplog_meta SET truncated_through = :t"), {"t": future})
    store.insert("c", {"_id": "b"})
    [entry] = store.oplog_after(future)
    assert entry.id == "b" and entry.ts > future


def test_triggers_are_installed_once_however_often_the_store_is_opened(
    make_store: Callable[..., Store], new_store_url: Callable[[], str]
) -> None:
    url = new_store_url()
    stores = [make_store(url) for _ in range(3)]
    stores[2].insert("c", {"_id": "a"})
    assert [e.id for e in stores[0].oplog_after(0)] == ["a"]


# Replay: ops on a small id space, so that inserts, replacements and deletes of one document interleave.
OPS = st.lists(
    st.tuples(st.sampled_from(["insert", "put", "update", "delete"]), st.integers(0, 4), st.integers(0, 99)),
    min_size=1,
    max_size=25,
)


def run_ops(store: Store, ns: str, ops: list[tuple[str, int, int]]) -> None:
    for kind, n, v in ops:
        doc_id = f"d{n}"
        with store.tx() as t:
            if kind == "insert" and t.get(ns, doc_id) is None:
                t.insert(ns, {"_id": doc_id, "v": v})
            elif kind == "put":
                t.put(ns, {"_id": doc_id, "v": v, "seen": [v, {"n": n}]})
            elif kind == "update":
                t.update(ns, doc_id, {"u": v})
            elif kind == "delete":
                t.delete(ns, doc_id)


@pytest.fixture
def replica(make_store: Callable[..., Store]) -> Store:
    return make_store()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, data=st.data())
def test_replaying_any_suffix_twice_gives_the_same_documents(
    store: Store, replica: Store, ops: list[tuple[str, int, int]], data: st.DataObject
) -> None:
    ns = f"c{uuid.uuid4().hex[:12]}"  # one namespace per example: the stores outlive examples
    start = store.oplog_bounds().last_ts or 0
    run_ops(store, ns, ops)
    entries = all_entries(store, start)
    # The replica got the first ``applied`` entries, then a reader re-sends from ``resend`` (<= applied),
    # twice: where the replica ends must not depend on the overlap.
    applied = data.draw(st.integers(0, len(entries)), label="applied")
    resend = data.draw(st.integers(0, applied), label="resend")
    with replica.tx() as t:
        t.apply(entries[:applied])
    for _ in range(2):
        with replica.tx() as t:
            assert t.apply(entries[resend:]) == len(entries) - resend
    assert replica.find(ns) == store.find(ns)

"""Documents in named collections: CRUD, find by equality, transactions, and bad input refused cleanly."""

from __future__ import annotations

import threading

import pytest

from opsmgr.errors import InvalidInput, StoreError
from opsmgr.store import Store
from tests.pgserver import free_port


def test_insert_get_put_update_delete(store: Store) -> None:
    doc = store.insert("hosts", {"name": "a", "port": 27017})
    assert len(doc["_id"]) == 24
    assert store.get("hosts", doc["_id"]) == doc

    assert store.insert("hosts", {"_id": "h2", "name": "b"}) == {"_id": "h2", "name": "b"}
    store.put("hosts", {"_id": "h2", "name": "c"})
    assert store.get("hosts", "h2") == {"_id": "h2", "name": "c"}
    store.put("hosts", {"_id": "h3", "name": "new"})
    assert store.get("hosts", "h3") == {"_id": "h3", "name": "new"}

    assert store.update("hosts", "h2", {"port": 1, "name": "d"}) == {"_id": "h2", "name": "d", "port": 1}
    assert store.get("hosts", "h2") == {"_id": "h2", "name": "d", "port": 1}
    assert store.update("hosts", "missing", {"x": 1}) is None
    assert store.get("hosts", "missing") is None

    assert store.delete("hosts", "h2") is True
    assert store.delete("hosts", "h2") is False
    assert store.get("hosts", "h2") is None
    assert {d["_id"] for d in store.find("hosts")} == {doc["_id"], "h3"}


def test_collections_are_separate_namespaces(store: Store) -> None:
    store.insert("a", {"_id": "same", "v": 1})
    store.insert("b", {"_id": "same", "v": 2})
    assert store.get("a", "same") == {"_id": "same", "v": 1}
    assert store.get("b", "same") == {"_id": "same", "v": 2}
    store.delete("a", "same")
    assert store.get("b", "same") == {"_id": "same", "v": 2}
    assert store.collections() == ["b"]
    with store.read() as t:
        assert t.count("b") == 1
        assert t.count("a") == 0


def test_find_by_equality(store: Store) -> None:
    store.insert("c", {"_id": "3", "kind": "rs", "size": 3, "on": True, "tags": ["x"]})
    store.insert("c", {"_id": "1", "kind": "rs", "size": 1, "on": False})
    store.insert("c", {"_id": "2", "kind": "standalone", "size": 1, "on": 1})
    assert [d["_id"] for d in store.find("c")] == ["1", "2", "3"]
    assert [d["_id"] for d in store.find("c", kind="rs")] == ["1", "3"]
    assert [d["_id"] for d in store.find("c", kind="rs", size=1)] == ["1"]
    assert store.find("c", kind="sharded") == []
    # JSON equality: true is not 1, and a missing field equals null.
    assert [d["_id"] for d in store.find("c", on=True)] == ["3"]
    assert [d["_id"] for d in store.find("c", on=1)] == ["2"]
    assert [d["_id"] for d in store.find("c", tags=None)] == ["1", "2"]
    assert [d["_id"] for d in store.find("c", tags=["x"])] == ["3"]
    assert store.find("other", kind="rs") == []


def test_duplicate_insert_is_refused_and_the_transaction_goes_on(store: Store) -> None:
    store.insert("c", {"_id": "k", "v": 1})
    with store.tx() as t:
        with pytest.raises(StoreError) as err:
            t.insert("c", {"_id": "k", "v": 2})
        assert err.value.error_code == "DUPLICATE_KEY"
        t.insert("c", {"_id": "k2", "v": 3})
    assert store.get("c", "k") == {"_id": "k", "v": 1}
    assert store.get("c", "k2") == {"_id": "k2", "v": 3}


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.tx() as t:
        t.insert("c", {"_id": "a"})
        t.put("c", {"_id": "b"})
        raise RuntimeError("boom")
    assert store.find("c") == []


def test_a_transaction_reads_its_own_writes(store: Store) -> None:
    with store.tx() as t:
        t.insert("c", {"_id": "a", "v": 1})
        assert t.get("c", "a") == {"_id": "a", "v": 1}
        t.update("c", "a", {"v": 2})
        assert t.find("c", v=2) == [{"_id": "a", "v": 2}]


def test_read_transactions_refuse_writes(store: Store) -> None:
    with store.read() as t, pytest.raises(StoreError) as err:
        t.insert("c", {"_id": "a"})
    assert err.value.error_code == "READ_ONLY"
    assert store.get("c", "a") is None


def test_nested_write_transaction_in_one_thread_is_an_error_not_a_deadlock(store: Store) -> None:
    with store.tx() as t:
        t.insert("c", {"_id": "outer"})
        with pytest.raises(StoreError, match="already open"):
            store.insert("c", {"_id": "inner"})
    assert [d["_id"] for d in store.find("c")] == ["outer"]
    # The guard is per thread and released: another write goes through.
    store.insert("c", {"_id": "after"})


def test_a_read_sees_one_snapshot_while_a_writer_commits(store: Store) -> None:
    store.insert("c", {"_id": "a", "v": 1})
    with store.read() as r:
        assert r.get("c", "a") == {"_id": "a", "v": 1}
        writer = threading.Thread(target=store.put, args=("c", {"_id": "a", "v": 2}))
        writer.start()
        writer.join(30)
        assert not writer.is_alive()
        assert r.get("c", "a") == {"_id": "a", "v": 1}
        assert r.count("c") == 1
    assert store.get("c", "a") == {"_id": "a", "v": 2}


@pytest.mark.parametrize(
    ("coll", "doc_id"),
    [("c", "x" * 257), ("c", "nul\x00byte"), ("c" * 129, "ok"), ("", "ok"), ("c", "")],
)
def test_bad_keys_are_invalid_input_on_write_and_absent_on_read(store: Store, coll: str, doc_id: str) -> None:
    with pytest.raises(InvalidInput):
        store.insert(coll, {"_id": doc_id})
    with pytest.raises(InvalidInput):
        store.put(coll, {"_id": doc_id})
    assert store.get(coll, doc_id) is None
    assert store.delete(coll, doc_id) is False
    assert store.update(coll, doc_id, {"v": 1}) is None
    # Nothing was broken on the way: the store still works.
    store.insert("c", {"_id": "fine"})
    assert store.get("c", "fine") == {"_id": "fine"}


def test_put_needs_an_id(store: Store) -> None:
    with pytest.raises(InvalidInput):
        store.put("c", {"v": 1})
    assert store.find("c") == []


def test_an_update_cannot_change_the_id(store: Store) -> None:
    store.insert("c", {"_id": "a"})
    with pytest.raises(InvalidInput):
        store.update("c", "a", {"_id": "b"})
    assert store.find("c") == [{"_id": "a"}]


def test_reopening_keeps_documents(make_store, new_store_url) -> None:
    url = new_store_url()
    first = make_store(url)
    first.insert("c", {"_id": "a", "nested": {"list": [1, 2.5, "s", None, True]}})
    first.close()
    again = make_store(url)
    assert again.get("c", "a") == {"_id": "a", "nested": {"list": [1, 2.5, "s", None, True]}}


def test_an_unreachable_database_is_a_store_error(store_engine: str, tmp_path) -> None:
    if store_engine == "sqlite":
        url = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    else:
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing_listens_here"
    with pytest.raises(StoreError, match="cannot open"):
        Store(url, name="application database")


def test_find_prefix_reads_only_the_documents_whose_id_starts_with_it(store: Store) -> None:
    with store.tx() as t:
        for doc_id in ("g1:a", "g1:b", "g10:a", "g2:a", "xg1:a", "g1"):
            t.put("statuses", {"_id": doc_id, "ok": doc_id != "g1:b"})
        t.put("other", {"_id": "g1:z"})
    assert [d["_id"] for d in store.find_prefix("statuses", "g1:")] == ["g1:a", "g1:b"]
    assert [d["_id"] for d in store.find_prefix("statuses", "g1:", ok=True)] == ["g1:a"]
    assert store.find_prefix("statuses", "%") == [] and store.find_prefix("statuses", "") == []
    with store.tx() as t:
        t.put("statuses", {"_id": "é:1"})
    assert [d["_id"] for d in store.find_prefix("statuses", "é:")] == ["é:1"]

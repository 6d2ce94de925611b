"""The mongod driver's oplog and data commands: the oplog window and reads (``local.oplog.rs`` finds), and a
dump and load of the user databases, checked against a wire-protocol peer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson.int64 import Int64
from bson.timestamp import Timestamp

from opsmgr.drivers.base import OplogRecord
from opsmgr.drivers.mongod import MongodDriver
from opsmgr.drivers.mongod_commands import ts_to_int
from opsmgr.errors import OplogGap
from tests.drivers.specs import NAME, error
from tests.drivers.wirepeer import WirePeer

FIRST = {
    "ts": Timestamp(1_700_000_000, 1),
    "t": Int64(1),
    "op": "n",
    "ns": "",
    "o": {"msg": "initiating set"},
}
LAST = {
    "ts": Timestamp(1_700_000_000 + 9000, 3),
    "t": Int64(1),
    "op": "n",
    "ns": "",
    "o": {"msg": "periodic noop"},
}


def cursor(ns: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cursor": {"id": Int64(0), "ns": ns, "firstBatch": docs}}


def oplog_finds(entries: list[dict[str, Any]]) -> Any:
    """Answers finds on local.oplog.rs as a server would for our three shapes: first, last, ts > x."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        gt = body.get("filter", {}).get("ts", {}).get("$gt")
        found = [e for e in entries if gt is None or e["ts"] > gt]
        if body.get("sort") == {"$natural": -1}:
            found.reverse()
        return cursor("local.oplog.rs", found[: body.get("limit") or None])

    return answer


def test_oplog_window_as_print_replication_info_computes_it(peer: WirePeer, driver: MongodDriver) -> None:
    stats = {
        "ns": "local.oplog.rs",
        "storageStats": {"size": 100 * 2**20, "count": 5000, "capped": True, "maxSize": 2**30},
    }
    peer.script("aggregate", cursor("local.oplog.rs", [stats]))
    peer.script("find", oplog_finds([FIRST, LAST]))
    window = driver.oplog_window(NAME)
    assert window is not None
    assert (window.size_mb, window.used_mb, window.window_hours) == (1024.0, 100.0, 2.5)
    assert (window.first_ts, window.last_ts) == (ts_to_int(FIRST["ts"]), ts_to_int(LAST["ts"]))
    agg = peer.received("aggregate")[-1]
    assert (agg.db, agg.command["aggregate"], agg.command["pipeline"]) == (
        "local",
        "oplog.rs",
        [{"$collStats": {"storageStats": {}}}],
    )
    finds = [r.command for r in peer.received("find")]
    assert [(f["find"], f["filter"], f["sort"], f["limit"]) for f in finds] == [
        ("oplog.rs", {}, {"$natural": 1}, 1),
        ("oplog.rs", {}, {"$natural": -1}, 1),
    ]


def test_no_oplog_no_window(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "aggregate", error(26, "NamespaceNotFound", "Unable to retrieve storageStats: local.oplog.rs")
    )
    assert driver.oplog_window(NAME) is None


def test_oplog_read_returns_entries_after_ts(peer: WirePeer, driver: MongodDriver) -> None:
    insert = {
        "ts": Timestamp(1_700_000_100, 2),
        "t": Int64(1),
        "op": "i",
        "ns": "shop.orders",
        "ui": bson.Binary(b"0" * 16, 4),
        "o": {"_id": 1, "sku": "x"},
        "o2": {"_id": 1},
        "wall": datetime(2023, 11, 14, 22, 15, tzinfo=UTC),
        "v": Int64(2),
    }
    update = {
        "ts": Timestamp(1_700_000_101, 1),
        "op": "u",
        "ns": "shop.orders",
        "o": {"$v": 2, "diff": {"u": {"sku": "y"}}},
        "o2": {"_id": 1},
    }
    peer.script("find", oplog_finds([FIRST, insert, update]))
    after = ts_to_int(FIRST["ts"])
    records = driver.oplog_read(NAME, after, limit=50)
    assert records == [
        OplogRecord(
            ts=ts_to_int(insert["ts"]),
            op="i",
            ns="shop.orders",
            o={"_id": 1, "sku": "x"},
            o2={"_id": 1},
            wall_ms=1_700_000_100_000,
        ),
        OplogRecord(ts=ts_to_int(update["ts"]), op="u", ns="shop.orders", o=update["o"], o2={"_id": 1}),
    ]
    query = peer.received("find")[0].command
    assert query["filter"] == {"ts": {"$gt": Timestamp(1_700_000_000, 1)}}
    assert (query["sort"], query["limit"]) == ({"$natural": 1}, 50)


def test_oplog_read_behind_the_first_entry_is_a_gap(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("find", oplog_finds([FIRST, LAST]))
    behind = ts_to_int(FIRST["ts"]) - 1
    with pytest.raises(OplogGap) as gap:
        driver.oplog_read(NAME, behind)
    assert (gap.value.after_ts, gap.value.first_available_ts) == (behind, ts_to_int(FIRST["ts"]))


def test_dump_reads_user_collections_only(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "listDatabases",
        {"databases": [{"name": n} for n in ("admin", "config", "local", "shop")], "totalSize": 1},
    )
    peer.script(
        "listCollections",
        cursor(
            "shop.$cmd.listCollections",
            [{"name": "orders", "type": "collection"}, {"name": "system.js", "type": "collection"}],
        ),
    )
    peer.script("find", cursor("shop.orders", [{"_id": 1, "sku": "x"}, {"_id": 2, "sku": "y"}]))
    assert driver.dump(NAME) == [
        ("shop.orders", {"_id": 1, "sku": "x"}),
        ("shop.orders", {"_id": 2, "sku": "y"}),
    ]
    listing, metadata = peer.received("listCollections")  # config: a config server's metadata only
    assert (listing.db, listing.command["filter"]) == ("shop", {"type": "collection"})
    assert metadata.db == "config"
    (find,) = peer.received("find")
    assert (find.db, find.command["find"]) == ("shop", "orders")


def test_load_replaces_user_databases(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("listDatabases", {"databases": [{"name": "admin"}, {"name": "old"}], "totalSize": 1})
    peer.script("dropDatabase", {})
    peer.script("insert", lambda body: {"n": len(body["documents"])})
    driver.load(
        NAME, [("shop.orders", {"_id": 1}), ("shop.items", {"_id": "a"}), ("shop.orders", {"_id": 2})]
    )
    (drop,) = peer.received("dropDatabase")
    assert drop.db == "old"
    inserts = [
        (r.db, r.command["insert"], r.command["documents"], r.command["ordered"])
        for r in peer.received("insert")
    ]
    assert inserts == [
        ("shop", "orders", [{"_id": 1}, {"_id": 2}], True),
        ("shop", "items", [{"_id": "a"}], True),
    ]

"""A simulated member's measurement sample (``sim.measure`` through the sim driver): opcounters count the
client writes the primary took, by op, and secondaries none; write tickets are taken by the load's clients;
memory grows with the oplog held and disk with the documents; each database's dbStats count the documents
the member holds."""

from __future__ import annotations

import pytest

from opsmgr.sim.measure import PARTITION, TICKETS
from tests.sim.cluster import make_cluster


def test_opcounters_follow_the_write_load_on_the_primary_only() -> None:
    c = make_cluster(3)
    p = c.primary()
    assert p is not None
    before = c.driver(p).server_sample(c.name(p))
    c.set_load(rate=50, keys=10_000, delete_ratio=0.0, clients=7)
    c.run(10)
    after = c.driver(p).server_sample(c.name(p))
    writes = sum(after[k] - before[k] for k in ("OPCOUNTER_INSERT", "OPCOUNTER_UPDATE", "OPCOUNTER_DELETE"))
    assert 400 <= writes <= 600
    assert after["OPCOUNTER_INSERT"] > before["OPCOUNTER_INSERT"]
    assert after["TICKETS_AVAILABLE_WRITE"] == TICKETS - 7
    assert after["MEMORY_RESIDENT"] > before["MEMORY_RESIDENT"]
    assert after["MEMORY_VIRTUAL"] > after["MEMORY_RESIDENT"]
    # the inserted documents take disk: used grows by about their payload, free shrinks as much
    grown = after["DISK_PARTITION_SPACE_USED"] - before["DISK_PARTITION_SPACE_USED"]
    assert 0 < grown <= after["OPCOUNTER_INSERT"] * (64 + 64) + 1
    total = after["DISK_PARTITION_SPACE_USED"] + after["DISK_PARTITION_SPACE_FREE"]
    assert total == before["DISK_PARTITION_SPACE_USED"] + before["DISK_PARTITION_SPACE_FREE"]
    secondary = next(i for i in range(3) if i != p)
    theirs = c.driver(secondary).server_sample(c.name(secondary))
    assert theirs["OPCOUNTER_INSERT"] == 0 and theirs["TICKETS_AVAILABLE_WRITE"] == TICKETS


def test_an_idle_primary_counts_no_writes() -> None:
    c = make_cluster(3)
    p = c.primary()
    assert p is not None
    c.set_load(rate=0)
    before = c.driver(p).server_sample(c.name(p))
    c.run(30)
    after = c.driver(p).server_sample(c.name(p))
    assert after["OPCOUNTER_INSERT"] == before["OPCOUNTER_INSERT"]
    assert after["OPCOUNTER_UPDATE"] == before["OPCOUNTER_UPDATE"]
    assert after["TICKETS_AVAILABLE_WRITE"] == TICKETS


def test_storage_counts_the_documents_each_database_holds() -> None:
    c = make_cluster(3)
    p = c.primary()
    assert p is not None
    empty = c.driver(p).storage_sample(c.name(p))
    assert empty.databases == {} and list(empty.partitions) == [PARTITION]
    c.set_load(
        rate=40, keys=10_000, delete_ratio=0.0, payload_bytes=100, namespaces=("shop.orders", "crm.people")
    )
    c.run(10)
    c.set_load(rate=0)
    c.run(5)  # the secondaries catch up
    got = c.driver(p).storage_sample(c.name(p))
    shop, crm = got.databases["shop"], got.databases["crm"]
    assert 300 <= shop["DATABASE_OBJECT_COUNT"] + crm["DATABASE_OBJECT_COUNT"] <= 500
    assert shop["DATABASE_AVERAGE_OBJECT_SIZE"] > 100  # the payload and the document's fields
    assert shop["DATABASE_DATA_SIZE"] == pytest.approx(
        shop["DATABASE_OBJECT_COUNT"] * shop["DATABASE_AVERAGE_OBJECT_SIZE"], rel=1e-3
    )
    assert (
        shop["DATABASE_STORAGE_SIZE"] >= shop["DATABASE_DATA_SIZE"] and shop["DATABASE_COLLECTION_COUNT"] == 1
    )
    disk = got.partitions[PARTITION]
    assert (
        disk["DISK_PARTITION_SPACE_USED"] == c.driver(p).server_sample(c.name(p))["DISK_PARTITION_SPACE_USED"]
    )
    assert disk["DISK_PARTITION_SPACE_PERCENT_USED"] + disk[
        "DISK_PARTITION_SPACE_PERCENT_FREE"
    ] == pytest.approx(100)
    secondary = next(i for i in range(3) if i != p)
    assert c.driver(secondary).storage_sample(c.name(secondary)).databases == got.databases

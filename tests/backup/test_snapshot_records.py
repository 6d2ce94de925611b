"""A snapshot's stored document: as written today it reads back and writes back unchanged, and a malformed one
is a StoreError naming the snapshot and the field, also through the catalog."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from opsmgr.backup.positions import PositionKind
from opsmgr.backup.snapshots import SNAPSHOTS_PREFIX, SnapshotCatalog, SnapshotMeta, SnapshotType
from opsmgr.errors import StoreError
from opsmgr.store import Store

# As ``SnapshotCatalog.commit`` wrote it.
STORED = {
    "_id": "65f0c0ffee0000000000000b",
    "sourceId": "src1",
    "groupId": "g1",
    "clusterId": "c1",
    "name": "rs0",
    "kind": "BSON",
    "chain": "sync1",
    "position": 7_000_000_000_000_000_001,
    "createdAt": 1_767_225_600_000,
    "type": "ON_DEMAND",
    "completedAt": 1_767_225_601_000,
    "sizeBytes": 2048,
    "storedBytes": 512,
    "blockCount": 2,
    "newBlocks": 1,
    "records": 10,
    "compression": "zstd:3",
    "complete": True,
}


def test_a_stored_snapshot_round_trips_unchanged() -> None:
    meta = SnapshotMeta.from_doc(copy.deepcopy(STORED))
    assert meta.kind is PositionKind.BSON and meta.type is SnapshotType.ON_DEMAND
    assert meta.to_doc() == STORED
    assert SnapshotMeta.from_doc(meta.to_doc()) == meta


def test_an_older_snapshot_without_the_later_fields_reads_with_their_defaults() -> None:
    older = {k: v for k, v in STORED.items() if k not in ("compression", "newBlocks")}
    meta = SnapshotMeta.from_doc(older)
    assert meta.compression == "zlib:1" and meta.newBlocks == 0


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({**STORED, "kind": "TAPE"}, "kind"),
        ({**STORED, "position": "latest"}, "position"),
        ({k: v for k, v in STORED.items() if k != "chain"}, "chain"),
        ({**STORED, "type": None}, "type"),
    ],
)
def test_a_malformed_stored_snapshot_is_a_store_error_naming_the_field(
    doc: dict[str, Any], field: str
) -> None:
    with pytest.raises(StoreError) as raised:
        SnapshotMeta.from_doc(doc)
    assert raised.value.http_status == 503 and raised.value.error_code == "STORED_RECORD_MALFORMED"
    assert f"snapshot '{STORED['_id']}' is malformed" in raised.value.detail and field in raised.value.detail


def test_the_catalog_reports_a_malformed_stored_snapshot(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'snapshots.sqlite'}")
    try:
        store.put(SNAPSHOTS_PREFIX + "src1", {**STORED, "position": "latest"})
        catalog = SnapshotCatalog(store)
        with pytest.raises(StoreError, match="position"):
            catalog.for_source("src1")
        with pytest.raises(StoreError, match="position"):
            catalog.get("src1", str(STORED["_id"]))
    finally:
        store.close()

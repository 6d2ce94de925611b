"""An SQLite store's files: closing checkpoints the write-ahead log into the database file and empties it
(even while another connection keeps the log alive), and a damaged file or page is found, by opening the
store or by its quick_check."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmgr.errors import StoreError
from opsmgr.store.engine import Store


def test_close_moves_the_log_into_the_file_while_another_reader_keeps_it_open(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    writer, reader = Store(f"sqlite:///{path}"), Store(f"sqlite:///{path}")
    try:
        for i in range(200):
            writer.insert("things", {"_id": str(i), "pad": "x" * 200})
        wal = tmp_path / "a.sqlite-wal"
        assert wal.stat().st_size > 0
        writer.close()
        assert wal.stat().st_size == 0, "the log still holds what was committed"
        assert reader.get("things", "199") is not None
    finally:
        reader.close()
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(path.read_bytes())  # the file alone, as a lost -wal would leave it
    alone = Store(f"sqlite:///{copy}")
    try:
        assert len(alone.find("things")) == 200
    finally:
        alone.close()


def test_quick_check_finds_a_damaged_page(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    store = Store(f"sqlite:///{path}")
    for i in range(300):
        store.insert("things", {"_id": f"{i:04}", "pad": "y" * 300})
    assert store.quick_check() == []
    store.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\x5a" * 4096)
    damaged = Store(f"sqlite:///{path}")
    try:
        assert damaged.quick_check() != []
    finally:
        damaged.close(checkpoint=False)


def test_a_file_that_is_no_database_is_damaged_not_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    path.write_bytes(b"this is not an SQLite database at all" * 200)
    with pytest.raises(StoreError) as refused:
        Store(f"sqlite:///{path}")
    assert refused.value.error_code == "STORE_DAMAGED"

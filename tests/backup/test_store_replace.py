"""Replacing a backing database's documents keeps its restore fence and never brings a backed-up one back."""

from __future__ import annotations

from pathlib import Path

from opsmgr.backup.store_replace import replace_documents
from opsmgr.store import Store
from opsmgr.store.installation import RESTORE_FENCE, read_fence, write_fence


def test_replace_keeps_the_fence(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        store.put("groups", {"_id": "old"})
        write_fence(store, restore_job_id="job1", store_label="app", written_by="test")
        seen: list[int] = []
        counts = replace_documents(
            store,
            [("groups", {"_id": "new"}), (RESTORE_FENCE, {"_id": "fence", "restoreJobId": "stale"})],
            seen.append,
        )
        assert counts == {"removed": 1, "documents": 1} and seen == [1]
        assert store.find("groups") == [{"_id": "new"}]
        fence = read_fence(store)
        assert fence is not None and fence.restore_job_id == "job1"
    finally:
        store.close()

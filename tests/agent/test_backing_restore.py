"""The steps of a restore of backing databases the agent and the drill share, without processes: a downloaded
stream is a whole store only with its end mark and count; the seed's rules on downloaded documents (a
metadata store earlier than the app DB refused naming the jobs that would answer 409, unless forced); the
fences stand on every target before any is written, and the restore is recorded in the app DB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsmgr.agent.backing_restore import (
    Download,
    DownloadIncomplete,
    Fencing,
    Received,
    decide_plan,
    fence_targets,
    write_stores,
)
from opsmgr.backup.snapshots import SNAPSHOTS_PREFIX
from opsmgr.backup.store_restore import RESTORE_JOBS, RestoreRefused
from opsmgr.store.engine import Store
from opsmgr.store.installation import read_fence

Docs = list[tuple[str, dict[str, Any]]]


def receive(tmp_path: Path, name: str, lines: list[str]) -> Received:
    path = tmp_path / f"{name}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        received = Received(name, path, f)
        for line in lines:
            if received.take(line):
                break
    return received


def line(ns: str, doc: dict[str, Any]) -> str:
    return json.dumps({"ns": ns, "doc": doc})


def test_a_stream_is_a_store_only_with_its_end_mark_and_count(tmp_path: Path) -> None:
    docs = [line("c", {"_id": str(i)}) for i in range(3)]
    whole = receive(tmp_path, "app", [*docs, "", json.dumps({"end": True, "documents": 3}), line("x", {})])
    got = whole.whole()
    assert got.documents == 3 and [d["_id"] for _, d in got.docs()] == ["0", "1", "2"]
    with pytest.raises(DownloadIncomplete, match="application database arrived incomplete"):
        receive(tmp_path, "app", docs).whole()  # cut: no end mark
    with pytest.raises(DownloadIncomplete):
        receive(tmp_path, "oplog", [*docs, json.dumps({"end": True, "documents": 4})]).whole()


def download(tmp_path: Path, name: str, docs: Docs) -> Download:
    lines = [line(ns, d) for ns, d in docs] + [json.dumps({"end": True, "documents": len(docs)})]
    return receive(tmp_path, name, lines).whole()


def stores(tmp_path: Path) -> dict[str, str]:
    return {n: f"sqlite:///{tmp_path / n}.sqlite" for n in ("app", "snapshot", "oplog")}


def test_earlier_metadata_is_refused_naming_the_jobs_unless_forced(tmp_path: Path) -> None:
    app = [(RESTORE_JOBS, {"_id": "j1", "snapshotId": "s9", "plan": {"oplogSlices": 0}})]
    downloads = {
        "app": download(tmp_path, "app", app),
        "snapshot": download(tmp_path, "snapshot", [(f"{SNAPSHOTS_PREFIX}src", {"_id": "s1"})]),
    }
    positions = {"app": 2_000_000, "snapshot": 1_000_000}
    with pytest.raises(RestoreRefused) as refused:
        decide_plan(positions, downloads, stores(tmp_path), force=False)
    assert "j1" in refused.value.detail and refused.value.parameters["jobs"] == ["j1"]
    plan = decide_plan(positions, downloads, stores(tmp_path), force=True)
    assert plan.jobs_answering_409 == ("j1",) and plan.warnings[0].startswith("forced")


def test_fences_stand_on_every_target_before_any_is_written(tmp_path: Path) -> None:
    uris = stores(tmp_path / "lost")  # the files are gone: they are created
    docs = {"app": [("groups", {"_id": "g1", "name": "restored"})], "oplog": [("slices", {"_id": "x"})]}
    downloads = {n: download(tmp_path, n, d) for n, d in docs.items()}
    plan = decide_plan({"app": 5, "oplog": 5}, downloads, uris, force=False)
    opened: dict[str, Store] = {}
    try:
        assert fence_targets(plan, uris, "job1", Fencing("test", str(tmp_path)), opened) == {}
        assert sorted(opened) == ["app", "oplog"]
        assert all((f := read_fence(s)) is not None and f.restore_job_id == "job1" for s in opened.values())
        seen: list[float] = []
        counts = write_stores(opened, downloads, "job1", plan, lambda fraction, _m: seen.append(fraction))
        assert counts == {"app": {"removed": 0, "documents": 1}, "oplog": {"removed": 0, "documents": 1}}
        assert seen[-1] == 1.0
        assert opened["app"].get("groups", "g1") == {"_id": "g1", "name": "restored"}
        assert read_fence(opened["app"]) is not None, "the caller removes the fences, last"
    finally:
        for store in opened.values():
            store.close()

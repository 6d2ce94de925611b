"""The agent's backup of backing databases (the ``agent.backing.BackingStore`` adapter under the agent's
``Shipper``) against a real backup daemon behind the agent routes (an in-process transport), on a real
SQLite store and on PostgreSQL: initial sync, slices tailing the store's oplog, exact resume after a
restart of the agent and after the secondary was down (no gap), a gap when the store's oplog was capped
past the acknowledged position (reported, resynced, a hole in the window), and nothing shipped while a
restore fence stands."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.agent.backing import BackingConfig, BackingStores, backing_config
from opsmgr.agent.client import ServerUnreachable
from opsmgr.agent.runtime import Runtime
from opsmgr.agent.shipper import Shipper
from opsmgr.agent.work import WorkList
from opsmgr.backup.daemon import BackupDaemon, SourceKind
from opsmgr.backup.positions import to_oplog
from opsmgr.backup.slices import decode_slice
from opsmgr.store import Store
from opsmgr.store.installation import remove_fence, write_fence
from tests.backup.backuptest import open_stores, store_documents
from tests.pgserver import PgServer

GROUP = "g1"
PREFIX = f"/agents/api/backup/v1/{GROUP}"


@dataclass
class Secondary:
    """The secondary's agent routes over a real daemon; ``down`` makes it unreachable."""

    daemon: BackupDaemon
    sources: dict[str, str]  # store name -> source id
    down: bool = False
    slices: list[tuple[int, int]] = field(default_factory=list)

    def work(self) -> WorkList:
        """The agent's work list as the secondary's status answer gives it."""
        backing = tuple({"sourceId": s, "clusterId": "c", "name": n} for n, s in self.sources.items())
        return WorkList("v1", backing=backing)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("secondary down", request=request)
        path = request.url.path.removeprefix(PREFIX)
        body: Any = json.loads(request.content) if request.content and "slices" not in path else None
        d = self.daemon
        parts = path.strip("/").split("/")
        if parts[-1] == "acknowledged":
            out = d.acknowledged(parts[1]).to_json()
        elif parts[-1] == "sync":
            out = {"syncId": d.start_sync(parts[1], body["position"])}
        elif parts[-1] == "documents":
            out = {"loaded": d.sync_documents(parts[1], parts[3], [(ns, doc) for ns, doc in body["docs"]])}
        elif parts[-1] == "finish":
            out = d.finish_sync(parts[1], parts[3], body["minValid"]).to_json()
        elif parts[-1] == "slices":
            result = d.ingest_slice_bytes(parts[1], request.content)
            upload = decode_slice(request.content)
            self.slices.append((upload.start, upload.end))
            out = result.to_json()
        elif parts[-1] == "gap":
            d.report_gap(parts[1], body.get("firstAvailable"), body.get("detail", ""))
            out = d.acknowledged(parts[1]).to_json()
        else:
            return httpx.Response(404, json={"detail": path})
        return httpx.Response(200, json=out)


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'primary-appdb.sqlite'}"
    pg: PgServer = request.getfixturevalue("pg_server")
    return pg.create_database()


@pytest.fixture
def secondary(tmp_path: Path) -> Iterator[Secondary]:
    stores = open_stores(tmp_path / "secondary")
    daemon = BackupDaemon(stores, tmp_path / "blockstore", block_target=512)
    src = daemon.register_source(GROUP, "c", "app", SourceKind.BACKING_DATABASE)
    try:
        yield Secondary(daemon, {"app": src.id})
    finally:
        daemon.close()
        stores.close()


def backing_shipper(runtime: Runtime, secondary: Secondary, config: BackingConfig) -> Shipper:
    return Shipper(runtime, [BackingStores(runtime, config, secondary.work)], exchange_s=10.0)


def run_step(secondary: Secondary, url: str, **config: Any) -> dict[str, str]:
    async def go() -> dict[str, str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(secondary)) as http:
            runtime = Runtime(http, "primary-host", "http://secondary", GROUP, "key", offload=False)
            shipper = backing_shipper(runtime, secondary, BackingConfig({"app": url}, **config))
            try:
                return await shipper.step()
            finally:
                shipper.close()

    return asyncio.run(go())


def restored_latest(daemon: BackupDaemon, source_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    daemon.tick()
    tip = daemon.acknowledged(source_id).acknowledged
    assert tip is not None
    ts, inc = to_oplog(daemon.source(source_id).position_kind, tip)
    plan = daemon.restore_plan(source_id, {"oplogTs": ts, "oplogInc": inc})
    return {(ns, doc["_id"]): doc for ns, doc in daemon.restore_documents(plan)}


def write(store: Store, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        store.put("groups", {"_id": f"g{i % 7}", "n": i})
        store.put("automation_configs", {"_id": f"c{i % 3}", "version": i, "blob": "x" * (i % 50)})
        if i % 5 == 4:
            store.delete("groups", f"g{(i + 3) % 7}")


def test_sync_tail_resume_and_outage(secondary: Secondary, source_url: str) -> None:
    store = Store(source_url, name="primary app")
    try:
        write(store, 30)
        sid = secondary.sources["app"]
        assert "initial sync" in run_step(secondary, source_url)["app"]
        assert restored_latest(secondary.daemon, sid) == store_documents(store)

        # Tail: the new entries go as slices, cut at 7 entries, each starting where the last one ended.
        write(store, 40, start=30)
        first_tip = secondary.daemon.acknowledged(sid).acknowledged
        start = len(secondary.slices)
        assert "entries shipped" in run_step(secondary, source_url, max_entries=7)["app"]
        tail = secondary.slices[start:]
        assert tail[0][0] == first_tip
        assert all(a[1] == b[0] for a, b in itertools.pairwise(tail))
        assert len(tail) >= 40 * 2 // 7
        assert secondary.daemon.acknowledged(sid).acknowledged >= store.oplog_bounds().last_ts

        # A quiet store: an empty slice up to its quiet position keeps the window advancing.
        quiet_before = store.quiet_position()
        run_step(secondary, source_url)
        assert secondary.daemon.acknowledged(sid).acknowledged >= quiet_before
        assert restored_latest(secondary.daemon, sid) == store_documents(store)

        # The secondary is down: the step fails (the agent's loop carries on), the primary keeps writing.
        secondary.down = True
        with pytest.raises(ServerUnreachable):
            run_step(secondary, source_url)
        write(store, 25, start=70)
        # Back: a new agent process resumes exactly at the acknowledged position, no gap.
        secondary.down = False
        before = len(secondary.slices)
        tip = secondary.daemon.acknowledged(sid).acknowledged
        run_step(secondary, source_url)
        assert secondary.slices[before][0] == tip
        assert restored_latest(secondary.daemon, sid) == store_documents(store)
        assert len(secondary.daemon.pitr_window(sid)) == 1, "one continuous window: no hole"
    finally:
        store.close()


def test_gap_is_reported_and_resynced(secondary: Secondary, source_url: str) -> None:
    store = Store(source_url, name="primary app")
    try:
        write(store, 10)
        sid = secondary.sources["app"]
        run_step(secondary, source_url)
        secondary.daemon.tick()
        write(store, 30, start=10)
        assert store.cap(max_bytes=200) > 0  # the oplog loses entries the secondary never received
        assert run_step(secondary, source_url)["app"].startswith("gap after")
        status = secondary.daemon.status(sid)
        assert status["gap"] is not None and status["syncRequired"]
        # The next step resyncs; after a snapshot the window shows the hole.
        assert "initial sync" in run_step(secondary, source_url)["app"]
        assert restored_latest(secondary.daemon, sid) == store_documents(store)
        assert len(secondary.daemon.pitr_window(sid)) == 2
    finally:
        store.close()


def test_nothing_is_shipped_while_a_restore_fence_stands(secondary: Secondary, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fenced.sqlite'}"
    store = Store(url)
    try:
        write(store, 5)
        write_fence(store, restore_job_id="job1", store_label="app", written_by="test")
        assert run_step(secondary, url)["app"].startswith("fenced")
        assert secondary.daemon.acknowledged(secondary.sources["app"]).status.value == "SYNC_REQUIRED"
        remove_fence(store, restore_job_id="job1")
        assert "initial sync" in run_step(secondary, url)["app"]
    finally:
        store.close()


def test_config_from_the_primary_conf_and_explicit_uris(tmp_path: Path) -> None:
    conf = tmp_path / "primary" / "conf-mms.properties"
    conf.parent.mkdir()
    conf.write_text(
        "mongo.mongoUri=sqlite:///appdb.sqlite\nmms.snapshotMetadataStore.uri=sqlite:///snap.sqlite\n"
        "mms.oplogMetadataStore.uri=sqlite:///oplog.sqlite\nmms.blockstore.path=blocks\n"
    )
    config = backing_config({"backing.primaryConf": str(conf), "backing.sliceSeconds": "0.5"})
    assert config is not None and config.interval_s == 0.5
    assert config.uris["app"] == f"sqlite:///{conf.parent / 'appdb.sqlite'}"
    assert config.uris["oplog"].endswith("oplog.sqlite")
    explicit = backing_config({"backing.appDbUri": "postgresql://u@h/app"})
    assert explicit is not None and explicit.uris == {"app": "postgresql://u@h/app"}
    assert backing_config({"mmsGroupId": "g"}) is None


def test_a_lost_sqlite_file_is_not_recreated_and_a_replaced_one_is_reopened(
    secondary: Secondary, tmp_path: Path
) -> None:
    path = tmp_path / "appdb.sqlite"
    url = f"sqlite:///{path}"
    first = Store(url)
    write(first, 5)
    first.close()

    async def go() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(secondary)) as http:
            runtime = Runtime(http, "primary-host", "http://s", GROUP, "k")
            shipper = backing_shipper(runtime, secondary, BackingConfig({"app": url}))
            try:
                seen = [(await shipper.step())["app"]]
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                seen.append((await shipper.step())["app"])
                assert not path.exists(), "the agent must not create the primary's database"
                replacement = Store(url)
                write(replacement, 3, start=100)
                replacement.close()
                secondary.daemon.require_resync(secondary.sources["app"], "restored")
                seen.append((await shipper.step())["app"])
                return seen
            finally:
                shipper.close()

    seen = asyncio.run(go())
    assert "initial sync" in seen[0] and seen[1].startswith("missing") and "initial sync" in seen[2]
    check = Store(url)
    try:
        assert restored_latest(secondary.daemon, secondary.sources["app"]) == store_documents(check)
    finally:
        check.close()

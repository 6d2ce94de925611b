"""Damaged, lost and foreign backing databases through the real ``opsmgr server``: a clean stop leaves every
committed write in the SQLite files themselves (no ``-wal`` content), and a start on stores that are missing,
emptied, damaged or of another installation, or on a blockstore that lost the blocks its snapshots use, is
refused with a non-zero exit naming what is wrong and how to recover, instead of serving an empty
installation; only a start where everything is new is a first start, and an installation from before
installation ids adopts one.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.backup.daemon import BackupDaemon, SourceKind
from opsmgr.store.engine import Store
from opsmgr.store.installation import INSTALLATION, INSTALLATION_ID, read_installation_id
from tests.backup.backuptest import StoreAgent
from tests.procs import ServerProcess, free_port, wait_for

STORES = {
    "application database": "appdb.sqlite",
    "snapshot metadata store": "snapshotdb.sqlite",
    "oplog metadata store": "oplogdb.sqlite",
}


@dataclass
class Installed:
    server: ServerProcess
    key: dict[str, Any]
    group_id: str

    @property
    def data(self) -> Path:
        return self.server.data_dir

    def group_served(self) -> bool:
        with self.server.client(self.key) as api:
            return api.get(f"/groups/{self.group_id}").status_code == 200


def install(data_dir: Path) -> Installed:
    """A data dir a real server has served (a key and a project written), stopped cleanly."""
    server = ServerProcess(data_dir, free_port()).start()
    try:
        key = server.create_key()
        with server.client(key) as api:
            group_id = api.post("/groups", json={"name": "kept"}).json()["id"]
    finally:
        assert server.stop() == 0, server.log()
    return Installed(server, key, group_id)


@pytest.fixture
def installed(tmp_path: Path) -> Installed:
    return install(tmp_path / "data")


def refused(data_dir: Path) -> str:
    return refused_start(ServerProcess(data_dir, free_port()))


def refused_start(server: ServerProcess) -> str:
    """The output of a start that must be refused; fails as soon as the server serves instead."""
    earlier = len(server.log())  # a server started again appends to its log
    server.start(wait=False)
    assert server.proc is not None

    def outcome() -> str | None:
        assert server.proc is not None
        if server.proc.poll() is not None:
            return "exited"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health/ready", timeout=1).status_code == 200:
                return "serving"
        return None

    try:
        assert wait_for(outcome, 60, what="the refusal") == "exited", f"the server serves: {server.log()}"
    finally:
        server.stop()
    out = server.log()[earlier:]
    assert server.proc.returncode != 0, f"the server started: {out}"
    assert "Traceback" not in out and "first start of this installation" not in out, out
    return out


def installation_id(path: Path) -> str | None:
    store = Store(f"sqlite:///{path}")
    try:
        return read_installation_id(store)
    finally:
        store.close()


def lose(data: Path, file: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data / f"{file}{suffix}").unlink(missing_ok=True)


def test_a_clean_stop_leaves_everything_in_the_files_so_losing_the_wal_loses_nothing(
    installed: Installed,
) -> None:
    for file in STORES.values():
        wal = installed.data / f"{file}-wal"
        assert not wal.exists() or wal.stat().st_size == 0, f"{wal} holds {wal.stat().st_size} bytes"
        (installed.data / f"{file}-wal").unlink(missing_ok=True)
        (installed.data / f"{file}-shm").unlink(missing_ok=True)
    installed.server.start()
    try:
        assert installed.group_served(), "the project written before the stop is gone"
        assert "first start" not in installed.server.log().split("Using the embedded setup", 1)[1]
    finally:
        installed.server.stop()


@pytest.mark.parametrize(
    ("label", "damage"),
    [
        ("application database", "delete"),
        ("application database", "truncate"),
        ("snapshot metadata store", "delete"),
        ("oplog metadata store", "truncate"),
    ],
)
def test_a_lost_or_emptied_store_refuses_to_start(installed: Installed, label: str, damage: str) -> None:
    path = installed.data / STORES[label]
    if damage == "delete":
        lose(installed.data, STORES[label])
    else:
        path.write_bytes(b"")
    out = refused(installed.data)
    assert f"the {label} is missing" in out
    assert "opsmgr backup restore-stores" in out
    others = [other for other in STORES if other != label]
    assert all(f"{other} (" in out for other in others), out
    # Nothing was created in its place: the restore finds the loss as it was.
    assert not path.exists() if damage == "delete" else path.stat().st_size == 0


def test_every_store_lost_beside_the_gen_key_that_served_them_refuses(installed: Installed) -> None:
    served = installation_id(installed.data / STORES["application database"])
    for file in STORES.values():
        lose(installed.data, file)
    out = refused(installed.data)
    assert "this is not a first start" in out
    assert served is not None and f"has served installation {served}" in out
    assert str(installed.data / "gen.key") in out
    assert not (installed.data / STORES["application database"]).exists()


def test_a_damaged_page_is_found_at_start_and_refused(installed: Installed) -> None:
    path = installed.data / STORES["application database"]
    size = path.stat().st_size
    assert size >= 4 * 4096
    with open(path, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 4096)
    out = refused(installed.data)
    assert "the application database" in out and "is damaged" in out
    assert "opsmgr backup restore-stores" in out


def test_a_store_of_another_installation_is_refused_naming_both_ids(tmp_path: Path) -> None:
    ours = install(tmp_path / "ours")
    theirs = install(tmp_path / "theirs")
    file = STORES["oplog metadata store"]
    lose(ours.data, file)
    shutil.copy2(theirs.data / file, ours.data / file)
    out = refused(ours.data)
    our_id = installation_id(ours.data / STORES["application database"])
    their_id = installation_id(theirs.data / file)
    assert our_id and their_id and our_id != their_id
    assert f"the oplog metadata store belongs to installation {their_id}, not to installation {our_id}" in out


def test_an_installation_from_before_ids_adopts_one(installed: Installed) -> None:
    for file in STORES.values():
        store = Store(f"sqlite:///{installed.data / file}")
        try:
            with store.tx() as t:
                doc = t.get(INSTALLATION, INSTALLATION_ID)
                assert doc is not None
                del doc["installationId"]
                if file == STORES["application database"]:
                    t.put(INSTALLATION, doc)
                else:  # an unused metadata store held nothing at all
                    t.delete(INSTALLATION, INSTALLATION_ID)
        finally:
            store.close()
    (installed.data / "gen.key.installation").unlink()
    installed.server.start()
    try:
        assert installed.group_served()
    finally:
        installed.server.stop()
    ids = {installation_id(installed.data / file) for file in STORES.values()}
    assert len(ids) == 1 and None not in ids, ids
    assert (installed.data / "gen.key.installation").read_text().strip() in ids


def snapshot_into(data: Path) -> None:
    """A snapshot of a small source, taken by the backup daemon on the stopped server's own stores."""
    from tests.backup.backuptest import Stores

    stores = Stores(*(Store(f"sqlite:///{data / file}") for file in STORES.values()))
    source_store = Store(f"sqlite:///{data.parent / 'source.sqlite'}")
    daemon = BackupDaemon(stores, data / "blockstore")
    try:
        source_store.insert("things", {"_id": "a", "n": 1})
        source = daemon.register_source("g", "c", "source", SourceKind.BACKING_DATABASE)
        agent = StoreAgent(daemon, source.id, source_store)
        agent.sync()
        daemon.take_snapshot(source.id)
    finally:
        daemon.close()
        source_store.close()
        stores.close()


def test_snapshots_without_the_blockstore_that_holds_their_blocks_refuse(installed: Installed) -> None:
    snapshot_into(installed.data)
    kept = installed.data.parent / "blockstore-kept"
    shutil.move(installed.data / "blockstore", kept)
    out = refused(installed.data)
    assert "blockstore" in out and "holds no block" in out and str(installed.data / "blockstore") in out
    shutil.move(kept, installed.data / "blockstore")
    installed.server.start()
    try:
        assert installed.group_served()
    finally:
        installed.server.stop()

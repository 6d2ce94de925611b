"""Start-up preflight through the real ``opsmgr server`` command: a mismatched gen.key, a downgrade and a
restore fence each refuse to start with the seed's wording and a non-zero exit, serving nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store
from opsmgr.store.installation import INSTALLATION, INSTALLATION_ID, write_fence
from tests.procs import OPSMGR, ServerProcess, free_port, run_cli


def start_and_expect_refusal(data_dir: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*OPSMGR, "server", "--data-dir", str(data_dir), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stderr
    return done


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A data dir whose stores a real server has opened once (so the installation record exists)."""
    server = ServerProcess(tmp_path / "data", free_port()).start()
    server.stop()
    return tmp_path / "data"


def test_mismatched_gen_key_refuses_start(installed: Path) -> None:
    (installed / "gen.key").unlink()
    GenKey.create(installed / "gen.key")
    done = start_and_expect_refusal(installed)
    assert "gen.key doesn't match the key already used for this Ops Manager installation" in done.stderr
    assert "Traceback" not in done.stderr


def test_downgrade_refuses_start(installed: Path) -> None:
    store = Store(f"sqlite:///{installed / 'appdb.sqlite'}")
    try:
        store.update(INSTALLATION, INSTALLATION_ID, {"highestVersion": "99.0.0"})
    finally:
        store.close()
    done = start_and_expect_refusal(installed)
    assert "Downgrades are not permitted" in done.stderr
    assert "99.0.0" in done.stderr


def test_restore_fence_refuses_start_until_removed(installed: Path) -> None:
    store = Store(f"sqlite:///{installed / 'oplogdb.sqlite'}")
    try:
        write_fence(store, restore_job_id="job-123", store_label="oplog metadata store", written_by="test")
        done = start_and_expect_refusal(installed)
        assert "fence" in done.stderr.lower() and "job-123" in done.stderr
        shown = run_cli("fence", "show", "--data-dir", str(installed))
        assert "job-123" in shown.stdout and shown.stdout.count("no fence") == 2
        wrong = run_cli(
            "fence", "remove", "--store", "oplog", "--restore-job", "other", "--data-dir", str(installed)
        )
        assert wrong.returncode != 0 and "job-123" in wrong.stderr
        done = run_cli(
            "fence", "remove", "--store", "oplog", "--restore-job", "job-123", "--data-dir", str(installed)
        )
        assert done.returncode == 0, done.stderr
    finally:
        store.close()
    server = ServerProcess(installed, free_port()).start()
    server.stop()


def test_unknown_and_malformed_keys_are_named(tmp_path: Path) -> None:
    conf = tmp_path / "conf-mms.properties"
    conf.write_text("mms.port=notaport\nmms.noSuchKey=1\n")
    done = subprocess.run(
        [*OPSMGR, "server", "--conf", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "mms.port" in done.stderr and "mms.noSuchKey" in done.stderr

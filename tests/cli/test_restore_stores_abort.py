"""``opsmgr backup restore-stores`` stopped before, while and after it writes, through the real CLI:

- end of input or Ctrl-C at the confirmation: nothing was written, so the fences go (the primary starts
  again), the command says nothing was changed and exits non-zero, and its download is gone;
- Ctrl-C while writing: the fences stay, and the command names them and the way out (run it again);
- SIGKILL while writing: the fences and the download (store contents, agent-key hashes included) stay; the
  primary refuses to start naming both; ``fence show`` names the download, ``fence remove`` deletes it, and
  so does the next restore, which takes the fences over and, once it ends, lets the primary start.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.backup.crashpoints import ENV as CRASHPOINT_ENV
from opsmgr.backup.restore_download import download_folder
from opsmgr.store import Store
from opsmgr.store.installation import RESTORE_FENCE
from tests.procs import OPSMGR, free_port, run_cli, wait_for
from tests.secondary_support import STORE_FILES, SecondaryPair, fences, now_ms, primary_with_secondary

pytestmark = pytest.mark.e2e

PROMPT = "Replace the primary's backing databases now?"
Contents = dict[str, dict[str, list[dict[str, Any]]]]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecondaryPair, int]]:
    """A primary backed up by its secondary, then stopped (with its backing agent), and an instant to
    restore it to."""
    root = tmp_path_factory.mktemp("abort")
    with primary_with_secondary(root) as pair:
        with pair.primary.client(pair.primary_key) as api:
            assert api.post("/groups", json={"name": "before-T"}).status_code == 201
        pair.wait_snapshots()
        at = now_ms()
        pair.wait_caught_up()
        pair.stop_primary()
        pair.stop_agent()
        yield pair, at


def contents(pair: SecondaryPair) -> Contents:
    """Every document of the primary's stores but the fences."""
    out: Contents = {}
    for name, file in STORE_FILES.items():
        store = Store(f"sqlite:///{pair.primary.data_dir / file}")
        try:
            out[name] = {c: store.find(c) for c in store.collections() if c != RESTORE_FENCE}
        finally:
            store.close()
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def start_restore(pair: SecondaryPair, at: int, out: Path, *extra: str, crash: Path | None = None) -> Any:
    env = {**os.environ, CRASHPOINT_ENV: f"store-restore-batch:{crash}"} if crash else None
    with open(out, "w") as stderr:
        return subprocess.Popen(
            [*OPSMGR, *pair.restore_args("--point-in-time-ms", str(at), *extra)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )


def primary_refusal(pair: SecondaryPair) -> str:
    done = run_cli("server", "--data-dir", str(pair.primary.data_dir), "--port", str(free_port()))
    assert done.returncode != 0, "the primary must refuse to start"
    return done.stderr


def test_end_of_input_at_the_confirmation_changes_nothing(stopped: tuple[SecondaryPair, int]) -> None:
    pair, at = stopped
    before = contents(pair)
    done = subprocess.run(
        [*OPSMGR, *pair.restore_args("--point-in-time-ms", str(at))],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert PROMPT in done.stderr and "nothing was changed" in done.stderr, done.stderr
    assert fences(pair) == {"app": None, "snapshot": None, "oplog": None}
    assert contents(pair) == before
    assert not download_folder(pair.primary.data_dir).exists()
    # Neither fence nor lock is left: the primary starts.
    pair.primary.start()
    pair.stop_primary()


def test_ctrl_c_at_the_confirmation_changes_nothing(
    stopped: tuple[SecondaryPair, int], tmp_path: Path
) -> None:
    pair, at = stopped
    before = contents(pair)
    errors = tmp_path / "stderr"
    proc = start_restore(pair, at, errors)
    try:
        wait_for(
            lambda: PROMPT in errors.read_text() and all(fences(pair).values()), 90, what="the confirmation"
        )
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "nothing was changed" in errors.read_text(), errors.read_text()
    assert fences(pair) == {"app": None, "snapshot": None, "oplog": None}
    assert contents(pair) == before
    assert not download_folder(pair.primary.data_dir).exists()


def killed_while_writing(pair: SecondaryPair, at: int, tmp: Path, sig: int) -> tuple[Any, str]:
    """A restore stopped after its first batch of documents is written, then sent ``sig``."""
    marker = tmp / f"crash-{sig}"
    Path(f"{marker}.armed").touch()
    errors = tmp / f"stderr-{sig}"
    proc = start_restore(pair, at, errors, "--yes", crash=marker)
    try:
        wait_for(marker.exists, 90, what="the restore writing")
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        marker.unlink(missing_ok=True)
    assert proc.returncode != 0
    return proc, errors.read_text()


def test_a_restore_stopped_while_writing_keeps_its_fences(
    stopped: tuple[SecondaryPair, int], tmp_path: Path
) -> None:
    pair, at = stopped
    folder = download_folder(pair.primary.data_dir)

    # Ctrl-C while writing: the fences stay, named with the way out; the download is deleted.
    _, said = killed_while_writing(pair, at, tmp_path, signal.SIGINT)
    job = fences(pair)["app"]
    assert job is not None and set(fences(pair).values()) == {job}
    assert job in said and "fence" in said and "restore-stores" in said, said
    assert "application database" in said and "oplog metadata store" in said, said
    assert not folder.exists()

    # SIGKILL while writing (a new restore takes the fences over): the fences and the download stay.
    killed_while_writing(pair, at, tmp_path, signal.SIGKILL)
    job = fences(pair)["app"]
    assert job is not None and set(fences(pair).values()) == {job}
    assert folder.is_dir() and mode(folder) == 0o700
    assert all(mode(f) == 0o600 for f in folder.glob("*.jsonl"))
    refusal = primary_refusal(pair)
    assert job in refusal and "restore fence" in refusal and str(folder) in refusal, refusal
    shown = run_cli("fence", "show", "--data-dir", str(pair.primary.data_dir))
    assert job in shown.stdout and str(folder) in shown.stdout, shown.stdout

    # `fence remove` deletes the download with the fence.
    removed = run_cli(
        "fence", "remove", "--store", "app", "--restore-job", job, "--data-dir", str(pair.primary.data_dir)
    )
    assert removed.returncode == 0, removed.stderr
    assert not folder.exists() and str(folder) in removed.stdout
    assert fences(pair)["app"] is None and fences(pair)["oplog"] == job

    # Killed again; then the next restore deletes the leftover download, takes the fences over and ends.
    killed_while_writing(pair, at, tmp_path, signal.SIGKILL)
    assert folder.exists() and all(fences(pair).values())
    done = pair.restore("--point-in-time-ms", str(at), "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(folder) in done.stderr, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["stores"]
    assert not folder.exists()
    assert fences(pair) == {"app": None, "snapshot": None, "oplog": None}
    pair.primary.start()
    with pair.primary.client(pair.primary_key) as api:
        names = [g["name"] for g in api.get("/groups").json()["results"]]
    assert "before-T" in names
    pair.stop_primary()

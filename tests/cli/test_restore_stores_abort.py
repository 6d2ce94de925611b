"""``opsmgr backup restore-stores`` (the front-end of the restore the backing agent carries out) stopped
before and while the agent writes, through the real CLI and a real backing agent:

- end of input or Ctrl-C at the confirmation: no restore job is created and nothing is written; the command
  says nothing was changed and exits non-zero;
- the agent SIGKILLed while writing: the fences and the download (store contents, agent-key hashes included)
  stay; the primary refuses to start naming both; ``fence show`` names the download, ``fence remove``
  deletes it; the agent started again finds the job still running, takes the fences over and completes the
  restore, which the front-end (still following the job) reports; the primary then starts.
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


def jobs(pair: SecondaryPair) -> list[dict[str, Any]]:
    with pair.secondary_api() as api:
        r = api.get(f"/groups/{pair.group_id}/backingDatabases/{pair.cluster_id}/restoreJobs")
        assert r.status_code == 200, r.text
        return list(r.json()["results"])


def start_restore(pair: SecondaryPair, at: int, out: Path, *extra: str) -> Any:
    with open(out, "w") as stderr:
        return subprocess.Popen(
            [*OPSMGR, *pair.restore_args("--point-in-time-ms", str(at), *extra)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def primary_refusal(pair: SecondaryPair) -> str:
    done = run_cli("server", "--data-dir", str(pair.primary.data_dir), "--port", str(free_port()))
    assert done.returncode != 0, "the primary must refuse to start"
    return done.stderr


def test_end_of_input_at_the_confirmation_changes_nothing(stopped: tuple[SecondaryPair, int]) -> None:
    pair, at = stopped
    before, jobs_before = contents(pair), jobs(pair)
    done = subprocess.run(
        [*OPSMGR, *pair.restore_args("--point-in-time-ms", str(at))],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert PROMPT in done.stderr and "nothing was changed" in done.stderr, done.stderr
    assert jobs(pair) == jobs_before, "no restore job was created"
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
    before, jobs_before = contents(pair), jobs(pair)
    errors = tmp_path / "stderr"
    proc = start_restore(pair, at, errors)
    try:
        wait_for(lambda: PROMPT in errors.read_text(), 90, what="the confirmation")
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "nothing was changed" in errors.read_text(), errors.read_text()
    assert jobs(pair) == jobs_before
    assert fences(pair) == {"app": None, "snapshot": None, "oplog": None}
    assert contents(pair) == before


def test_an_agent_killed_while_writing_keeps_its_fences_and_a_restarted_one_completes(
    stopped: tuple[SecondaryPair, int], tmp_path: Path
) -> None:
    pair, at = stopped
    folder = download_folder(pair.primary.data_dir)
    marker = tmp_path / "crash"
    Path(f"{marker}.armed").touch()
    pair.stop_agent()
    pair.start_agent({**os.environ, CRASHPOINT_ENV: f"store-restore-batch:{marker}"})
    errors = tmp_path / "stderr"
    proc = start_restore(pair, at, errors, "--yes", "--json")
    try:
        # The agent stops after its first batch of documents; the front-end goes on following the job.
        wait_for(marker.exists, 90, what="the agent writing")
        job = fences(pair)["app"]
        assert job is not None and set(fences(pair).values()) == {job}
        running = pair.job(job)
        assert running["statusName"] == "RUNNING" and running["progress"]["phase"] in ("FENCING", "WRITING")
        pair.kill_agent()
        Path(f"{marker}.armed").unlink()

        # SIGKILLed: the fences and the download stay; the primary refuses to start naming both.
        assert set(fences(pair).values()) == {job}
        assert folder.is_dir() and mode(folder) == 0o700
        assert all(mode(f) == 0o600 for f in folder.glob("*.jsonl"))
        refusal = primary_refusal(pair)
        assert job in refusal and "restore fence" in refusal and str(folder) in refusal, refusal
        shown = run_cli("fence", "show", "--data-dir", str(pair.primary.data_dir))
        assert job in shown.stdout and str(folder) in shown.stdout, shown.stdout
        # `fence remove` deletes the download with the fence.
        removed = run_cli(
            "fence",
            "remove",
            "--store",
            "app",
            "--restore-job",
            job,
            "--data-dir",
            str(pair.primary.data_dir),
        )
        assert removed.returncode == 0, removed.stderr
        assert not folder.exists() and str(folder) in removed.stdout
        assert fences(pair)["app"] is None and fences(pair)["oplog"] == job

        # Started again, the agent finds the job still running and completes it.
        pair.start_agent()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, errors.read_text()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["restoreJobId"] == job and result["statusName"] == "FINISHED"
    assert result["stores"]["app"]["documents"] > 0, result
    assert pair.job(job)["statusName"] == "FINISHED"
    assert not folder.exists()
    assert fences(pair) == {"app": None, "snapshot": None, "oplog": None}
    pair.primary.start()
    with pair.primary.client(pair.primary_key) as api:
        names = [g["name"] for g in api.get("/groups").json()["results"]]
    assert "before-T" in names
    pair.stop_primary()

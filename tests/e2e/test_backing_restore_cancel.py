"""Cancelling a restore of the primary's backing databases that its backing agent carries out, through real
servers, a real backing agent, the ``restore-stores`` front-end and ``opsmgr backup cancel --backing``; the
agent is held where the test chooses by ``opsmgr.backup.crashpoints`` and let go after the cancellation:

- cancelled once every store is downloaded, none fenced: no fence is written, the download is deleted;
- cancelled with every store fenced and none written: the agent removes its fences, the stores are as
  before, the statement says every store holds its data from before the restore, the front-end ends
  non-zero naming the cancellation; a second cancel, a read-only key, another project's key, a forged id
  and a drill's job (delivery CLI) are refused;
- cancelled after the agent's first batch: it stops before the next store, every fence stays (the primary
  refuses to start), the statement names the store partly written and those untouched, which are as before;
  a later restore takes the fences over and completes, and the primary starts.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.backup.crashpoints import ENV as CRASHPOINT_ENV
from opsmgr.backup.restore_download import download_folder
from tests.cli.test_restore_stores_abort import Contents, contents, primary_refusal, start_restore
from tests.procs import run_cli, wait_for
from tests.secondary_support import SecondaryPair, fences, now_ms, primary_with_secondary

pytestmark = pytest.mark.e2e
NO_FENCES = {"app": None, "snapshot": None, "oplog": None}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecondaryPair, int]]:
    """A primary backed up by its secondary, then stopped, and an instant to restore it to."""
    root = tmp_path_factory.mktemp("backing-cancel")
    with primary_with_secondary(root) as pair:
        with pair.primary.client(pair.primary_key) as api:
            assert api.post("/groups", json={"name": "before-T"}).status_code == 201
        pair.wait_snapshots()
        at = now_ms()
        pair.wait_caught_up()
        pair.stop_primary()
        yield pair, at


def jobs_path(pair: SecondaryPair, group_id: str | None = None) -> str:
    return f"/groups/{group_id or pair.group_id}/backingDatabases/{pair.cluster_id}/restoreJobs"


def cli_args(pair: SecondaryPair) -> list[str]:
    key = pair.secondary_key
    return [
        "--cluster",
        pair.cluster_id,
        "--group",
        pair.group_id,
        "--url",
        pair.secondary.url,
        "--public-key",
        key["publicKey"],
        "--private-key",
        key["privateKey"],
    ]


def cancel(pair: SecondaryPair, job_id: str) -> subprocess.CompletedProcess[str]:
    return run_cli("backup", "cancel", job_id, "--backing", *cli_args(pair))


def held_restore(pair: SecondaryPair, at: int, point: str, tmp_path: Path) -> tuple[Any, Path, Path, str]:
    """The front-end started with the agent held at crash ``point``: (process, its stderr, marker, job)."""
    marker = tmp_path / "held"
    Path(f"{marker}.armed").touch()
    pair.stop_agent()
    pair.start_agent({**os.environ, CRASHPOINT_ENV: f"{point}:{marker}"})
    errors = tmp_path / "stderr"
    proc = start_restore(pair, at, errors, "--yes", "--json")
    wait_for(marker.exists, 45, what=f"the agent held at {point}")
    with pair.secondary_api() as api:
        job = str(api.get(jobs_path(pair)).json()["results"][0]["id"])
    return proc, errors, marker, job


def ended(proc: Any, errors: Path) -> tuple[int, dict[str, Any], str]:
    out, _ = proc.communicate(timeout=45)
    return proc.returncode, json.loads(out.strip().splitlines()[-1]), errors.read_text()


def test_cancelled_after_the_download_fences_nothing_and_deletes_the_download(
    stopped: tuple[SecondaryPair, int], tmp_path: Path
) -> None:
    pair, at = stopped
    before: Contents = contents(pair)
    proc, errors, marker, job = held_restore(pair, at, "backing-restore-downloaded", tmp_path)
    try:
        assert fences(pair) == NO_FENCES and download_folder(pair.primary.data_dir).is_dir()
        assert cancel(pair, job).returncode == 0
        Path(f"{marker}.armed").unlink()
        code, result, stderr = ended(proc, errors)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code != 0 and "was cancelled" in stderr, stderr
    assert result["cancellation"]["unchanged"] == ["app", "snapshot", "oplog"]
    wait_for(lambda: not download_folder(pair.primary.data_dir).exists(), 30, what="the download deleted")
    assert fences(pair) == NO_FENCES and contents(pair) == before


def test_cancelled_before_writing_removes_the_fences_and_changes_nothing(
    stopped: tuple[SecondaryPair, int], tmp_path: Path
) -> None:
    pair, at = stopped
    before: Contents = contents(pair)
    proc, errors, marker, job = held_restore(pair, at, "backing-restore-fenced", tmp_path)
    try:
        assert set(fences(pair).values()) == {job}, fences(pair)
        done = cancel(pair, job)
        assert done.returncode == 0, done.stderr
        assert f"restore job {job} CANCELLED" in done.stdout and "from before the restore" in done.stdout
        Path(f"{marker}.armed").unlink()
        code, result, stderr = ended(proc, errors)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code != 0 and "was cancelled" in stderr and job in stderr, stderr
    assert result["statusName"] == "KILLED" and result["cancellation"]["unchanged"] == [
        "app",
        "snapshot",
        "oplog",
    ]
    wait_for(lambda: fences(pair) == NO_FENCES, 30, what="the agent to remove its fences")
    assert contents(pair) == before
    shown = pair.job(job)
    assert (shown["phase"], shown["statusName"]) == ("CANCELLED", "KILLED")
    assert shown["cancellation"]["restored"] == [] and shown["cancellation"]["partiallyLoaded"] == []
    assert "still hold their data from before the restore" in shown["cancellation"]["statement"]
    listed = run_cli("backup", "jobs", "--backing", "--job", job, *cli_args(pair))
    assert listed.returncode == 0 and "KILLED (application" in listed.stdout, listed.stdout
    _refusals(pair, at, job)


def _refusals(pair: SecondaryPair, at: int, job: str) -> None:
    again = cancel(pair, job)
    assert again.returncode != 0 and "already CANCELLED" in again.stderr, again.stderr
    with pair.secondary_api() as api:
        other = api.post("/groups", json={"name": "not-the-backing-one"}).json()["id"]
    reader = pair.secondary.create_key("GROUP_READ_ONLY", group_id=pair.group_id)
    stranger = pair.secondary.create_key("GROUP_OWNER", group_id=other)
    with pair.secondary.client(reader) as api:
        assert api.delete(f"{jobs_path(pair)}/{job}").status_code == 403
    with pair.secondary.client(stranger) as api:
        assert api.delete(f"{jobs_path(pair, other)}/{job}").status_code == 404
        assert api.delete(f"{jobs_path(pair)}/{job}").status_code == 403
    with pair.secondary_api() as api:
        for forged in ("nope", "x" * 5000, "%2e%2e", "'; drop"):
            r = api.delete(f"{jobs_path(pair)}/{forged}")
            assert 400 <= r.status_code < 500 and "detail" in r.json(), r.text
        stores = {n: {"pointInTimeUTCMillis": at} for n in ("app", "snapshot", "oplog")}
        drill = api.post(jobs_path(pair), json={"stores": stores, "purpose": "DRILL"}).json()
        refused = api.delete(f"{jobs_path(pair)}/{drill['id']}")
        assert refused.status_code == 409 and refused.json()["errorCode"] == "RESTORE_BY_CLI", refused.text
        assert "opsmgr drill" in refused.json()["detail"]
        api.patch(f"{jobs_path(pair)}/{drill['id']}", json={"statusName": "FAILED", "detail": "test"})


def test_cancelled_while_writing_keeps_the_fences_and_a_later_restore_completes(
    stopped: tuple[SecondaryPair, int], tmp_path: Path
) -> None:
    pair, at = stopped
    before: Contents = contents(pair)
    proc, errors, marker, job = held_restore(pair, at, "store-restore-batch", tmp_path)
    try:
        assert set(fences(pair).values()) == {job}, fences(pair)
        assert pair.job(job)["progress"]["writing"] == "app"
        done = cancel(pair, job)
        assert done.returncode == 0, done.stderr
        assert "application database was being loaded" in done.stdout, done.stdout
        Path(f"{marker}.armed").unlink()
        code, result, stderr = ended(proc, errors)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code != 0 and "was cancelled" in stderr, stderr
    what = result["cancellation"]
    assert what["partiallyLoaded"] == ["app"] and what["unchanged"] == ["snapshot", "oplog"], what
    assert "the primary cannot start until a restore" in what["statement"]
    # The agent stops before the next store: every fence stays, the untouched stores are as before.
    wait_for(lambda: pair.job(job)["phase"] == "CANCELLED", 10, what="the job cancelled")
    assert set(fences(pair).values()) == {job}
    now = contents(pair)
    assert now["snapshot"] == before["snapshot"] and now["oplog"] == before["oplog"]
    assert job in primary_refusal(pair)

    pair.stop_agent()
    pair.start_agent()
    outcome = pair.restore_to(at)
    assert outcome["statusName"] == "FINISHED" and outcome["fencesTakenOver"] == {
        n: job for n in ("app", "snapshot", "oplog")
    }, outcome
    assert fences(pair) == NO_FENCES
    finished = cancel(pair, outcome["restoreJobId"])
    assert finished.returncode != 0 and "already FINISHED" in finished.stderr, finished.stderr
    pair.primary.start()
    with pair.primary.client(pair.primary_key) as api:
        assert "before-T" in [g["name"] for g in api.get("/groups").json()["results"]]
    pair.stop_primary()

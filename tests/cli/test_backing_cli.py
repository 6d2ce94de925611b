"""``opsmgr backup snapshots | jobs --backing`` through the real console script against a real primary and its
secondary (``opsmgr secondary attach`` and the backing-database agent on the primary's stores): the three
stores' snapshots and point-in-time windows side by side with the times all three restore to together; a
restore job of the backing databases with each store's target; an unknown name listing the backing
databases; a key of another project refused with the server's message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.procs import run_cli, wait_for
from tests.secondary_support import SecondaryPair, primary_with_secondary


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondaryPair]:
    with primary_with_secondary(tmp_path_factory.mktemp("backing-cli")) as pair:
        pair.wait_snapshots()
        yield pair


def _cli(pair: SecondaryPair, *args: str, key: dict[str, Any] | None = None) -> Any:
    key = key or pair.secondary_key
    auth = ["--url", pair.secondary.url, "--public-key", key["publicKey"], "--private-key", key["privateKey"]]
    return run_cli("backup", *args, "--group", pair.group_id, *auth)


def test_snapshots_side_by_side(pair: SecondaryPair) -> None:
    backing = pair.backing()
    name = backing["clusterName"]
    for cluster in (pair.cluster_id, name):
        done = _cli(pair, "snapshots", "--backing", "--cluster", cluster)
        assert done.returncode == 0, done.stderr
        text = done.stdout
        assert f"snapshots of the backing databases {name} ({pair.cluster_id})" in text
        for store in backing["stores"]:
            assert store["snapshots"][0]["id"] in text, store["name"]
            assert store["name"] in text
        assert "point-in-time windows, side by side" in text
        # The three windows are columns of one table: their headers are on one line.
        header = next(line for line in text.splitlines() if "app" in line and "oplog" in line)
        assert header.index("app") < header.index("snapshot") < header.index("oplog")
        assert "all stores restorable together" in text
        first = pair.backing()["stores"][0]["pitrWindow"]
        if first:
            assert first[0]["start"]["date"] in text


def test_an_unknown_name_lists_the_backing_databases(pair: SecondaryPair) -> None:
    done = _cli(pair, "snapshots", "--backing", "--cluster", "no-such-store")
    assert done.returncode == 1
    assert "no backing databases 'no-such-store'" in done.stderr and pair.cluster_id in done.stderr
    # Without --backing the deployment commands say --job needs it.
    refused = _cli(pair, "jobs", "--cluster", pair.cluster_id, "--job", "x")
    assert refused.returncode == 1 and "--job goes with --backing" in refused.stderr


def test_restore_jobs_of_the_backing_databases(pair: SecondaryPair) -> None:
    # Right after the first snapshots the three windows may not overlap yet.
    together = wait_for(lambda: pair.backing()["restorableTogether"], 60, what="a time all stores restore to")
    at = together[-1]["endUTCMillis"]
    with pair.secondary_api() as api:
        created = api.post(
            f"/groups/{pair.group_id}/backingDatabases/{pair.cluster_id}/restoreJobs",
            json={"stores": {name: {"pointInTimeUTCMillis": at} for name in ("app", "snapshot", "oplog")}},
        )
        assert created.status_code == 200, created.text
        # Ops Manager answers a created restore job as {results: [job], ...}; the bare job is read the same.
        job = created.json().get("results", [created.json()])[0]
        listed = api.get(f"/groups/{pair.group_id}/backingDatabases/{pair.cluster_id}/restoreJobs")

    shown = _cli(pair, "jobs", "--backing", "--cluster", pair.cluster_id, "--job", job["id"])
    assert shown.returncode == 0, shown.stderr
    assert job["id"] in shown.stdout and "QUEUED" in shown.stdout
    for name in ("app", "snapshot", "oplog"):
        assert f"{name}: 20" in shown.stdout  # each store's target as a date

    assert listed.status_code == 200 and [j["id"] for j in listed.json()["results"]] == [job["id"]]
    every = _cli(pair, "jobs", "--backing", "--cluster", pair.cluster_id)
    assert every.returncode == 0 and job["id"] in every.stdout, every.stderr

    for forged in ("0" * 24, "../../snapshots", "x" * 5000):
        missing = _cli(pair, "jobs", "--backing", "--cluster", pair.cluster_id, "--job", forged)
        assert missing.returncode == 1 and "HTTP 404" in missing.stderr, missing.stderr


def test_a_key_of_another_project_is_refused(pair: SecondaryPair) -> None:
    with pair.secondary_api() as api:
        other = api.post("/groups", json={"name": "backing-cli-other"}).json()["id"]
        key = api.post(f"/groups/{other}/apiKeys", json={"desc": "other", "roles": ["GROUP_OWNER"]}).json()
    with pair.secondary.client(key) as c:
        listing = c.get(f"/groups/{pair.group_id}/backingDatabases/{pair.cluster_id}/restoreJobs")
        assert listing.status_code == 403, listing.text
    for command in ("snapshots", "jobs"):
        refused = _cli(pair, command, "--backing", "--cluster", pair.cluster_id, key=key)
        assert refused.returncode == 1 and "HTTP 40" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr

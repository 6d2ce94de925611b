"""backup.daemon_jobs: each source's job as monitoring sees it — ingest lag, last snapshot, the queue of
slices to apply and snapshots to take, the last error and the count of failed ticks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opsmgr.backup import scheduled as scheduled_module
from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.daemon_jobs import SourceJob, daemon_health, daemon_jobs, ingest_lag_ms, last_error
from tests.backup.backuptest import FakeClock, StoreAgent


def test_ingest_lag_is_behind_the_source_position_when_known_else_behind_now() -> None:
    assert ingest_lag_ms(10_000, None, None) is None  # nothing received: no lag to speak of
    assert ingest_lag_ms(10_000, 4_000, None) == 6_000
    assert ingest_lag_ms(10_000, 4_000, 7_000) == 3_000
    assert ingest_lag_ms(10_000, 8_000, 7_000) == 0  # the source's clock behind: never negative


def test_the_last_error_is_the_most_recent() -> None:
    old, new = {"at": 1, "message": "old"}, {"at": 5, "message": "new"}
    assert last_error(None, None) is None
    assert last_error(old, None, new) == new and last_error(new, old) == new


def _job(daemon: BackupDaemon, source: Source) -> SourceJob:
    (job,) = daemon_jobs(daemon, [source])
    return job


def test_a_source_before_its_initial_sync_is_not_ingesting(daemon: BackupDaemon, source: Source) -> None:
    job = _job(daemon, source)
    assert not job.ingesting and job.ingest_lag_ms is None and job.last_snapshot_ms is None
    assert job.sync_required == "no initial sync yet" and job.slices_pending == 0
    body = job.to_json()
    assert body["sourceId"] == source.id and body["queue"] == {"slicesPending": 0, "snapshotsRequested": 0}


def test_the_queue_counts_slices_not_applied_and_snapshots_not_taken(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, clock: FakeClock
) -> None:
    agent.store.insert("things", {"_id": "a"})
    agent.sync()
    daemon.tick()
    taken = _job(daemon, source)
    assert taken.ingesting and taken.last_snapshot_ms == daemon.now_ms() and taken.errors_total == 0
    agent.page = 1
    for i in range(3):
        agent.store.insert("things", {"_id": f"b{i}"})
    assert len(agent.ship()) == 3
    daemon.request_snapshot(source.id)
    queued = _job(daemon, source)
    assert (queued.slices_pending, queued.snapshots_requested) == (3, 1)
    clock.advance(60)
    daemon.tick()
    done = _job(daemon, source)
    assert (done.slices_pending, done.snapshots_requested) == (0, 0)
    assert done.last_snapshot_ms == daemon.now_ms() and done.to_json()["lastSnapshotAgeSeconds"] == 0
    # The agent says the source's oplog is 5 s ahead of what it shipped: ingestion is 5 s behind.
    assert agent.acked is not None and done.newest_entry_ms is not None
    daemon.note_agent(source.id, source_last=agent.acked + 5_000_000)
    assert _job(daemon, source).ingest_lag_ms == 5_000


def test_failed_ticks_are_counted_and_the_last_error_kept(
    daemon: BackupDaemon,
    make_daemon: Callable[..., BackupDaemon],
    source: Source,
    agent: StoreAgent,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent.sync()

    def disk_full(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(scheduled_module, "write_snapshot", disk_full)
        daemon.tick()
        clock.advance(10)
        daemon.tick()
    failed = _job(daemon, source)
    assert failed.errors_total == 2 and failed.last_snapshot_ms is None
    health = daemon_health([failed])
    assert health["healthy"] is False and health["lastError"] == failed.last_error
    assert len(health["problems"]) == 1 and "No space left" in health["problems"][0]
    assert failed.last_error is not None and "No space left" in failed.last_error["message"]
    assert failed.last_error["at"] == daemon.now_ms()
    # Every server sharing the stores shows them, not only the one whose backup job failed.
    elsewhere = _job(make_daemon(), source)
    assert (elsewhere.errors_total, elsewhere.last_error) == (2, failed.last_error)
    clock.advance(10)
    daemon.tick()
    recovered = _job(daemon, source)
    # The count is of every failure so far; the last error stays the last one, not a current one.
    assert recovered.errors_total == 2 and recovered.last_snapshot_ms == daemon.now_ms()
    assert recovered.last_error is not None and recovered.last_error["kind"] == "JOB"
    # A snapshot succeeded since the last error: the daemon is healthy again.
    assert daemon_health([recovered])["healthy"] is True and daemon_health([recovered])["problems"] == []

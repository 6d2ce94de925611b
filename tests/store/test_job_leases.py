"""store.job_leases: one server at a time holds a periodic job's lease; a silent holder's lease is taken over
with a higher token; a write the former holder makes afterwards, in any database the new holder wrote to, is
refused and changes nothing (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from opsmgr.store import Store
from opsmgr.store.job_leases import JobLease, JobLeases, LeaseLost, decide, fenced


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rule_takes_a_free_or_expired_lease_with_a_higher_token_and_renews_ones_own() -> None:
    taken = decide(None, "backup", "one", 10.0, 5.0)
    assert taken == JobLease("backup", "one", 10_000, 15.0)  # the time in ms
    assert decide(taken, "backup", "two", 14.9, 5.0) is None
    assert decide(taken, "backup", "one", 14.0, 5.0) == JobLease("backup", "one", 10_000, 19.0)
    assert decide(taken, "backup", "two", 15.0, 5.0) == JobLease("backup", "two", 15_000, 20.0)
    # A clock behind the last holder's still gives a higher token.
    assert decide(JobLease("backup", "one", 99_000, 1.0), "backup", "two", 2.0, 5.0) == JobLease(
        "backup", "two", 99_001, 7.0
    )


def test_a_restored_application_database_never_hands_out_a_token_below_a_later_fence(
    make_store: Callable[..., Store],
) -> None:
    """The metadata stores restored to a later point than the application database keep fences above its
    leases: the next lease, taken after the restore, is above them all the same."""
    app, snapshots, clock = make_store(fence_jobs=True), make_store(fence_jobs=True), Clock()
    before = JobLeases(app, "one", 10, clock).acquire("backup")
    assert before is not None
    with fenced("backup", before.token + 5):  # a later holder's fence, restored with the snapshot store
        snapshots.insert("snapshots", {"_id": "later"})
    clock.now += 60
    after = JobLeases(app, "restarted elsewhere", 10, clock).acquire("backup")
    assert after is not None and after.token > before.token + 5
    with fenced("backup", after.token):
        snapshots.insert("snapshots", {"_id": "after the restore"})


def test_a_second_server_waits_for_the_lease_then_takes_it_over(make_store: Callable[..., Store]) -> None:
    app, clock = make_store(fence_jobs=True), Clock()
    one, two = JobLeases(app, "one", 10, clock), JobLeases(app, "two", 10, clock)
    first = one.acquire("backup")
    assert first is not None
    assert two.acquire("backup") is None
    clock.now += 9
    assert two.acquire("backup") is None  # one's lease is still live
    assert one.acquire("backup") == JobLease("backup", "one", first.token, clock.now + 10)  # renewed
    clock.now += 10.5  # one went silent
    taken = two.acquire("backup")
    assert taken is not None and taken.token > first.token and taken.holder == "two"
    assert one.acquire("backup") is None
    assert {job: lease.holder for job, lease in one.holders().items()} == {"backup": "two"}


def test_a_graceful_stop_hands_the_lease_over_at_once(make_store: Callable[..., Store]) -> None:
    app, clock = make_store(fence_jobs=True), Clock()
    one, two = JobLeases(app, "one", 10, clock), JobLeases(app, "two", 10, clock)
    assert one.acquire("alerts") is not None
    one.release_all()
    taken = two.acquire("alerts")
    assert taken is not None and taken.holder == "two"


def test_the_former_holders_writes_are_refused_after_a_takeover(make_store: Callable[..., Store]) -> None:
    app, snapshots, clock = make_store(fence_jobs=True), make_store(fence_jobs=True), Clock()
    one, two = JobLeases(app, "one", 10, clock), JobLeases(app, "two", 10, clock)
    old = one.acquire("backup")
    assert old is not None
    with fenced("backup", old.token):
        snapshots.insert("snapshots", {"_id": "s1"})  # one, paused here (SIGSTOP) ...
    clock.now += 11
    new = two.acquire("backup")
    assert new is not None
    with fenced("backup", new.token):
        snapshots.insert("snapshots", {"_id": "s2"})  # ... while two took the job over
    with fenced("backup", old.token), pytest.raises(LeaseLost, match="another server holds its lease"):
        snapshots.insert("snapshots", {"_id": "s1-late"})  # ... and resumed
    assert snapshots.get("snapshots", "s1-late") is None
    assert snapshots.get("snapshots", "s2") is not None
    # Writes outside the job, and the job's writes to a database the new holder has not written yet, pass:
    # only a database that saw the higher token can tell, which is why every write of a job is fenced.
    snapshots.insert("snapshots", {"_id": "a request"})
    with fenced("backup", old.token):
        app.insert("outbox", {"_id": "late but first here"})
    with fenced("backup", new.token):
        app.insert("outbox", {"_id": "new holder"})
    with fenced("backup", old.token), pytest.raises(LeaseLost):
        app.insert("outbox", {"_id": "refused now"})


def test_servers_racing_for_a_free_lease_leave_one_holder(make_store: Callable[..., Store]) -> None:
    app = make_store(fence_jobs=True)
    servers = [JobLeases(app, f"s{i}", 10) for i in range(6)]
    barrier = threading.Barrier(len(servers))
    won: list[JobLease] = []

    def race(leases: JobLeases) -> None:
        barrier.wait()
        lease = leases.acquire("restoration")
        if lease is not None:
            won.append(lease)

    threads = [threading.Thread(target=race, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_a_store_that_is_not_shared_is_never_fenced(make_store: Callable[..., Store]) -> None:
    """A backup head mirrors its source's documents: a fenced job writing it must add nothing to them."""
    head = make_store()
    with fenced("backup", 5):
        head.insert("things", {"_id": "a"})
    with fenced("backup", 4):
        head.insert("things", {"_id": "b"})  # no fence to fail
    assert head.collections() == ["things"]

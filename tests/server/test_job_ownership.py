"""Periodic jobs on servers sharing the backing databases: each job runs on one server, a graceful stop hands
it over at once, and a run that outlived its lease cannot write once another server took the job over; real
servers on one PostgreSQL set show who holds what in ``/metrics`` and take over a killed server's jobs within
two lease periods; a ``daemon``-only server serves no API."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsmgr.server.jobs import Job, JobRunner
from opsmgr.store import Store
from opsmgr.store.job_leases import JobLeases, fenced
from tests.pgserver import PgServer
from tests.procs import STORE_KEYS, servers_sharing, wait_for

LEASE_S = 2.0


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}", fence_jobs=True)
    yield store
    store.close()


def test_each_job_runs_on_one_server_and_a_stop_hands_it_over(app: Store) -> None:
    runs = {"one": 0, "two": 0}

    def runner(name: str) -> JobRunner:
        def tick() -> None:
            runs[name] += 1

        return JobRunner([Job("backup", 0.01, tick)], JobLeases(app, name, 5.0))

    one, two = runner("one"), runner("two")
    one.start()
    wait_for(lambda: runs["one"] >= 3, 10, 0.01, what="the first server running the job")
    two.start()
    try:
        seen = runs["one"]
        wait_for(lambda: runs["one"] >= seen + 20, 10, 0.01, what="more runs on the holder")
        assert runs["two"] == 0
        assert [v["held"] for v in two.views()] == [False]
        one.stop()
        handed_over = time.monotonic()
        wait_for(lambda: runs["two"] >= 1, 10, 0.01, what="the other server taking the job over")
        assert time.monotonic() - handed_over < 5.0  # at once, not after the lease period
        assert 'opsmgr_job_held{job="backup"} 1' in two.metrics()
    finally:
        two.stop()


def test_a_run_that_outlived_its_lease_writes_nothing_after_the_takeover(app: Store) -> None:
    now = [1000.0]
    one, two = JobLeases(app, "one", 10, lambda: now[0]), JobLeases(app, "two", 10, lambda: now[0])
    paused, resumed = threading.Event(), threading.Event()

    def snapshot() -> None:
        app.insert("snapshots", {"_id": "begun"})
        paused.set()
        resumed.wait(10)  # the server is paused (SIGSTOP) here, past its lease
        app.insert("snapshots", {"_id": "finished late"})

    job = Job("backup", 1.0, snapshot)
    running = threading.Thread(target=JobRunner([job], one).turn, args=(job,))
    running.start()
    assert paused.wait(10)
    now[0] += 11
    taken = two.acquire("backup")
    assert taken is not None and taken.holder == "two"
    with fenced("backup", taken.token):
        app.insert("snapshots", {"_id": "by the new holder"})
    resumed.set()
    running.join(10)
    assert app.get("snapshots", "finished late") is None
    assert job.failures == 1 and "another server holds its lease" in (job.last_error or "")




@pytest.mark.e2e
@pytest.mark.postgres
def test_real_servers_share_the_jobs_and_take_over_a_killed_ones(tmp_path: Path, pg_server: PgServer) -> None:
    stores = {label: pg_server.create_database() for label in STORE_KEYS}
    extra = {"mms.server.jobLeaseSeconds": str(LEASE_S)}
    servers = servers_sharing(tmp_path, stores, ["one", "two", "daemon"], extra)
    assert servers[2].conf is not None
    with servers[2].conf.open("a") as conf:
        conf.write("mms.server.roles=daemon\n")
    try:
        for server in servers[:2]:
            server.start()
        jobs = {"backup", "restoration", "alert-webhook", "secondary-watch"}
        wait_for(lambda: jobs <= servers[0].held_jobs() | servers[1].held_jobs(), 30, what="every job held")
        assert not servers[0].held_jobs() & servers[1].held_jobs(), "a job held by two servers"
        holder, other = (
            (servers[0], servers[1]) if "backup" in servers[0].held_jobs() else (servers[1], servers[0])
        )
        assert holder.proc is not None
        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(10)
        killed = time.monotonic()
        wait_for(
            lambda: "backup" in other.held_jobs(), 4 * LEASE_S + 5, 0.1, what="the backup job taken over"
        )
        print(f"taken over {time.monotonic() - killed:.1f} s after the kill (lease {LEASE_S} s)")
        assert time.monotonic() - killed <= 2 * LEASE_S + 2.0  # two lease periods, plus a job interval
        daemon = servers[2].start()
        assert httpx.get(f"{daemon.url}/health/ready", timeout=10).status_code == 200
        refused = httpx.get(f"{daemon.url}/api/public/v1.0/groups", timeout=10)
        assert refused.status_code == 404, refused.text
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()

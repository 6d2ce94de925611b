"""MongoDB's periodic no-op writer in the simulated world (``sim.replication.primary_writes``): an idle
primary writes ``{op: "n", o: {msg: "periodic noop"}}`` at every tick of ``SimParams.noop_interval_s``, its
secondaries replicate it, it changes no document, and a primary that is busy, stopped or fsync-locked writes
none."""

from __future__ import annotations

import itertools
import math

import pytest

from opsmgr.drivers.base import OplogRecord
from opsmgr.errors import InvalidInput
from opsmgr.sim.model import SimParams
from tests.sim.cluster import Cluster, last_ts, make_cluster


def _noops(records: list[OplogRecord]) -> list[OplogRecord]:
    return [r for r in records if r.op == "n" and r.o == {"msg": "periodic noop"}]


def _ticks(t0: float, t1: float, interval: float) -> int:
    """The multiples of ``interval`` in ``(t0, t1]``."""
    return math.floor(t1 / interval) - math.floor(t0 / interval)


def _primary(c: Cluster) -> int:
    p = c.primary()
    assert p is not None
    return p


def test_an_idle_primary_writes_a_noop_every_interval_and_its_secondaries_replicate_it() -> None:
    c = make_cluster(3)
    p = _primary(c)
    c.world.write(c.set_id, "app.users", "i", {"_id": 1, "name": "ada"})
    c.run(10)  # the tick after a write writes nothing (the optime moved since the previous tick)
    docs_before = c.driver(p).dump(c.name(p))
    start_ts, t0 = last_ts(c, p), c.clock.now()
    c.run(45)
    entries = c.driver(p).oplog_read(c.name(p), start_ts)
    assert len(entries) == _ticks(t0, c.clock.now(), 10.0) >= 4
    assert entries == _noops(entries)
    assert all(r.ns == "" and r.o2 is None for r in entries)
    walls = [r.wall_ms for r in entries]
    assert all(w % 10_000 == 0 for w in walls)
    assert [b - a for a, b in itertools.pairwise(walls)] == [10_000] * (len(walls) - 1)
    for s in (i for i in range(3) if i != p):
        # The secondary wrote none of its own: its oplog after the start is exactly the primary's.
        assert c.driver(s).oplog_read(c.name(s), start_ts) == entries
        assert c.driver(s).dump(c.name(s)) == docs_before
    assert c.driver(p).dump(c.name(p)) == docs_before
    window = c.driver(p).oplog_window(c.name(p))
    assert window is not None and window.last_ts == entries[-1].ts


def test_a_busy_primary_writes_no_noop() -> None:
    c = make_cluster(3)
    p = _primary(c)
    c.set_load(rate=5)
    start_ts = last_ts(c, p)
    c.run(40)
    entries = c.driver(p).oplog_read(c.name(p), start_ts, limit=10_000)
    assert len(entries) >= 150
    assert _noops(entries) == []


def test_a_stopped_primary_writes_none_and_resumes_when_it_runs_again() -> None:
    c = make_cluster(1)
    c.run(20)
    stopped_ts, stopped_at = last_ts(c, 0), c.clock.now()
    c.world.stop(c.host(0), c.name(0), force=True)
    c.run(60)
    c.start(0)
    restarted_at = c.clock.now()
    c.run_until(lambda: c.primary() == 0)
    c.run(30)
    entries = c.driver(0).oplog_read(c.name(0), stopped_ts)
    assert _noops(entries) == entries and len(entries) >= 2
    # Nothing was written while it was down: the first entry after the stop comes after the restart.
    assert entries[0].wall_ms > restarted_at * 1000 > (stopped_at + 60) * 1000 - 1


def test_an_fsync_locked_primary_writes_no_noop() -> None:
    c = make_cluster(3)
    p = _primary(c)
    c.driver(p).fsync_lock(c.name(p))
    start_ts = last_ts(c, p)
    c.run(35)
    assert c.driver(p).oplog_read(c.name(p), start_ts) == []
    c.driver(p).fsync_unlock(c.name(p))
    c.run(10)
    assert len(_noops(c.driver(p).oplog_read(c.name(p), start_ts))) == 1


def test_the_interval_is_a_parameter_and_zero_turns_the_writer_off() -> None:
    fast = make_cluster(3, params=SimParams(noop_interval_s=2.0))
    p = _primary(fast)
    start_ts, t0 = last_ts(fast, p), fast.clock.now()
    fast.run(11)
    assert len(_noops(fast.driver(p).oplog_read(fast.name(p), start_ts))) == _ticks(t0, fast.clock.now(), 2.0)

    off = make_cluster(3, params=SimParams(noop_interval_s=0))
    p = _primary(off)
    start_ts = last_ts(off, p)
    off.run(60)
    assert off.driver(p).oplog_read(off.name(p), start_ts) == []


def test_a_long_idle_stretch_is_one_noop_per_interval_and_round_trips_params() -> None:
    c = make_cluster(3)
    p = _primary(c)
    c.run(10)  # past the tick that follows the initiation's entries
    start_ts, t0 = last_ts(c, p), c.clock.now()
    c.run(3600)
    entries = c.driver(p).oplog_read(c.name(p), start_ts, limit=1000)
    assert len(_noops(entries)) == len(entries) == _ticks(t0, c.clock.now(), 10.0)
    assert SimParams.from_json(SimParams(noop_interval_s=3.0).to_json()).noop_interval_s == 3.0
    with pytest.raises(InvalidInput):
        SimParams(noop_interval_s=-1)

"""Replication: the write load's documents, secondaries catching up (or left behind and resynced), a member
out of its set and back, fsync locks holding writes and applying."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from opsmgr.drivers.base import CommandConflict, MemberState, OplogRecord
from tests.sim.cluster import MAINTENANCE_PORT, Cluster, last_ts, make_cluster

Docs = dict[tuple[str, str], dict[str, Any]]


def keyed(docs: list[tuple[str, dict[str, Any]]]) -> Docs:
    return {(ns, json.dumps(d["_id"])): d for ns, d in docs}


def replay(state: Docs, records: list[OplogRecord]) -> Docs:
    out = dict(state)
    for r in records:
        if r.op in ("i", "u"):
            out[(r.ns, json.dumps(r.o["_id"]))] = r.o
        elif r.op == "d":
            out.pop((r.ns, json.dumps(r.o["_id"])), None)
    return out


def read_all(c: Cluster, i: int, after_ts: int) -> list[OplogRecord]:
    out: list[OplogRecord] = []
    while batch := c.driver(i).oplog_read(c.name(i), after_ts, limit=500):
        out += batch
        after_ts = batch[-1].ts
    return out


def test_write_load_makes_mongodb_shaped_entries_and_bounded_documents() -> None:
    c = make_cluster(3)
    c.set_load(rate=100, namespaces=("shop.orders", "shop.users"), keys=40, delete_ratio=0.2)
    start = last_ts(c, 0)
    c.run(20)
    records = read_all(c, 0, start)
    assert len(records) == pytest.approx(2000, abs=5)
    assert {r.op for r in records} == {"i", "u", "d"}
    assert all(a.ts < b.ts for a, b in itertools.pairwise(records))
    for r in records:
        assert abs((r.ts >> 32) - r.wall_ms // 1000) <= 1
        if r.op == "u":
            assert r.o2 == {"_id": r.o["_id"]}
    docs = c.driver(0).dump(c.name(0))
    per_ns = {ns: sum(1 for n, _ in docs if n == ns) for ns in ("shop.orders", "shop.users")}
    assert 0 < per_ns["shop.orders"] <= 40 and 0 < per_ns["shop.users"] <= 40
    assert {"_id", "n", "v", "at", "payload"} <= set(docs[0][1])


def test_snapshot_plus_oplog_replay_reproduces_every_later_state_document_for_document() -> None:
    c = make_cluster(3)
    c.set_load(rate=80, namespaces=("app.a", "app.b"), keys=60, delete_ratio=0.25)
    c.run(5)
    base_ts, base = last_ts(c, 1), keyed(c.driver(1).dump(c.name(1)))
    points = []
    for _ in range(4):
        c.run(3.3)
        points.append((last_ts(c, 1), keyed(c.driver(1).dump(c.name(1)))))
    records = read_all(c, 1, base_ts)
    for ts, expected in points:
        assert replay(base, [r for r in records if r.ts <= ts]) == expected
    # replaying a suffix twice changes nothing (idempotent entries)
    assert replay(replay(base, records), records) == points[-1][1]


def test_secondaries_hold_the_primarys_documents_once_caught_up() -> None:
    c = make_cluster(3)
    c.set_load(rate=100, keys=50)
    c.run(10)
    c.set_load(rate=0)
    c.run(1)
    dumps = [c.driver(i).dump(c.name(i)) for i in range(3)]
    assert dumps[0] == dumps[1] == dumps[2] and dumps[0]


def test_replication_lag_grows_while_stalled_and_closes_when_healed() -> None:
    c = make_cluster(3)
    c.set_load(rate=50)
    c.world.stall_replication(c.host(2), c.name(2), rate=10)
    c.run(20)
    lag = c.view().members[2].lag_s
    assert lag is not None and 12 <= lag <= 18, "applying 10 of 50 entries per second: 16 s behind after 20 s"
    assert c.view().members[1].lag_s == 0
    c.world.heal()
    c.run(2)
    assert c.view().members[2].lag_s == 0
    assert c.view().members[2].optime_ts == c.view().members[0].optime_ts


def test_a_member_left_behind_the_oplog_goes_recovering_and_resyncs_after_a_wipe() -> None:
    c = make_cluster(3, oplog_mb=0.05)
    c.set_load(rate=100)
    c.world.stall_replication(c.host(2), c.name(2), rate=0)
    c.run(40)
    assert c.state(2) is MemberState.RECOVERING
    c.world.heal()
    c.run(5)
    assert c.state(2) is MemberState.RECOVERING, "too stale stays too stale"
    c.driver(2).stop(c.name(2))
    c.world.wipe_data(c.host(2), c.name(2))
    c.start(2)
    c.run(0.5)
    assert c.state(2) is MemberState.STARTUP2
    c.run_until(lambda: c.state(2) is MemberState.SECONDARY, within_s=30)
    c.set_load(rate=0)
    c.run(1)
    assert c.driver(2).dump(c.name(2)) == c.driver(0).dump(c.name(0))


def test_a_member_restarted_standalone_is_down_for_the_set_and_catches_up_after() -> None:
    c = make_cluster(3)
    c.set_load(rate=50)
    c.run(2)
    before = c.driver(1).dump(c.name(1))
    c.driver(1).stop(c.name(1))
    c.start(1, standalone=True)
    seen = c.driver(1).observe(c.name(1))
    assert seen.port == MAINTENANCE_PORT and seen.mode is not None and seen.mode.value == "standalone"
    assert c.driver(1).rs_status(c.name(1)) is None
    c.run(30)
    assert c.state(1) is MemberState.DOWN
    status = c.driver(0).rs_status(c.name(0))
    assert status is not None and not status.members[1].health
    assert c.driver(1).dump(c.name(1)) == before != [], (
        "its data is still there, unchanged, in standalone mode"
    )
    c.driver(1).stop(c.name(1))
    c.start(1)
    c.run(2)
    assert c.state(1) is MemberState.SECONDARY
    assert c.view().members[1].lag_s == 0


def test_fsync_lock_blocks_writes_on_the_primary_and_applying_on_a_secondary() -> None:
    c = make_cluster(3)
    c.set_load(rate=50)
    c.run(1)
    c.driver(0).fsync_lock(c.name(0))
    writes = c.view().writes
    c.run(5)
    assert c.view().writes == writes
    c.driver(0).fsync_unlock(c.name(0))
    c.run(1)
    assert c.view().writes > writes
    c.driver(2).fsync_lock(c.name(2))
    c.run(5)
    assert (c.view().members[2].lag_s or 0) >= 4
    c.driver(2).fsync_unlock(c.name(2))
    c.run(1)
    assert c.view().members[2].lag_s == 0
    with pytest.raises(CommandConflict, match="not locked"):
        c.driver(2).fsync_unlock(c.name(2))

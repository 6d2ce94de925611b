"""The pure decisions of a sharded cluster's backup (``backup.sharded``): its parts from a config, the common
window of its parts (holes included), the point each cluster snapshot stands for, and a restore's per-part
progress."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from opsmgr.automation.clusters import sharded_cluster_id
from opsmgr.automation.templates import sharded_cluster_config
from opsmgr.backup.pitr import Range, restorable
from opsmgr.backup.sharded import (
    PartState,
    cluster_points,
    common_window,
    first_restorable,
    job_progress,
    part_progress,
    specs_of,
)

HOSTS = ["a.example.net", "b.example.net", "c.example.net"]


def test_a_configs_sharded_cluster_has_its_config_servers_then_its_shards_and_its_mongos() -> None:
    config = sharded_cluster_config(HOSTS, shards=2, name="c1", routers=2)
    (spec,) = specs_of("g1", config)
    assert spec.cluster_id == sharded_cluster_id("g1", "c1") and spec.name == "c1"
    assert [(p.replica_set, p.type_name, p.shard_name) for p in spec.parts] == [
        ("csrs", "CONFIG_SERVER_REPLICA_SET", None),
        ("sh0", "REPLICA_SET", "sh0"),
        ("sh1", "REPLICA_SET", "sh1"),
    ]
    assert spec.mongos == ("mongos_0", "mongos_1")
    assert spec.parts[0].config_server and not spec.parts[1].config_server
    assert spec.part("sh1") is spec.parts[2] and spec.part("nope") is None
    # A replica set of its own is no sharded cluster.
    assert specs_of("g1", {"processes": [], "replicaSets": [{"_id": "rs0", "members": []}]}) == []


def test_the_common_window_is_where_every_part_can_be_restored_holes_included() -> None:
    config = [Range(10, 50), Range(70, 100)]  # a hole 51..69
    shard0 = [Range(20, 90)]
    shard1 = [Range(0, 40), Range(45, 95)]  # a hole 41..44
    assert common_window([config, shard0, shard1]) == [Range(20, 40), Range(45, 50), Range(70, 90)]
    # A part with nothing restorable leaves nothing to the cluster; no parts, nothing either.
    assert common_window([config, []]) == []
    assert common_window([]) == []
    assert common_window([config]) == config


@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=5),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 240),
)
def test_a_point_is_in_the_common_window_exactly_when_every_part_can_restore_it(
    parts: list[list[tuple[int, int]]], point: int
) -> None:
    windows = [sorted({Range(a, a + n) for a, n in part}) for part in parts]
    assert restorable(common_window(windows), point) == all(restorable(w, point) for w in windows)


def test_the_first_restorable_point_at_or_after_a_position() -> None:
    window = [Range(10, 20), Range(30, 40)]
    assert first_restorable(window, 5) == 10
    assert first_restorable(window, 15) == 15
    assert first_restorable(window, 25) == 30  # across a hole: the next range's start
    assert first_restorable(window, 41) is None


def test_each_config_server_snapshot_stands_for_the_first_common_point_before_the_next_one() -> None:
    window = [Range(12, 30), Range(60, 80)]
    # 10: the shards reach 12 first; 25: itself; 40: the next common point (60) is past the next anchor
    # (50), so that snapshot stands for nothing; 50: 60; 90: not reached yet by every part.
    assert cluster_points([10, 25, 40, 50, 90], window) == [12, 25, None, 60, None]
    assert cluster_points([], window) == []


def test_a_restore_jobs_parts_progress_by_their_processes() -> None:
    parts = {"csrs": ["c0", "c1"], "sh0": ["s0", "s1"], "sh1": ["t0", "t1"]}
    shown = part_progress(
        parts, pending=["c1", "s0", "s1", "t0", "t1"], loading=["c1", "s0"], job_state="RUNNING"
    )
    assert [(p.replica_set, p.state, p.done, p.total) for p in shown] == [
        ("csrs", PartState.RUNNING, 1, 2),
        ("sh0", PartState.RUNNING, 0, 2),  # begun: a member is loading
        ("sh1", PartState.QUEUED, 0, 2),
    ]
    assert [p.fraction for p in shown] == [0.5, 0.0, 0.0]
    done = part_progress(parts, pending=["t1"], loading=[], job_state="RUNNING")
    assert [p.state for p in done] == [PartState.FINISHED, PartState.FINISHED, PartState.RUNNING]
    failed = part_progress(parts, pending=["t1"], loading=[], job_state="FAILED")
    assert [p.state for p in failed] == [PartState.FINISHED, PartState.FINISHED, PartState.FAILED]
    cancelled = part_progress(parts, pending=list(parts["sh1"]), loading=[], job_state="CANCELLED")
    assert cancelled[2].state is PartState.CANCELLED and cancelled[0].state is PartState.FINISHED


def test_a_downloads_parts_progress_by_their_documents_read_and_the_jobs_by_its_parts() -> None:
    parts: dict[str, list[str]] = {"csrs": [], "sh0": [], "sh1": []}
    shown = part_progress(parts, [], [], "QUEUED", {"csrs": 1.0, "sh0": 0.5})
    assert [(p.state, p.fraction) for p in shown] == [
        (PartState.FINISHED, 1.0),
        (PartState.RUNNING, 0.5),
        (PartState.QUEUED, 0.0),
    ]
    total = job_progress([{"progress": p.to_json()} for p in shown])
    assert total == {"fraction": 0.5, "message": "1 of 3 parts restored"}
    assert job_progress([]) == {"fraction": 0.0, "message": "0 of 0 parts restored"}


def test_progress_never_goes_back_as_processes_finish() -> None:
    rng = random.Random(17)
    names = [f"p{i}" for i in range(9)]
    parts = {"csrs": names[:3], "sh0": names[3:6], "sh1": names[6:]}
    pending = list(names)
    last = 0.0
    while pending:
        pending.remove(rng.choice(pending))
        now = job_progress([{"progress": p.to_json()} for p in part_progress(parts, pending, [], "RUNNING")])
        assert now["fraction"] >= last
        last = now["fraction"]
    assert last == 1.0

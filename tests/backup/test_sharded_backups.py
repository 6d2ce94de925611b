"""backup.sharded_backups over a real daemon (no processes): a sharded cluster backed up as its parts, its
window the intersection of theirs (holes included), its snapshots each standing for one point every part is
restored to, and restore plans that give each part exactly the documents written up to that point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opsmgr.automation.templates import sharded_cluster_config
from opsmgr.backup.clusters import BackupStatus, Clusters
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.backup.errors import OutsideWindow, SnapshotBlocksMissing
from opsmgr.backup.pitr import Range
from opsmgr.backup.sharded import PartSpec, ShardedSpec, specs_of
from opsmgr.backup.sharded_backups import ShardedBackups
from opsmgr.errors import Conflict, NotFound
from tests.backup.backuptest import Stores

GROUP = "g" * 24
HOSTS = ["a.example.net", "b.example.net", "c.example.net"]
T0 = 1_700_000_000


def pos(second: int, inc: int = 1) -> int:
    return ((T0 + second) << 32) | inc


class PartAgent:
    """Ships one part: an initial sync, then one slice per write (or an empty one up to a quiet second)."""

    def __init__(self, daemon: BackupDaemon, source_id: str) -> None:
        self.daemon = daemon
        self.source_id = source_id
        self.acked = 0

    def sync(self, second: int, docs: list[tuple[str, dict[str, Any]]]) -> None:
        self.acked = (
            self.daemon.initial_sync(self.source_id, pos(second), docs, pos(second)).acknowledged or 0
        )

    def write(self, second: int, doc_id: str) -> None:
        entry = {"ts": pos(second), "op": "i", "ns": "app.users", "o": {"_id": doc_id}}
        self.acked = (
            self.daemon.ingest_slice(self.source_id, self.acked, pos(second), [entry]).acknowledged or 0
        )

    def quiet(self, second: int) -> None:
        self.acked = self.daemon.ingest_slice(self.source_id, self.acked, pos(second), []).acknowledged or 0


class Cluster:
    def __init__(self, daemon: BackupDaemon, stores: Stores) -> None:
        self.daemon = daemon
        self.clusters = Clusters(stores.app, daemon)
        (self.spec,) = specs_of(GROUP, sharded_cluster_config(HOSTS, shards=2))
        self.clusters.ensure_sharded(GROUP, [self.spec])
        self.sharded = ShardedBackups(self.clusters, daemon)
        self.cid = self.spec.cluster_id
        assert self.clusters.set_status(GROUP, self.cid, "STARTED") is BackupStatus.STARTED
        by_name = {s.name: s for s in daemon.sources(GROUP, self.cid)}
        self.agents = {name: PartAgent(daemon, src.id) for name, src in by_name.items()}

    def snapshot_all(self) -> None:
        for agent in self.agents.values():
            self.daemon.take_snapshot(agent.source_id)

    def restored(self, fields: dict[str, Any]) -> dict[str, set[str]]:
        return {
            part.spec.replica_set: {doc["_id"] for _, doc in self.daemon.restore_documents(plan)}
            for part, plan in self.sharded.plans(GROUP, self.cid, fields)
        }


@pytest.fixture
def cluster(make_daemon: Callable[..., BackupDaemon], stores: Stores) -> Cluster:
    return Cluster(make_daemon(), stores)


def test_starting_a_sharded_clusters_backup_backs_up_each_part_and_never_a_part_alone(
    cluster: Cluster,
) -> None:
    assert set(cluster.agents) == {"csrs", "sh0", "sh1"}
    started = cluster.clusters.started_sources(GROUP)
    assert {(s.cluster_id, s.name) for s in started} == {(cluster.cid, n) for n in ("csrs", "sh0", "sh1")}
    part_ids = cluster.clusters.part_ids(GROUP, cluster.spec)
    with pytest.raises(Conflict) as refused:
        cluster.clusters.set_status(GROUP, part_ids["sh0"], "STARTED")
    assert cluster.cid in refused.value.detail and "sh0" in refused.value.detail
    assert cluster.clusters.name(GROUP, cluster.cid) == "c1"
    # Another project does not see the cluster; a forged id is no cluster.
    with pytest.raises(NotFound):
        cluster.clusters.check("h" * 24, cluster.cid)
    with pytest.raises(NotFound):
        cluster.sharded.parts(GROUP, "0" * 24)
    # Terminated: every part's source is gone.
    cluster.clusters.set_status(GROUP, cluster.cid, "TERMINATING")
    assert cluster.daemon.sources(GROUP, cluster.cid) == []


def test_the_cluster_window_is_the_intersection_of_its_parts_holes_included(cluster: Cluster) -> None:
    a = cluster.agents
    for agent in a.values():
        agent.sync(0, [])
    cluster.snapshot_all()
    a["csrs"].quiet(100)
    a["sh0"].write(50, "x")
    a["sh0"].quiet(80)
    a["sh1"].quiet(100)
    parts = cluster.sharded.parts(GROUP, cluster.cid)
    assert cluster.sharded.window(parts) == [Range(pos(0), pos(80))]
    # sh1 loses its oplog after 100 (a gap) and is synced anew at 120: a hole in sh1 is a hole of the cluster.
    a["sh0"].quiet(200)
    cluster.daemon.report_gap(a["sh1"].source_id, None)
    a["sh1"].sync(120, [])
    cluster.daemon.take_snapshot(a["sh1"].source_id)
    a["sh1"].quiet(200)
    a["csrs"].quiet(200)
    assert cluster.sharded.window(parts) == [Range(pos(0), pos(100)), Range(pos(120), pos(200))]
    with pytest.raises(OutsideWindow) as outside:
        cluster.sharded.plans(GROUP, cluster.cid, {"oplogTs": T0 + 110, "oplogInc": 1})
    assert len(outside.value.ranges) == 2 and "sharded cluster" in outside.value.detail


def test_each_part_is_restored_to_the_one_point_with_exactly_the_documents_written_up_to_it(
    cluster: Cluster,
) -> None:
    a = cluster.agents
    a["csrs"].sync(0, [("config.chunks", {"_id": "c-initial"})])
    a["sh0"].sync(2, [("app.users", {"_id": "s0-initial"})])
    a["sh1"].sync(4, [("app.users", {"_id": "s1-initial"})])
    cluster.snapshot_all()  # at 0, 2 and 4: no single instant
    for second, (part, doc) in enumerate(
        [("sh0", "u1"), ("sh1", "u2"), ("csrs", "chunk-moved"), ("sh1", "u3"), ("sh0", "u4")], start=10
    ):
        a[part].write(second, doc)
    for agent in a.values():
        agent.quiet(20)

    (snap,) = cluster.sharded.snapshots(GROUP, cluster.cid)
    # The config server's snapshot (at 0) stands for the first point every part reaches: sh1's sync at 4.
    assert snap.point == pos(4) and snap.id == snap.anchor["id"]
    shown = cluster.sharded.snapshots_json(GROUP, cluster.cid)[0]
    assert shown["complete"] and shown["lastOplogAppliedTimestamp"]["time"] == T0 + 4
    assert [(p["replicaSetName"], p["typeName"]) for p in shown["parts"]] == [
        ("csrs", "CONFIG_SERVER_REPLICA_SET"),
        ("sh0", "REPLICA_SET"),
        ("sh1", "REPLICA_SET"),
    ]
    part_ids = cluster.clusters.part_ids(GROUP, cluster.spec)
    assert [p["clusterId"] for p in shown["parts"]] == [part_ids[n] for n in ("csrs", "sh0", "sh1")]
    assert all(p["snapshotId"] for p in shown["parts"]) and shown["parts"][1]["shardName"] == "sh0"

    assert cluster.restored({"snapshotId": snap.id}) == {
        "csrs": {"c-initial"},
        "sh0": {"s0-initial"},
        "sh1": {"s1-initial"},
    }
    # To 11 (inclusive): u1 and u2; not the chunk moved at 12 nor anything later.
    assert cluster.restored({"oplogTs": T0 + 11, "oplogInc": 1}) == {
        "csrs": {"c-initial"},
        "sh0": {"s0-initial", "u1"},
        "sh1": {"s1-initial", "u2"},
    }
    assert cluster.restored({"oplogTs": T0 + 14, "oplogInc": 1}) == {
        "csrs": {"c-initial", "chunk-moved"},
        "sh0": {"s0-initial", "u1", "u4"},
        "sh1": {"s1-initial", "u2", "u3"},
    }
    # Before sh1's first snapshot no point is common to every part.
    with pytest.raises(OutsideWindow):
        cluster.sharded.plans(GROUP, cluster.cid, {"oplogTs": T0 + 3, "oplogInc": 1})
    with pytest.raises(SnapshotBlocksMissing):
        cluster.sharded.plans(GROUP, cluster.cid, {"snapshotId": "0" * 24})


def test_a_snapshot_the_other_parts_have_not_reached_yet_is_not_complete(cluster: Cluster) -> None:
    a = cluster.agents
    for agent in a.values():
        agent.sync(0, [])
    cluster.snapshot_all()
    a["csrs"].quiet(30)
    a["sh0"].quiet(30)
    cluster.daemon.take_snapshot(a["csrs"].source_id)  # at 30: sh1 has shipped nothing past 0
    newest, oldest = cluster.sharded.snapshots(GROUP, cluster.cid)
    assert newest.point is None and oldest.point == pos(0)
    assert not cluster.sharded.snapshots_json(GROUP, cluster.cid)[0]["complete"]
    with pytest.raises(Conflict):
        cluster.sharded.plans(GROUP, cluster.cid, {"snapshotId": newest.id})
    a["sh1"].quiet(40)
    assert cluster.sharded.snapshots(GROUP, cluster.cid)[0].point == pos(30)


def test_a_shard_added_to_a_cluster_backed_up_is_backed_up_and_the_window_waits_for_it(
    cluster: Cluster,
) -> None:
    for agent in cluster.agents.values():
        agent.sync(0, [])
    cluster.snapshot_all()
    for agent in cluster.agents.values():
        agent.quiet(50)
    parts = cluster.sharded.parts(GROUP, cluster.cid)
    assert cluster.sharded.window(parts) == [Range(pos(0), pos(50))]
    (grown,) = specs_of(GROUP, sharded_cluster_config(HOSTS, shards=3))
    assert grown.cluster_id == cluster.cid
    cluster.clusters.ensure_sharded(GROUP, [grown])
    started = {s.name for s in cluster.clusters.started_sources(GROUP)}
    assert started == {"csrs", "sh0", "sh1", "sh2"}, "the new shard's agents ship it from now on"
    parts = cluster.sharded.parts(GROUP, cluster.cid)
    assert [p.spec.replica_set for p in parts] == ["csrs", "sh0", "sh1", "sh2"]
    assert cluster.sharded.window(parts) == [], "nothing restorable without the new shard's data"
    sh2 = PartAgent(cluster.daemon, parts[3].source.id)
    sh2.sync(40, [])
    cluster.daemon.take_snapshot(sh2.source_id)
    sh2.quiet(50)
    assert cluster.sharded.window(parts) == [Range(pos(40), pos(50))]


def test_a_recorded_cluster_without_config_servers_lists_no_snapshots(
    make_daemon: Callable[..., BackupDaemon], stores: Stores
) -> None:
    """A stored record no validated config makes (every sharded cluster has its config server set)."""
    daemon = make_daemon()
    clusters = Clusters(stores.app, daemon)
    spec = ShardedSpec("f" * 24, "odd", (PartSpec("sh0", "REPLICA_SET", "sh0"),))
    clusters.ensure_sharded(GROUP, [spec])
    clusters.set_status(GROUP, spec.cluster_id, "STARTED")
    agent = PartAgent(daemon, daemon.sources(GROUP, spec.cluster_id)[0].id)
    agent.sync(0, [])
    daemon.take_snapshot(agent.source_id)
    assert ShardedBackups(clusters, daemon).snapshots(GROUP, spec.cluster_id) == []

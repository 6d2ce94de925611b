"""A sharded cluster's backup as the API shows it and restores use it: its parts (one daemon source each), its
point-in-time window (the intersection of theirs), its cluster snapshots (each named by a config server
snapshot, listing every part) and the plans that restore every part to one point. The decisions are
``backup.sharded``'s; this module reads the daemon's metadata for them.

A shard added to a cluster whose backup is STARTED is backed up from the config write that adds it (the
server's ``Deployments`` records the cluster then: ``Clusters.ensure_sharded``); the cluster's window is
what every current part can restore, so it starts again at that part's first snapshot (a restore without
the part would lose its documents). A source of a replica set no longer in the config (a removed shard) is
left out of the window and of restores.

May import ``opsmgr.errors`` and ``opsmgr.backup``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsmgr.backup import pitr
from opsmgr.backup.clusters import Clusters
from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.errors import OutsideWindow, SnapshotBlocksMissing
from opsmgr.backup.pitr import Range, Target
from opsmgr.backup.positions import PositionKind, timestamp_json
from opsmgr.backup.restore import ResolvedRestore
from opsmgr.backup.sharded import PartSpec, ShardedSpec, cluster_points, common_window
from opsmgr.errors import Conflict, NotFound

KIND = PositionKind.BSON  # every part is a MongoDB replica set


@dataclass(frozen=True)
class Part:
    spec: PartSpec
    source: Source
    cluster_id: str  # the part's own replica-set cluster id


@dataclass(frozen=True)
class ClusterSnapshot:
    """A config server snapshot and the point the cluster is restored to from it (None: not yet restorable
    by every part), with the snapshot each part starts from (None: none reaches the point)."""

    anchor: dict[str, Any]  # the config server part's snapshot, in the API's shape
    point: int | None
    parts: list[tuple[Part, dict[str, Any] | None]]

    @property
    def id(self) -> str:
        return str(self.anchor["id"])


class ShardedBackups:
    def __init__(self, clusters: Clusters, daemon: BackupDaemon) -> None:
        self.clusters = clusters
        self.daemon = daemon

    def spec(self, group_id: str, cluster_id: str) -> ShardedSpec | None:
        return self.clusters.sharded(group_id, cluster_id)

    def parts(self, group_id: str, cluster_id: str) -> list[Part]:
        """The cluster's parts in its config's order, each with its source (404 when it is not backed up)."""
        spec = self.clusters.sharded(group_id, cluster_id)
        if spec is None:
            raise NotFound(f"cluster {cluster_id} is not a sharded cluster", clusterId=cluster_id)
        sources = {s.name: s for s in self.clusters.sources(group_id, cluster_id)}
        ids = self.clusters.part_ids(group_id, spec)
        missing = [p.replica_set for p in spec.parts if p.replica_set not in sources]
        if missing:
            raise NotFound(
                f"the parts {missing} of cluster {spec.name} are not backed up: start its backup again",
                clusterId=cluster_id,
            )
        return [Part(p, sources[p.replica_set], ids[p.replica_set]) for p in spec.parts]

    # The window.

    def window(self, parts: list[Part]) -> list[Range]:
        return common_window([self.daemon.pitr_window(p.source.id) for p in parts])

    def window_json(self, group_id: str, cluster_id: str) -> list[dict[str, Any]]:
        return pitr.window_json(KIND, self.window(self.parts(group_id, cluster_id)))

    # Cluster snapshots.

    def snapshots(self, group_id: str, cluster_id: str) -> list[ClusterSnapshot]:
        """The cluster's snapshots, newest first: one per snapshot of its config server part (none without
        one, as a config validated by automation never is)."""
        parts = self.parts(group_id, cluster_id)
        config = next((p for p in parts if p.spec.config_server), None)
        if config is None:
            return []
        window = self.window(parts)
        anchors = sorted(self.daemon.snapshots_json(config.source.id), key=_position)
        points = cluster_points([_position(a) for a in anchors], window)
        choosers = {p.source.id: self.daemon.restores.snapshot_chooser(p.source.id) for p in parts}
        # Read after the choosers: a snapshot committed meanwhile is listed, so what they choose is found.
        listed = {p.source.id: {s["id"]: s for s in self.daemon.snapshots_json(p.source.id)} for p in parts}
        out = []
        for anchor, point in zip(anchors, points, strict=True):
            chosen: list[tuple[Part, dict[str, Any] | None]] = []
            for p in parts:
                sid = None if point is None else choosers[p.source.id](point)
                chosen.append((p, None if sid is None else listed[p.source.id].get(sid)))
            out.append(ClusterSnapshot(anchor, point, chosen))
        return sorted(out, key=lambda c: -_position(c.anchor))

    def snapshots_json(self, group_id: str, cluster_id: str) -> list[dict[str, Any]]:
        return [snapshot_json(group_id, cluster_id, s) for s in self.snapshots(group_id, cluster_id)]

    # Any cluster.

    def listing(self, group_id: str, cluster_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A cluster's snapshots (newest first) and point-in-time window in the API's shapes, whatever its
        kind (404 for a cluster the project does not have or does not back up)."""
        if self.spec(group_id, cluster_id) is None:
            src = self.clusters.source(group_id, cluster_id)
            return self.daemon.snapshots_json(src.id), self.daemon.window_json(src.id)
        return self.snapshots_json(group_id, cluster_id), self.window_json(group_id, cluster_id)

    def restore_plans(
        self, group_id: str, cluster_id: str, fields: Mapping[str, Any]
    ) -> list[tuple[Part | None, ResolvedRestore]]:
        """The plans a restore job of the cluster would carry out, whatever its kind: a replica set's one (its
        part None), or every part's to one point (:meth:`plans`); the refusals are the job's."""
        if self.spec(group_id, cluster_id) is None:
            return [(None, self.daemon.cluster_restore_plans(group_id, cluster_id, dict(fields))[0])]
        return [(part, resolved) for part, resolved in self.plans(group_id, cluster_id, fields)]

    def set_schedule(self, group_id: str, cluster_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The cluster's snapshot schedule changed: every source's (a sharded cluster's parts keep one)."""
        shown = {}
        for src in self.clusters.sources(group_id, cluster_id):
            shown = self.daemon.set_schedule(src.id, fields).to_json()
        return shown

    # Restores.

    def plans(
        self, group_id: str, cluster_id: str, fields: Mapping[str, Any]
    ) -> list[tuple[Part, ResolvedRestore]]:
        """Every part's plan to the one point a restore job names: a cluster snapshot's point, or a point in
        time inside the cluster's window (400 outside it, naming the cluster's ranges; 409 when a part's
        blocks are missing)."""
        parts = self.parts(group_id, cluster_id)
        target = pitr.parse_target(KIND, dict(fields))
        if target.snapshot_id is not None:
            position = self._snapshot_point(group_id, cluster_id, target.snapshot_id)
        else:
            assert target.position is not None
            position = target.position
            window = self.window(parts)
            if not pitr.restorable(window, position):
                shown = pitr.window_json(KIND, window)
                listing = "; ".join(f"{r['start']['date']} to {r['end']['date']}" for r in shown) or "none"
                raise OutsideWindow(
                    f"{target.label} is outside the sharded cluster's point-in-time restore window (where "
                    f"every shard and the config servers can be restored to one point): {listing}",
                    shown,
                    target.field,
                )
        at = Target(position=position, label=target.label, field=target.field)
        return [(p, self.daemon.restore_plan(p.source.id, at)) for p in parts]

    def _snapshot_point(self, group_id: str, cluster_id: str, snapshot_id: str) -> int:
        found = next((s for s in self.snapshots(group_id, cluster_id) if s.id == snapshot_id), None)
        if found is None:
            raise SnapshotBlocksMissing(
                f"snapshot {snapshot_id} is not a snapshot of cluster {cluster_id}", snapshotId=snapshot_id
            )
        if found.point is None:
            raise Conflict(
                f"snapshot {snapshot_id} is not complete: the oplog of every part has not yet reached the "
                "point it stands for",
                snapshotId=snapshot_id,
            )
        return found.point


def _position(snapshot: Mapping[str, Any]) -> int:
    ts = snapshot["lastOplogAppliedTimestamp"]
    return (int(ts["time"]) << 32) | int(ts["increment"])


def snapshot_json(group_id: str, cluster_id: str, snap: ClusterSnapshot) -> dict[str, Any]:
    """A cluster snapshot in the shape of Ops Manager's snapshots of a sharded cluster: ``parts`` one per
    shard and config server set (each its replica set's cluster id, name and type, and the snapshot it is
    restored from), ``lastOplogAppliedTimestamp`` the one point every part is restored to."""
    parts = []
    for part, chosen in snap.parts:
        shown = dict(chosen["parts"][0]) if chosen is not None else {"dataSizeBytes": 0}
        shown |= part.spec.to_json() | {"clusterId": part.cluster_id}
        shown["snapshotId"] = None if chosen is None else chosen["id"]
        shown["lastOplogAppliedTimestamp"] = None if chosen is None else chosen["lastOplogAppliedTimestamp"]
        parts.append(shown)
    complete = snap.point is not None and all(chosen is not None for _, chosen in snap.parts)
    return {
        "id": snap.id,
        "groupId": group_id,
        "clusterId": cluster_id,
        "complete": complete,
        "created": snap.anchor["created"],
        "expires": snap.anchor["expires"],
        "doNotDelete": False,
        "lastOplogAppliedTimestamp": None if snap.point is None else timestamp_json(KIND, snap.point),
        "snapshotType": snap.anchor["snapshotType"],
        "parts": parts,
    }

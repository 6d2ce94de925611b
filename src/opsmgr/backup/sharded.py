"""The decisions of a sharded cluster's backup, pure: what its parts are, when all of them can be restored to
one point, which point a cluster snapshot stands for, and how far a restore of every part has come.

A sharded cluster is backed up as **parts** (each shard's replica set and the config server replica set), one
daemon source each, as the three backing stores of a backing-databases deployment are. The parts are never
snapshotted at the same instant; as Percona Backup for MongoDB does, the cluster is made consistent by
restoring **every part to the same point** (a cluster time: an oplog position, comparable across the parts
because MongoDB's cluster time orders every shard's oplog). So:

- the cluster's point-in-time window is the intersection of its parts' windows, holes included
  (:func:`common_window`): a point is restorable when every part has a snapshot at or before it and an
  unbroken oplog from there up to it;
- a **cluster snapshot** is named by a snapshot of the config server part (the chunk map's holder) and stands
  for the first common restorable point at or after it (:func:`cluster_points`), before the config server's
  next snapshot; until the other parts' oplogs reach that point it is listed ``complete: false``;
- a restore of the cluster plans each part to that one point, and its progress is its parts'
  (:func:`part_progress`).

May import ``opsmgr.backup.pitr`` and ``opsmgr.automation.clusters`` (the parts of the config's sharded
clusters, in Ops Manager's shapes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opsmgr.automation.clusters import ClusterType, Layout, sharded_cluster_id
from opsmgr.backup.pitr import Range, intersect


@dataclass(frozen=True)
class PartSpec:
    """One replica set of a sharded cluster: a shard (``shard_name`` its ``_id``) or its config servers."""

    replica_set: str
    type_name: str  # Ops Manager's: REPLICA_SET for a shard, CONFIG_SERVER_REPLICA_SET
    shard_name: str | None = None

    @property
    def config_server(self) -> bool:
        return self.type_name == ClusterType.CONFIG_SERVER_REPLICA_SET.value

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replicaSetName": self.replica_set, "typeName": self.type_name}
        if self.shard_name is not None:
            out["shardName"] = self.shard_name
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PartSpec:
        return cls(str(doc["replicaSetName"]), str(doc["typeName"]), doc.get("shardName"))


@dataclass(frozen=True)
class ShardedSpec:
    """A sharded cluster of a project's goal config: its stable id, name, parts (config servers first) and the
    names of its mongos processes."""

    cluster_id: str
    name: str
    parts: tuple[PartSpec, ...]
    mongos: tuple[str, ...] = ()

    def part(self, replica_set: str) -> PartSpec | None:
        return next((p for p in self.parts if p.replica_set == replica_set), None)


def specs_of(group_id: str, config: Mapping[str, Any]) -> list[ShardedSpec]:
    """The sharded clusters of a goal config, each with its parts: the config server set, then the shards in
    the config's order."""
    layout = Layout.of(config)
    out = []
    for name in layout.sharded:
        mine = [(rs, part) for rs, part in layout.parts.items() if part.cluster == name]
        parts = [
            PartSpec(rs, ClusterType.CONFIG_SERVER_REPLICA_SET.value) for rs, p in mine if p.config_server
        ] + [PartSpec(rs, ClusterType.REPLICA_SET.value, p.shard) for rs, p in mine if not p.config_server]
        mongos = tuple(sorted(proc for proc, cluster in layout.mongos.items() if cluster == name))
        out.append(ShardedSpec(sharded_cluster_id(group_id, name), name, tuple(parts), mongos))
    return out


# Windows and points.


def common_window(windows: Sequence[Sequence[Range]]) -> list[Range]:
    """The positions restorable in every part: the intersection of the parts' windows, holes included (a
    hole of any part is a hole of the cluster). No parts: nothing is restorable."""
    pairs = [[(r.start, r.end) for r in w] for w in windows]
    return [Range(a, b) for a, b in sorted(intersect(pairs))]


def first_restorable(window: Sequence[Range], at_or_after: int) -> int | None:
    """The first position of ``window`` at or after ``at_or_after`` (None: there is none yet)."""
    for r in sorted(window):
        if r.end >= at_or_after:
            return max(r.start, at_or_after)
    return None


def cluster_points(anchors: Sequence[int], window: Sequence[Range]) -> list[int | None]:
    """For each snapshot position of the config server part (sorted ascending), the point its cluster snapshot
    stands for: the first common restorable position at or after it, provided it comes before the next
    anchor's (else that snapshot has no cluster snapshot of its own: None)."""
    out: list[int | None] = []
    for i, anchor in enumerate(anchors):
        point = first_restorable(window, anchor)
        following = anchors[i + 1] if i + 1 < len(anchors) else None
        out.append(None if point is None or (following is not None and point >= following) else point)
    return out


# A restore job's parts.


class PartState(StrEnum):
    QUEUED = "QUEUED"  # nothing of the part loaded or downloaded yet
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class PartProgress:
    replica_set: str
    state: PartState
    done: int
    total: int
    fraction: float

    def to_json(self) -> dict[str, Any]:
        return {
            "replicaSetName": self.replica_set,
            "statusName": self.state.value,
            "processesRestored": self.done,
            "processes": self.total,
            "fraction": round(self.fraction, 4),
        }


def part_progress(
    parts: Mapping[str, Sequence[str]],
    pending: Sequence[str],
    loading: Sequence[str],
    job_state: str,
    downloads: Mapping[str, float] | None = None,
) -> list[PartProgress]:
    """Each part's progress from the job's processes (``parts``: each part's target processes; ``pending``
    those not loaded yet, ``loading`` those begun) and the job's state; a part without processes (a download)
    goes by ``downloads``, the fraction of its documents read."""
    out = []
    waiting = set(pending)
    begun = set(loading)
    for rs, names in parts.items():
        total = len(names)
        done = sum(1 for n in names if n not in waiting)
        if total:
            fraction = done / total
            started = done > 0 or any(n in begun for n in names)
        else:
            fraction = (downloads or {}).get(rs, 0.0)
            started = fraction > 0
        out.append(PartProgress(rs, _part_state(job_state, fraction >= 1.0, started), done, total, fraction))
    return out


def _part_state(job_state: str, complete: bool, started: bool) -> PartState:
    if complete or job_state == "FINISHED":
        return PartState.FINISHED
    if job_state in ("FAILED", "CANCELLED"):
        return PartState(job_state)
    return PartState.RUNNING if started else PartState.QUEUED


def job_progress(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A job's progress from its parts' (``{"progress": PartProgress.to_json()}`` each): every part weighs
    the same, and the message counts the parts restored."""
    fractions = [float(p["progress"]["fraction"]) for p in parts]
    done = sum(1 for p in parts if p["progress"]["statusName"] == PartState.FINISHED.value)
    return {
        "fraction": round(sum(fractions) / len(fractions), 4) if fractions else 0.0,
        "message": f"{done} of {len(parts)} parts restored",
    }

"""Backed-up clusters and their backup configurations, as Ops Manager's public API shows them.

Owns three collections of the application database: ``backup_clusters`` (a stable cluster id per project
and replica set name, created on first sight; a deployment of a primary's backing databases is a cluster of
kind ``BACKING_DATABASES`` with the ``hostname`` that ships it), ``backup_sharded_clusters`` (a sharded
cluster of a project's config as last seen: its stable id, name, parts and mongos, ``backup.sharded``; kept
apart so that a replica set and a sharded cluster of the same name never meet) and ``backup_configs`` (a
cluster's ``statusName``). The backup work itself is the daemon's: a cluster whose backup is STARTED has one
daemon source per database (a replica set's one, each part of a sharded cluster, or the three backing
stores); a replica set that is a part of a sharded cluster is backed up with its cluster, never alone.
May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup`` and ``opsmgr.automation.protocol`` (the
change agents' work announces).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.backup.sharded import PartSpec, ShardedSpec
from opsmgr.backup.store_restore import StoreName
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store.engine import Store, Txn, new_id

CLUSTERS = "backup_clusters"
CONFIGS = "backup_configs"
SHARDED = "backup_sharded_clusters"
BACKING_KIND = "BACKING_DATABASES"
DEFAULT_BACKING_NAME = "backing-databases"


class BackupStatus(StrEnum):
    """A cluster's ``statusName``, as Ops Manager names them: INACTIVE until its backup is first started and
    again once terminated; STOPPED keeps its snapshots. TERMINATING is asked for and ends at once."""

    INACTIVE = "INACTIVE"
    STARTED = "STARTED"
    STOPPED = "STOPPED"
    TERMINATING = "TERMINATING"


# What a PATCH may ask for (INACTIVE is where a cluster is, never a request).
REQUESTABLE = (BackupStatus.STARTED, BackupStatus.STOPPED, BackupStatus.TERMINATING)


def owned(reader: Store | Txn, collection: str, doc_id: str, **owner: str) -> dict[str, Any] | None:
    """A copy of document ``doc_id`` of ``collection`` (read through a store or a transaction) when its
    fields are ``owner`` (its project, its cluster), else None; ids are alphanumeric."""
    doc = reader.get(collection, doc_id) if doc_id.isalnum() else None
    if doc is None or any(doc.get(k) != v for k, v in owner.items()):
        return None
    return dict(doc)


@dataclass(frozen=True)
class StartedSource:
    """A daemon source of a cluster whose backup is STARTED."""

    source_id: str
    cluster_id: str
    name: str  # the replica set's name, or the backing store's
    hostname: str | None = None  # a backing database's primary host (None: the agent of any host)


class Clusters:
    """The backed-up clusters of every project on one application database, over one daemon."""

    def __init__(self, store: Store, daemon: BackupDaemon) -> None:
        self.store = store
        self.daemon = daemon

    def ensure(self, group_id: str, replica_sets: Iterable[str]) -> list[dict[str, Any]]:
        """The project's cluster of each replica set, each created on first sight (one transaction)."""
        names = list(replica_sets)
        # Read first: every listing calls this, and a write transaction per GET serialises readers.
        known = {d.get("replicaSetName"): d for d in self.store.find(CLUSTERS, groupId=group_id)}
        if all(name in known for name in names):
            return [known[name] for name in names]
        out = []
        with self.store.tx() as t:
            for name in names:
                found = t.find(CLUSTERS, groupId=group_id, replicaSetName=name)
                out.append(
                    found[0] if found else t.insert(CLUSTERS, {"groupId": group_id, "replicaSetName": name})
                )
        return out

    def get(self, group_id: str, cluster_id: str) -> dict[str, Any]:
        """A replica set's (or backing databases') cluster; 404 for any other id, a sharded cluster's too."""
        doc = owned(self.store, CLUSTERS, cluster_id, groupId=group_id)
        if doc is None:
            raise _no_cluster(group_id, cluster_id)
        return doc

    # Sharded clusters.

    def ensure_sharded(self, group_id: str, specs: Iterable[ShardedSpec]) -> None:
        """Records each sharded cluster of the project's config as it is now (written only when it changed),
        and the cluster of each of its parts' replica sets; a part new to a cluster whose backup is STARTED
        is backed up from then on (its agents hear of it)."""
        for spec in specs:
            self.ensure(group_id, [p.replica_set for p in spec.parts])
            doc = {
                "_id": spec.cluster_id,
                "groupId": group_id,
                "clusterName": spec.name,
                "parts": [p.to_json() for p in spec.parts],
                "mongos": list(spec.mongos),
            }
            if self.store.get(SHARDED, spec.cluster_id) == doc:
                continue
            self.store.put(SHARDED, doc)
            if self.status(spec.cluster_id) is BackupStatus.STARTED:
                for part in spec.parts:
                    self.daemon.register_source(
                        group_id, spec.cluster_id, part.replica_set, SourceKind.REPLICA_SET
                    )
                self.store.notify(WORK_CHANGED, group_id)

    def sharded(self, group_id: str, cluster_id: str) -> ShardedSpec | None:
        """The project's sharded cluster ``cluster_id`` as last recorded, or None."""
        doc = owned(self.store, SHARDED, cluster_id, groupId=group_id)
        if doc is None:
            return None
        parts = tuple(PartSpec.from_json(p) for p in doc["parts"])
        return ShardedSpec(doc["_id"], doc["clusterName"], parts, tuple(doc.get("mongos", ())))

    def part_ids(self, group_id: str, spec: ShardedSpec) -> dict[str, str]:
        """The cluster id of each part's replica set, by its name."""
        docs = self.ensure(group_id, [p.replica_set for p in spec.parts])
        return {d["replicaSetName"]: d["_id"] for d in docs}

    def _sharded_of(self, group_id: str, replica_set: str) -> ShardedSpec | None:
        for doc in self.store.find(SHARDED, groupId=group_id):
            spec = self.sharded(group_id, doc["_id"])
            if spec is not None and spec.part(replica_set) is not None:
                return spec
        return None

    def _part_names(self, group_id: str, cluster_id: str) -> list[str]:
        """What backing the cluster up means: its replica set, or each part of a sharded cluster."""
        spec = self.sharded(group_id, cluster_id)
        if spec is not None:
            return [p.replica_set for p in spec.parts]
        name = self.get(group_id, cluster_id)["replicaSetName"]
        owner = self._sharded_of(group_id, name)
        if owner is not None:
            raise Conflict(
                f"replica set {name} is a part of sharded cluster {owner.name}: back up the cluster "
                f"({owner.cluster_id}), which backs up every part at one point in time",
                clusterId=cluster_id,
            )
        return [name]

    def name(self, group_id: str, cluster_id: str) -> str:
        """The cluster's name (a replica set's, or a sharded cluster's); 404 unless the project has it."""
        spec = self.sharded(group_id, cluster_id)
        return spec.name if spec is not None else str(self.get(group_id, cluster_id)["replicaSetName"])

    def check(self, group_id: str, cluster_id: str) -> None:
        """404 unless the project has cluster ``cluster_id`` (of any kind)."""
        self.name(group_id, cluster_id)

    def status(self, cluster_id: str) -> BackupStatus:
        doc = self.store.get(CONFIGS, cluster_id)
        return BackupStatus(doc["statusName"]) if doc else BackupStatus.INACTIVE

    def set_status(self, group_id: str, cluster_id: str, status: Any) -> BackupStatus:
        """STARTED registers the replica set with the daemon; TERMINATING deletes its backups and ends
        INACTIVE. The project's agents hear of it (``WORK_CHANGED``) with the change."""
        self.check(group_id, cluster_id)
        if status not in REQUESTABLE:
            raise InvalidInput(
                f"statusName must be one of {[s.value for s in REQUESTABLE]}", field="statusName"
            )
        asked = BackupStatus(status)
        if asked is BackupStatus.STARTED:
            # Again for a started sharded cluster: a part added to it since is backed up from now on.
            for name in self._part_names(group_id, cluster_id):
                self.daemon.register_source(group_id, cluster_id, name, SourceKind.REPLICA_SET)
        if asked is BackupStatus.TERMINATING:
            for src in self.daemon.sources(group_id, cluster_id):
                self.daemon.remove_source(src.id)
        # TERMINATING ends at once: nothing remains to wait for.
        now = BackupStatus.INACTIVE if asked is BackupStatus.TERMINATING else asked
        with self.store.tx() as t:
            t.put(CONFIGS, {"_id": cluster_id, "groupId": group_id, "statusName": now.value})
            t.notify(WORK_CHANGED, group_id)
        return now

    def source(self, group_id: str, cluster_id: str) -> Source:
        """The cluster's (first) daemon source; 404 for a cluster that is not backed up."""
        return self.sources(group_id, cluster_id)[0]

    def sources(self, group_id: str, cluster_id: str) -> list[Source]:
        """The cluster's daemon sources (a sharded cluster's: one per part); 404 when it has none."""
        self.check(group_id, cluster_id)
        sources = self.daemon.sources(group_id, cluster_id)
        if not sources:
            raise NotFound(f"cluster {cluster_id} is not backed up", clusterId=cluster_id)
        return sources

    def started(self) -> set[str]:
        """The ids of the clusters of every project whose backup is STARTED."""
        return {doc["_id"] for doc in self.store.find(CONFIGS, statusName=BackupStatus.STARTED.value)}

    def started_sources(self, group_id: str) -> list[StartedSource]:
        """The sources of the project's clusters with backup STARTED."""
        out = []
        for doc in self.store.find(CONFIGS, groupId=group_id, statusName=BackupStatus.STARTED.value):
            out += [
                StartedSource(src.id, doc["_id"], src.name)
                for src in self.daemon.sources(group_id, doc["_id"])
                if src.kind is SourceKind.REPLICA_SET
            ]
        return out

    # Deployments of a primary's backing databases.

    def backing(self, group_id: str, cluster_id: str) -> dict[str, Any]:
        doc = self.get(group_id, cluster_id)
        if doc.get("kind") != BACKING_KIND:
            raise NotFound(
                f"cluster {cluster_id} is not a deployment of backing databases", clusterId=cluster_id
            )
        return doc

    def backing_clusters(self, group_id: str) -> list[dict[str, Any]]:
        return self.store.find(CLUSTERS, groupId=group_id, kind=BACKING_KIND)

    def backing_sources(self, cluster: dict[str, Any]) -> dict[str, Source]:
        """A backing-database cluster's sources by store name."""
        return {s.name: s for s in self.daemon.sources(cluster["groupId"], cluster["_id"])}

    def create_backing(self, group_id: str, name: Any, hostname: Any) -> dict[str, Any]:
        """The deployment of a primary's backing databases, backup STARTED, with a source per store;
        creating it again with the same name returns it. Agents hear of it once its sources exist."""
        if (
            not isinstance(name, str)
            or not 0 < len(name) <= 64
            or not name.replace("-", "").replace("_", "").isalnum()
        ):
            raise InvalidInput("clusterName must be 1 to 64 letters, digits, - or _", field="clusterName")
        if hostname is not None and (not isinstance(hostname, str) or not 0 < len(hostname) <= 255):
            raise InvalidInput("hostname must be the primary's host name", field="hostname")
        with self.store.tx() as t:
            found = t.find(CLUSTERS, groupId=group_id, replicaSetName=name)
            if found and found[0].get("kind") != BACKING_KIND:
                raise Conflict(
                    f"project {group_id} already has a replica set named {name}", field="clusterName"
                )
            cluster = found[0] if found else {"_id": new_id(), "groupId": group_id, "replicaSetName": name}
            cluster = t.put(CLUSTERS, {**cluster, "kind": BACKING_KIND, "hostname": hostname})
            t.put(
                CONFIGS,
                {"_id": cluster["_id"], "groupId": group_id, "statusName": BackupStatus.STARTED.value},
            )
        for store in StoreName:
            self.daemon.register_source(group_id, cluster["_id"], store.value, SourceKind.BACKING_DATABASE)
        self.store.notify(WORK_CHANGED, group_id)
        return cluster

    def started_backing_sources(self, group_id: str) -> list[StartedSource]:
        """The backing-database sources with backup STARTED, each with the ``hostname`` that ships it."""
        out = []
        for cluster in self.backing_clusters(group_id):
            if self.status(cluster["_id"]) is not BackupStatus.STARTED:
                continue
            out += [
                StartedSource(src.id, cluster["_id"], name, cluster.get("hostname"))
                for name, src in self.backing_sources(cluster).items()
            ]
        return out


def _no_cluster(group_id: str, cluster_id: str) -> NotFound:
    return NotFound(
        f"No cluster with ID {cluster_id} exists in group {group_id}.",
        error_code="CLUSTER_NOT_FOUND",
        clusterId=cluster_id,
    )

"""Backed-up clusters and their backup configurations, as Ops Manager's public API shows them.

Owns two collections of the application database: ``backup_clusters`` (a stable cluster id per project and
replica set name, created on first sight; a deployment of a primary's backing databases is a cluster of kind
``BACKING_DATABASES`` with the ``hostname`` that ships it) and ``backup_configs`` (a cluster's
``statusName``). The backup work itself is the daemon's: a cluster whose backup is STARTED has one daemon
source per database (a replica set's one, or the three backing stores). May import ``opsmgr.errors``,
``opsmgr.store``, ``opsmgr.backup`` and ``opsmgr.automation.protocol`` (the change agents' work announces).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.backup.daemon import BackupDaemon, Source, SourceKind
from opsmgr.backup.store_restore import StoreName
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store.engine import Store, Txn, new_id

CLUSTERS = "backup_clusters"
CONFIGS = "backup_configs"
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
        known = {d["replicaSetName"]: d for d in self.store.find(CLUSTERS, groupId=group_id)}
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
        doc = owned(self.store, CLUSTERS, cluster_id, groupId=group_id)
        if doc is None:
            raise NotFound(
                f"No cluster with ID {cluster_id} exists in group {group_id}.",
                error_code="CLUSTER_NOT_FOUND",
                clusterId=cluster_id,
            )
        return doc

    def status(self, cluster_id: str) -> BackupStatus:
        doc = self.store.get(CONFIGS, cluster_id)
        return BackupStatus(doc["statusName"]) if doc else BackupStatus.INACTIVE

    def set_status(self, group_id: str, cluster_id: str, status: Any) -> BackupStatus:
        """STARTED registers the replica set with the daemon; TERMINATING deletes its backups and ends
        INACTIVE. The project's agents hear of it (``WORK_CHANGED``) with the change."""
        cluster = self.get(group_id, cluster_id)
        if status not in REQUESTABLE:
            raise InvalidInput(
                f"statusName must be one of {[s.value for s in REQUESTABLE]}", field="statusName"
            )
        asked = BackupStatus(status)
        if asked is BackupStatus.STARTED:
            self.daemon.register_source(
                group_id, cluster_id, cluster["replicaSetName"], SourceKind.REPLICA_SET
            )
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
        self.get(group_id, cluster_id)
        sources = self.daemon.sources(group_id, cluster_id)
        if not sources:
            raise NotFound(f"cluster {cluster_id} is not backed up", clusterId=cluster_id)
        return sources[0]

    def started(self) -> set[str]:
        """The ids of the clusters of every project whose backup is STARTED."""
        return {doc["_id"] for doc in self.store.find(CONFIGS, statusName=BackupStatus.STARTED.value)}

    def started_sources(self, group_id: str) -> list[StartedSource]:
        """The sources of the project's clusters with backup STARTED."""
        out = []
        for doc in self.store.find(CONFIGS, groupId=group_id, statusName=BackupStatus.STARTED.value):
            cluster = self.get(group_id, doc["_id"])
            out += [
                StartedSource(src.id, cluster["_id"], cluster["replicaSetName"])
                for src in self.daemon.sources(group_id, cluster["_id"])
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

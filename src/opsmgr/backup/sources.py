"""The daemon's sources: the databases of projects' deployments that are backed up, one document each in the
application database's ``backup_sources`` (project, cluster, name, kind, snapshot schedule), like Ops
Manager's backup configurations; and what every part of the daemon shares about them: the clock and a lock
per source (head applies, snapshots, grooming and a finishing initial sync of one source never overlap).

May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from opsmgr.backup import policy
from opsmgr.backup.policy import Schedule
from opsmgr.backup.positions import PositionKind
from opsmgr.errors import InvalidInput, NotFound
from opsmgr.store.engine import Store, new_id

log = logging.getLogger("opsmgr.backup")

SOURCES = "backup_sources"


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def now_ms(clock: Clock) -> int:
    return int(clock.now() * 1000)


class SourceKind(StrEnum):
    REPLICA_SET = "REPLICA_SET"  # a MongoDB replica set (sim or mongod): BSON timestamps
    BACKING_DATABASE = "BACKING_DATABASE"  # an opsmgr backing database: store oplog timestamps


@dataclass(frozen=True)
class Source:
    id: str
    groupId: str
    clusterId: str
    name: str
    kind: SourceKind
    schedule: Schedule
    createdAt: int

    @property
    def position_kind(self) -> PositionKind:
        return PositionKind.BSON if self.kind is SourceKind.REPLICA_SET else PositionKind.STORE

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "groupId": self.groupId,
            "clusterId": self.clusterId,
            "name": self.name,
            "kind": self.kind.value,
            "snapshotSchedule": self.schedule.to_json(),
            "createdAt": self.createdAt,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Source:
        return cls(
            id=doc["_id"],
            groupId=doc["groupId"],
            clusterId=doc["clusterId"],
            name=doc["name"],
            kind=SourceKind(doc["kind"]),
            schedule=Schedule(**doc.get("schedule", {})),
            createdAt=doc["createdAt"],
        )


class SourceLocks:
    """One re-entrant lock per source, made on first use."""

    def __init__(self) -> None:
        self._locks: defaultdict[str, threading.RLock] = defaultdict(threading.RLock)
        self._guard = threading.Lock()

    def __call__(self, source_id: str) -> threading.RLock:
        with self._guard:
            return self._locks[source_id]


def _check_name(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64 or "\x00" in value:
        raise InvalidInput(f"{field_name} must be 1 to 64 characters", field=field_name)
    return value


class Sources:
    """The sources' documents in the application database."""

    def __init__(self, app: Store, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    def register(
        self,
        group_id: str,
        cluster_id: str,
        name: str,
        kind: SourceKind | str,
        schedule: Schedule | None = None,
    ) -> Source:
        """Starts backing up a source; registering the same (project, cluster, name) again returns it."""
        for value, field_name in ((group_id, "groupId"), (cluster_id, "clusterId"), (name, "name")):
            _check_name(value, field_name)
        try:
            source_kind = SourceKind(kind)
        except ValueError:
            raise InvalidInput(f"kind must be one of {[k.value for k in SourceKind]}", field="kind") from None
        with self.app.tx() as t:
            found = t.find(SOURCES, groupId=group_id, clusterId=cluster_id, name=name)
            if found:
                return Source.from_doc(found[0])
            doc = {
                "_id": new_id(),
                "groupId": group_id,
                "clusterId": cluster_id,
                "name": name,
                "kind": source_kind.value,
                "schedule": (schedule or Schedule()).to_json(),
                "createdAt": now_ms(self.clock),
            }
            t.insert(SOURCES, doc)
        log.info("backing up %s/%s/%s (%s) as source %s", group_id, cluster_id, name, source_kind, doc["_id"])
        return Source.from_doc(doc)

    def find(self, group_id: str | None = None, cluster_id: str | None = None) -> list[Source]:
        eq = {k: v for k, v in (("groupId", group_id), ("clusterId", cluster_id)) if v is not None}
        return [Source.from_doc(d) for d in self.app.find(SOURCES, **eq)]

    def get(self, source_id: str) -> Source:
        doc = self.app.get(SOURCES, source_id)
        if doc is None:
            raise NotFound(f"no backup source {source_id}", sourceId=source_id)
        return Source.from_doc(doc)

    def delete(self, source_id: str) -> None:
        self.app.delete(SOURCES, source_id)

    def set_schedule(self, source_id: str, body: Any) -> Schedule:
        """Lays a (partial) ``snapshotSchedule`` body over the source's schedule."""
        with self.app.tx() as t:
            doc = t.get(SOURCES, source_id)
            if doc is None:
                raise NotFound(f"no backup source {source_id}", sourceId=source_id)
            schedule = policy.schedule_from_json(body, Schedule(**doc.get("schedule", {})))
            t.put(SOURCES, {**doc, "schedule": schedule.to_json()})
        return schedule

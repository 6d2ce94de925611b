"""The restore record: written into a restored application database by the restore of the backing databases,
read by the server that starts on it.

Owns the ``restore_record`` collection (one document ``{_id: "restore"}``): which restore job wrote the
database, to which point, and, per project, the hosts the restored database knows agents on. A server that
finds a record it has not acted on arms Restoration Mode for every project (``restoration.mode.arm``) and
marks the record acted on (``armedAt``), so a later restart does not arm again. May import ``opsmgr.store``
and ``opsmgr.automation.config``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsmgr.automation.config import hostnames
from opsmgr.store.engine import Store, Txn

RESTORE_RECORD = "restore_record"
RECORD_ID = "restore"
# The automation side's collection of configs (``opsmgr.automation.service.CONFIGS``), read from the
# restored documents before they are written anywhere.
_CONFIGS = "automation_configs"


@dataclass(frozen=True)
class RestoreRecord:
    restore_job_id: str
    restored_at_ms: int
    point_us: int  # the application database's restored position (its oplog ts)
    hostnames: dict[str, list[str]] = field(default_factory=dict)  # project id -> hosts known then
    armed_at_ms: int | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "_id": RECORD_ID,
            "restoreJobId": self.restore_job_id,
            "restoredAt": self.restored_at_ms,
            "point": self.point_us,
            "hostnames": self.hostnames,
            "armedAt": self.armed_at_ms,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RestoreRecord:
        return cls(
            restore_job_id=str(doc.get("restoreJobId", "?")),
            restored_at_ms=int(doc.get("restoredAt", 0)),
            point_us=int(doc.get("point", 0)),
            hostnames={str(g): [str(h) for h in hs] for g, hs in (doc.get("hostnames") or {}).items()},
            armed_at_ms=doc.get("armedAt"),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "restoreJobId": self.restore_job_id,
            "restoredAt": self.restored_at_ms,
            "point": self.point_us,
        }


def hostnames_by_group(app_docs: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """Per project, the hosts a restored application database's automation configs name (every version it
    kept track of), from its ``(collection, document)`` pairs."""
    found: dict[str, list[str]] = {}
    for coll, doc in app_docs:
        if coll != _CONFIGS:
            continue
        known = set(doc.get("hostnames") or []) | hostnames(doc.get("config") or {})
        if known:
            found[str(doc["_id"])] = sorted(known)
    return found


def write(t: Txn, record: RestoreRecord) -> None:
    t.put(RESTORE_RECORD, record.to_doc())


def mark_restored(
    app_store: Store, restore_job_id: str, point_us: int, app_docs: Iterable[tuple[str, dict[str, Any]]]
) -> RestoreRecord:
    """Written by the restore into the application database it has just restored (``app_docs`` are its
    restored documents), before its fence comes down: the server that starts on it arms every project."""
    record = RestoreRecord(
        restore_job_id=restore_job_id,
        restored_at_ms=time.time_ns() // 1_000_000,
        point_us=point_us,
        hostnames=hostnames_by_group(app_docs),
    )
    with app_store.tx() as t:
        write(t, record)
    return record


def read(store: Store) -> RestoreRecord | None:
    doc = store.get(RESTORE_RECORD, RECORD_ID)
    return None if doc is None else RestoreRecord.from_doc(doc)

"""The rules of restoring a server's three backing databases from its secondary, as the seed gives them.
Pure.

- By default all three are restored to the same point.
- The two metadata stores (snapshot metadata, oplog metadata) may be restored to a **later** point than the
  application database: everything the restored application database refers to is then there.
- A metadata store restored to an **earlier** point than the application database is refused unless forced:
  restore jobs the restored application database holds would then answer 409 ("snapshot blocks missing"),
  because the snapshot they name (snapshot metadata) or the oplog slices they replay (oplog metadata) are not
  in the restored metadata. The refusal names those jobs, so that forcing is an informed choice.
- Restoring only the application database (the metadata stores left as they are) is allowed; it names the
  snapshots taken after the restore point, which the restored application database does not know of and
  which may become unavailable.

Positions are the stores' oplog timestamps (microseconds since the epoch, ``opsmgr.store``), comparable across
the three stores of one server. The facts (which jobs and snapshots exist where) are read from the restored
documents by :func:`facts_from_documents` before anything is written, so a refusal leaves every target as
it was. May import ``opsmgr.errors``, ``opsmgr.store.backing`` (the stores' names) and
``opsmgr.backup.snapshots``' collection prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsmgr.backup.snapshots import SNAPSHOTS_PREFIX
from opsmgr.errors import Conflict, InvalidInput
from opsmgr.store.backing import LABELS as LABELS
from opsmgr.store.backing import METADATA
from opsmgr.store.backing import StoreName as StoreName

# The server's collection of restore jobs in the application database (``opsmgr.server.backup_api.JOBS``).
RESTORE_JOBS = "backup_restore_jobs"


@dataclass(frozen=True)
class Points:
    """The position each store is restored to; None leaves that metadata store as it is."""

    app: int
    snapshot: int | None
    oplog: int | None

    def of(self, name: StoreName) -> int | None:
        return {StoreName.APP: self.app, StoreName.SNAPSHOT: self.snapshot, StoreName.OPLOG: self.oplog}[name]


@dataclass(frozen=True)
class JobRef:
    """A restore job of the primary as the restored application database records it."""

    id: str
    snapshot_id: str | None
    point_ms: int | None  # its point in time, when it replays oplog slices after its snapshot
    status: str = ""


@dataclass(frozen=True)
class SnapshotRef:
    id: str
    source_id: str
    created_ms: int


@dataclass(frozen=True)
class Facts:
    jobs: tuple[JobRef, ...] = ()
    # Snapshot ids in the snapshot metadata store as it will be restored (None: it is not restored).
    restored_snapshots: frozenset[str] | None = None
    # Snapshots in the snapshot metadata store as it is now (None: it is lost or unreadable).
    current_snapshots: tuple[SnapshotRef, ...] | None = None


@dataclass(frozen=True)
class Plan:
    points: Points
    stores: tuple[StoreName, ...]  # restored, in the order they are written
    warnings: tuple[str, ...] = ()
    jobs_answering_409: tuple[str, ...] = ()  # forced: these restore jobs will answer 409
    snapshots_may_be_unavailable: tuple[str, ...] = ()  # app only: snapshots the app DB will not know


@dataclass(frozen=True)
class Refusal:
    reason: str
    jobs: tuple[str, ...] = field(default=())
    stores: tuple[StoreName, ...] = field(default=())  # the metadata stores that would be earlier


class RestoreRefused(Conflict):
    error_code = "STORE_RESTORE_REFUSED"


def _seconds(us: int) -> str:
    return f"{us / 1_000_000:.3f} s"


def affected_jobs(points: Points, facts: Facts) -> list[JobRef]:
    """The restore jobs of the restored application database that the restored metadata cannot serve."""
    out = []
    for job in facts.jobs:
        missing_snapshot = (
            points.snapshot is not None
            and points.snapshot < points.app
            and facts.restored_snapshots is not None
            and job.snapshot_id is not None
            and job.snapshot_id not in facts.restored_snapshots
        )
        missing_slices = (
            points.oplog is not None
            and points.oplog < points.app
            and job.point_ms is not None
            and job.point_ms * 1000 > points.oplog
        )
        if missing_snapshot or missing_slices:
            out.append(job)
    return out


def decide(points: Points, facts: Facts, force: bool) -> Plan | Refusal:
    """What restoring to ``points`` does, or why it is refused (a refusal is never forced silently)."""
    if points.app < 0 or any(p is not None and p < 0 for p in (points.snapshot, points.oplog)):
        raise InvalidInput("restore points are non-negative store positions", field="points")
    restored = tuple(n for n in StoreName if points.of(n) is not None)
    earlier_by = {n: points.app - p for n in METADATA if (p := points.of(n)) is not None and p < points.app}
    earlier = tuple(earlier_by)
    warnings: list[str] = []
    jobs = affected_jobs(points, facts)
    job_ids = tuple(j.id for j in jobs)
    if earlier:
        named = ", ".join(f"{LABELS[n]} ({_seconds(by)} earlier)" for n, by in earlier_by.items())
        listed = (
            "these restore jobs of the restored application database would answer 409 (snapshot blocks "
            "missing): " + ", ".join(f"{j.id} (snapshot {j.snapshot_id})" for j in jobs)
            if jobs
            else "no restore job recorded in it needs what would be missing, but anything it recorded after "
            "that point would refer to snapshots and oplog slices the metadata does not have"
        )
        if not force:
            return Refusal(
                f"the {named} would be restored to an earlier point than the application database: {listed}. "
                "Restore the metadata stores to the same point or a later one, or give --force to accept "
                "this.",
                job_ids,
                earlier,
            )
        warnings.append(f"forced: the {named} is earlier than the application database; {listed}")
    for n in METADATA:
        p = points.of(n)
        if p is not None and p > points.app:
            warnings.append(f"the {LABELS[n]} is restored {_seconds(p - points.app)} later than the app DB")
    unavailable: tuple[str, ...] = ()
    left = [n for n in METADATA if points.of(n) is None]
    if left:
        warnings.append(
            "only the application database is restored"
            if len(left) == len(METADATA)
            else f"the {LABELS[left[0]]} is left as it is"
        )
        if StoreName.SNAPSHOT in left:
            if facts.current_snapshots is None:
                warnings.append(
                    "the snapshot metadata store cannot be read: which snapshots remain is unknown"
                )
            else:
                after = sorted(
                    (s for s in facts.current_snapshots if s.created_ms * 1000 > points.app),
                    key=lambda s: s.created_ms,
                )
                unavailable = tuple(s.id for s in after)
                if unavailable:
                    warnings.append(
                        "backup snapshots the primary took after the restore point may be unavailable: "
                        + ", ".join(unavailable)
                    )
    return Plan(points, restored, tuple(warnings), job_ids if earlier else (), unavailable)


# Facts from documents (pure: the caller reads them).


def jobs_from(app_docs: Iterable[tuple[str, dict[str, Any]]]) -> tuple[JobRef, ...]:
    out = []
    for ns, doc in app_docs:
        if ns != RESTORE_JOBS:
            continue
        plan = doc.get("plan") if isinstance(doc.get("plan"), dict) else {}
        replays = isinstance(plan, dict) and bool(plan.get("oplogSlices"))
        point = plan.get("pointInTimeUTCMillis") if isinstance(plan, dict) else None
        out.append(
            JobRef(
                id=str(doc.get("_id")),
                snapshot_id=doc.get("snapshotId") if isinstance(doc.get("snapshotId"), str) else None,
                point_ms=point if replays and isinstance(point, int) else None,
                status=str(doc.get("statusName", "")),
            )
        )
    return tuple(out)


def snapshots_from(snapshot_docs: Iterable[tuple[str, dict[str, Any]]]) -> tuple[SnapshotRef, ...]:
    return tuple(
        SnapshotRef(str(doc["_id"]), ns[len(SNAPSHOTS_PREFIX) :], int(doc.get("createdAt", 0)))
        for ns, doc in snapshot_docs
        if ns.startswith(SNAPSHOTS_PREFIX) and "_id" in doc
    )

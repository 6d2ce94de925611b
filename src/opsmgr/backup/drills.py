"""Restore drills of a primary's backing databases, kept on the secondary that backs them up (collections
``backing_drills`` and ``backing_drill_schedules``).

The seed makes a test restore a required practice: restore the backing databases into a sandbox and confirm
it starts and reconciles. ``opsmgr drill run`` does the work and reports its outcome here
(:meth:`Drills.record`): pass or fail per step with its duration, the restore point, RPO (restore point to
the drill's start), RTO (the drill's start to its end), the restored stores' sizes. The last
:data:`MAX_KEPT` drills of each deployment are kept, newest first in :meth:`Drills.history`.

A failed drill opens ``BACKUP_DRILL_FAILED`` in the secondary's project (a passing one closes it); a
deployment whose last passing drill (or, without any, whose first sight by :meth:`Drills.check_overdue`) is
older than the interval (``mms.backup.drill.intervalDays``) has ``BACKUP_DRILL_OVERDUE`` open until a drill
passes. :func:`overdue` decides it, pure. A secondary that runs drills itself (``server.drill_schedule``) runs
one for each deployment :meth:`Drills.due` names: twice an interval (:func:`scheduled_due`).

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup.alerts`` (the alert sink) and
``opsmgr.backup.clusters``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, ValidationError

from opsmgr.backup.alerts import AlertSink
from opsmgr.backup.clusters import BACKING_KIND, CLUSTERS
from opsmgr.errors import InvalidInput
from opsmgr.store.engine import Store, new_id
from opsmgr.store.records import Stored

log = logging.getLogger(__name__)

DRILLS = "backing_drills"
SCHEDULES = "backing_drill_schedules"
MAX_KEPT = 100
MAX_STEPS = 20
FAILED_ALERT = "BACKUP_DRILL_FAILED"
OVERDUE_ALERT = "BACKUP_DRILL_OVERDUE"


class DrillStep(Stored):
    name: str = Field(min_length=1, max_length=64)
    passed: bool
    seconds: float = Field(ge=0, le=10**7)
    detail: str = Field(default="", max_length=2000)


class DrillReport(Stored):
    """What ``opsmgr drill run`` reports (camelCase on the wire, as stored)."""

    passed: bool
    started: int = Field(ge=0)  # epoch ms
    finished: int = Field(ge=0)
    restore_point_utc_millis: int | None = Field(default=None, ge=0, alias="restorePointUTCMillis")
    restore_job_id: str | None = Field(default=None, max_length=64)
    store_bytes: dict[str, int] = Field(default_factory=dict, max_length=3)
    steps: list[DrillStep] = Field(min_length=1, max_length=MAX_STEPS)


def parse_report(body: object) -> DrillReport:
    """The report a drill sent; a 400 naming the first wrong field."""
    if not isinstance(body, dict):
        raise InvalidInput("a drill report must be a JSON object", field="body")
    try:
        report = DrillReport.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{field}: {first['msg']}", field=field) from None
    if report.finished < report.started:
        raise InvalidInput("finished must not be before started", field="finished")
    if report.passed != all(step.passed for step in report.steps):
        raise InvalidInput("passed must say whether every step passed", field="passed")
    return report


def view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A kept drill as the API shows it: RPO and RTO in seconds, instants in epoch ms."""
    point = doc.get("restorePointUTCMillis")
    return {
        "id": doc["_id"],
        "groupId": doc["groupId"],
        "clusterId": doc["clusterId"],
        "passed": doc["passed"],
        "started": doc["started"],
        "finished": doc["finished"],
        "restorePointUTCMillis": point,
        "rpoSeconds": None if point is None else max(doc["started"] - point, 0) / 1000,
        "rtoSeconds": (doc["finished"] - doc["started"]) / 1000,
        "restoreJobId": doc.get("restoreJobId"),
        "storeBytes": dict(doc.get("storeBytes") or {}),
        "steps": list(doc["steps"]),
    }


def overdue(last_passed_ms: int | None, since_ms: int, now_ms: int, interval_ms: float) -> bool:
    """Whether a deployment needs a drill: its last passing drill, or its first sight without one, is older
    than the interval."""
    return now_ms - (last_passed_ms if last_passed_ms is not None else since_ms) > interval_ms


class Drills:
    def __init__(self, store: Store, alerts: AlertSink, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.alerts = alerts
        self.clock = clock

    def _key(self, cluster_id: str, alert: str) -> str:
        return f"backup:{cluster_id}:{alert}"

    def record(self, group_id: str, cluster_id: str, body: object) -> dict[str, Any]:
        """Keeps a drill's report (the caller has checked the cluster is a backing deployment of the
        project); opens or closes the drill alerts."""
        report = parse_report(body)
        doc = {"_id": new_id(), "groupId": group_id, "clusterId": cluster_id, **report.to_doc()}
        with self.store.tx() as t:
            t.insert(DRILLS, doc)
            kept = sorted(t.find(DRILLS, clusterId=cluster_id), key=lambda d: (-d["started"], d["_id"]))
            for old in kept[MAX_KEPT:]:
                t.delete(DRILLS, old["_id"])
        failed = self._key(cluster_id, FAILED_ALERT)
        if report.passed:
            self.alerts.resolve(group_id, failed)
            self.alerts.resolve(group_id, self._key(cluster_id, OVERDUE_ALERT))
        else:
            broken = next(s for s in report.steps if not s.passed)
            self.alerts.raise_alert(
                group_id,
                FAILED_ALERT,
                failed,
                f"A restore drill of the backing databases failed at {broken.name}: {broken.detail[:300]}",
                clusterId=cluster_id,
                typeName="BACKUP",
            )
        log.info("drill %s of cluster %s recorded: %s", doc["_id"], cluster_id, report.passed)
        return view(doc)

    def history(self, group_id: str, cluster_id: str) -> list[dict[str, Any]]:
        docs = self.store.find(DRILLS, groupId=group_id, clusterId=cluster_id)
        return [view(d) for d in sorted(docs, key=lambda d: (-d["started"], d["_id"]))]

    def due(self, interval_days: float) -> list[tuple[str, str]]:
        """The backing deployments (project, cluster) a scheduled drill should run for now, oldest first."""
        now_ms = int(self.clock() * 1000)
        out = []
        for cluster in self.store.find(CLUSTERS, kind=BACKING_KIND):
            since = self.store.get(SCHEDULES, str(cluster["_id"]))
            if since is None:
                continue  # first seen by check_overdue, which starts its interval
            started = [d["started"] for d in self.store.find(DRILLS, clusterId=cluster["_id"])]
            last = max(started, default=None)
            if scheduled_due(last, since["since"], now_ms, interval_days * 86_400_000):
                out.append((last or since["since"], str(cluster["groupId"]), str(cluster["_id"])))
        return [(group, cluster) for _, group, cluster in sorted(out)]

    def check_overdue(self, interval_days: float) -> int:
        """Opens or closes each backing deployment's overdue alert; returns how many are overdue."""
        now_ms = int(self.clock() * 1000)
        if not math.isfinite(interval_days):
            return 0
        late = 0
        for cluster in self.store.find(CLUSTERS, kind=BACKING_KIND):
            group_id, cluster_id = str(cluster["groupId"]), str(cluster["_id"])
            since = self.store.get(SCHEDULES, cluster_id)
            if since is None:
                since = {"_id": cluster_id, "groupId": group_id, "since": now_ms}
                self.store.put(SCHEDULES, since)
            passed = [d["started"] for d in self.store.find(DRILLS, clusterId=cluster_id) if d["passed"]]
            key = self._key(cluster_id, OVERDUE_ALERT)
            if overdue(max(passed, default=None), since["since"], now_ms, interval_days * 86_400_000):
                late += 1
                self.alerts.raise_alert(
                    group_id,
                    OVERDUE_ALERT,
                    key,
                    f"No restore drill of the backing databases has passed in {interval_days:g} days: "
                    "run opsmgr drill run",
                    clusterId=cluster_id,
                    typeName="BACKUP",
                )
            else:
                self.alerts.resolve(group_id, key)
        return late


def scheduled_due(last_started_ms: int | None, since_ms: int, now_ms: int, interval_ms: float) -> bool:
    """Whether a scheduled drill is due: twice an interval, so a failed one is tried again before the
    deployment is overdue."""
    return overdue(last_started_ms, since_ms, now_ms, interval_ms / 2)

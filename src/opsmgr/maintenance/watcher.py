"""The server's watch over the majority of replica sets under a rolling change: periodic work that reads the
members' health from what their agents last reported and, while a change runs, keeps in the change's record
the spells during which the set had lost the majority of its votes (``majorityLost``), shows the change
BLOCKED naming the lost majority meanwhile, and holds the ``MAINTENANCE_MAJORITY_LOST`` alert open for as
long as it lasts. The decisions are ``maintenance.watch``'s. May import ``opsmgr.alerts``, ``opsmgr.store``
and ``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from opsmgr.alerts import AlertService
from opsmgr.maintenance.changes import active
from opsmgr.maintenance.leases import LEASES
from opsmgr.maintenance.members import MemberReports, SetsPart
from opsmgr.maintenance.moves import Progress
from opsmgr.maintenance.report import ChangeStatus
from opsmgr.maintenance.snapshot import Policy
from opsmgr.maintenance.watch import (
    Majority,
    majority_of,
    open_majority,
    track_majority,
    voting_members,
    with_majority,
)
from opsmgr.store.engine import Store

log = logging.getLogger(__name__)

ALERT_MAJORITY_LOST = "MAINTENANCE_MAJORITY_LOST"


def majority_key(rs_id: str) -> str:
    return f"maintenance:{rs_id}:majority-lost"


class MajorityWatch(SetsPart):
    """Majority lost during the rolling changes of every project, one look per :meth:`tick`."""

    def __init__(
        self,
        store: Store,
        alerts: AlertService,
        members: MemberReports,
        *,
        policy: Policy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(store, members, policy=policy, clock=clock)
        self.alerts = alerts

    def majority(self, doc: Mapping[str, Any]) -> Majority | None:
        """The majority of the change's set as its agents last reported it (None: nothing known)."""
        health = self.members.health(str(doc["groupId"]), doc)
        votes = {h.name: h.votes for h in health}
        voting = voting_members(votes, Progress.from_json(doc["progress"]), str(doc["rsId"]))
        return majority_of(health, voting)

    def tick(self) -> int:
        """One look at every replica set's change; returns how many alerts opened or closed."""
        moved = 0
        for doc in self.store.find(LEASES):
            if not doc.get("changeId"):
                continue
            lost = self._look(doc) if active(doc) else False
            if lost != bool(doc.get("majorityAlert")):
                self._alert(doc, lost)
                moved += 1
        return moved

    def _look(self, seen: Mapping[str, Any]) -> bool:
        """Record what the set's majority is now in its change; whether the majority is lost."""
        majority = self.majority(seen)
        now = self.clock()
        with self.store.tx() as t:
            doc = t.get(LEASES, str(seen["_id"]))
            if doc is None or doc.get("changeId") != seen["changeId"] or not active(doc):
                return False
            rs_id = str(doc["rsId"])
            spells = track_majority(doc.get("majorityLost") or [], majority, now)
            status = ChangeStatus.from_json(rs_id, doc.get("status") or {})
            shown = with_majority(status, majority if spells.open else None, rs_id, now)
            if spells.entries != (doc.get("majorityLost") or []) or shown != status:
                doc.update(majorityLost=spells.entries, status=shown.to_json(), updatedAt=now)
                t.put(LEASES, doc)
            if spells.opened or spells.closed:
                log.warning("%s of project %s: %s", rs_id, doc["groupId"], shown.reason)
            return spells.open

    def _alert(self, doc: Mapping[str, Any], lost: bool) -> None:
        group_id, rs_id = str(doc["groupId"]), str(doc["rsId"])
        if lost:
            stored = self.store.get(LEASES, str(doc["_id"])) or doc
            spell = open_majority(stored.get("majorityLost") or [])
            reason = spell.reason(rs_id) if spell is not None else f"the majority of {rs_id} is lost"
            self.alerts.raise_alert(
                group_id,
                ALERT_MAJORITY_LOST,
                majority_key(rs_id),
                reason,
                replicaSetName=rs_id,
                changeId=doc["changeId"],
            )
        else:
            self.alerts.resolve(group_id, majority_key(rs_id))
        with self.store.tx() as t:
            current = t.get(LEASES, str(doc["_id"]))
            if current is not None:
                t.put(LEASES, {**current, "majorityAlert": lost})

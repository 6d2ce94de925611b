"""A supervised unique index build's member steps, as rolling changes of their own.

A member step (build or drop the index on one member out of its set) is a one-member rolling change owned
by the build (``RollingChange.build_id``), registered with the set's lease by :meth:`IndexSteps.acquire_for`,
so the member goes out by the rolling procedure and only with the lease. One change per set at a time: a
step is refused while a config's change is under way (the denial names it), and a config PUT while a step
is under way registers its change queued (``maintenance.registration``), begun when the step ends. A step
the build no longer needs is withdrawn unless begun. A step that ends DONE becomes a :class:`StepEnd`
handed to the ``listeners`` (the build records its outcome). May import ``opsmgr.errors``, ``opsmgr.store``,
``opsmgr.automation.protocol`` and ``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.errors import OpsmgrError
from opsmgr.maintenance import changes
from opsmgr.maintenance.changes import active, lease_state
from opsmgr.maintenance.leases import LEASES, Deny, Grant, LeaseRequest, decide_grant, purpose_of
from opsmgr.maintenance.members import SetsPart
from opsmgr.maintenance.moves import Progress
from opsmgr.maintenance.rolling import UNIQUE_INDEX_TASKS, RollingChange, UniqueIndexTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepEnd:
    """A unique index build's member step that ended DONE: ``member`` is back in its set and caught up, its
    ``task`` carried out, unless the member ``refused`` the index (its words; it dropped what it left)."""

    group_id: str
    build_id: str
    change_id: str
    member: str
    task: UniqueIndexTask
    refused: str | None
    stepped_down: bool


def step_end(group_id: str, doc: Mapping[str, Any]) -> StepEnd | None:
    """What a unique index build's member step ending now did; None for a config's change."""
    change = RollingChange.from_json(doc["change"])
    if change.build_id is None:
        return None
    ((member, tasks),) = change.tasks.items()
    return StepEnd(
        group_id,
        change.build_id,
        str(doc["changeId"]),
        member,
        UniqueIndexTask(next(iter(tasks & UNIQUE_INDEX_TASKS))),
        doc.get("refused"),
        Progress.from_json(doc["progress"]).step_downs > 0,
    )


class IndexSteps(SetsPart):
    """The member steps of a project's unique index builds, under its replica sets' leases."""

    @functools.cached_property
    def listeners(self) -> list[Callable[[StepEnd], None]]:
        """Called with each step that ends (the builds record it)."""
        return []

    def acquire_for(
        self,
        group_id: str,
        rs_id: str,
        member: str,
        *,
        owner: str,
        purpose: str,
        refuse: str | None = None,
        change: RollingChange | None = None,
    ) -> Grant | Deny:
        """The lease for ``member`` on behalf of another procedure than a config's rolling change (``owner``,
        a unique index build): the same decision over the same health, so at most one member of the set is
        out whoever takes it out, but no rolling order (that procedure orders its members itself).
        ``purpose`` is the reason the others are given while it holds the lease.

        ``change``: that procedure's one-member rolling change, registered with the grant in the same
        transaction, so that the member goes out by the rolling procedure and only with the lease; denied
        while another change of the set is under way (one at a time), the same one asked again is granted."""
        current = self.store.get(LEASES, changes.doc_id(group_id, rs_id))
        health = self.members.set_health(group_id, rs_id, current if active(current) else None)
        version = self.members.goal(group_id).get("version") if change is not None else None
        now = self.clock()
        with self.store.tx() as t:
            doc = t.get(LEASES, changes.doc_id(group_id, rs_id)) or changes.blank(group_id, rs_id)
            under_way = RollingChange.from_json(doc["change"]) if active(doc) else None
            if change is not None and under_way is not None and not _same_step(under_way, change):
                return Deny(
                    f"{purpose_of(under_way)} ({', '.join(under_way.tasks)}): one change per replica set at "
                    "a time"
                )
            request = LeaseRequest(member, self.policy.lease_ttl_s, (member,), owner, purpose)
            decision = (
                Deny(refuse) if refuse is not None else decide_grant(lease_state(doc), request, health, now)
            )
            if isinstance(decision, Grant):
                if change is not None and under_way is None:
                    changes.begin(doc, change, None, version, now)
                    t.notify(WORK_CHANGED, group_id)
                    log.info("%s registered as a one-member rolling change of %s", purpose, rs_id)
                doc.update(lease=decision.lease.to_json(), lastHolder=member, updatedAt=now)
                t.put(LEASES, doc)
        return decision

    def withdraw(self, group_id: str, rs_id: str, change_id: str, reason: str) -> bool:
        """End change ``change_id`` if none of its moves is carried out yet (a build's step that the build no
        longer needs); False when it has begun (it runs to its end) or is not under way."""
        with self.store.tx() as t:
            doc = t.get(LEASES, changes.doc_id(group_id, rs_id))
            if doc is None or not active(doc) or doc.get("changeId") != change_id:
                return False
            if Progress.from_json(doc["progress"]).seq != 0:
                return False
            now = self.clock()
            changes.end(t, doc, now, reason)
            changes.promote(doc, now)
            t.put(LEASES, doc)
        return True

    def done(self, ended: StepEnd) -> None:
        """Hand a step that ended to the listeners (after its transaction)."""
        for listener in self.listeners:
            try:
                listener(ended)
            except OpsmgrError as exc:  # recorded already; the build asks for the step again if it must
                log.warning("the end of step %s of build %s: %s", ended.change_id, ended.build_id, exc.detail)


def _same_step(a: RollingChange, b: RollingChange) -> bool:
    return (a.build_id, a.tasks) == (b.build_id, b.tasks)

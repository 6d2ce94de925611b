"""The maintenance lease of a replica set under a rolling change, as agents take, renew and give it back.

:class:`LeaseDesk` keeps the lease in the set's change document (``maintenance.changes``) and decides with
``maintenance.leases.decide_grant`` over the health the agents report (``maintenance.members``), in one
transaction, so that two agents asking at once cannot both win. An agent's ``AcquireMaintenanceLease`` move
is recorded with the grant; a denial becomes the change's stated reason (the agents only see their request
fail) unless a failure already stops the change. May import ``opsmgr.store`` and ``opsmgr.maintenance``
modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from opsmgr.maintenance import changes
from opsmgr.maintenance.changes import active, lease_state
from opsmgr.maintenance.leases import (
    LEASES,
    Deny,
    Grant,
    LeaseRequest,
    LeaseState,
    decide_grant,
    lease_fields,
    lease_view,
    owner_of,
    purpose_of,
    released,
)
from opsmgr.maintenance.members import SetsPart
from opsmgr.maintenance.moves import Progress
from opsmgr.maintenance.report import ChangeState
from opsmgr.maintenance.rolling import RollingChange
from opsmgr.maintenance.wire import move_from_json


class LeaseDesk(SetsPart):
    """Grants, renewals and releases of the leases of a project's rolling changes (``policy.lease_ttl_s``
    long)."""

    def acquire(
        self,
        group_id: str,
        rs_id: str,
        member: str,
        *,
        change_id: str | None = None,
        move: Mapping[str, Any] | None = None,
        seq: int | None = None,
        refuse: str | None = None,
    ) -> Grant | Deny:
        """Grant ``member`` the lease of ``rs_id`` (``refuse``: a reason to deny outright, e.g. Restoration
        Mode), and record ``move`` (its ``AcquireMaintenanceLease``) in the same transaction."""
        current = self.store.get(LEASES, changes.doc_id(group_id, rs_id))
        if current is None or not active(current):
            return Deny(f"no rolling change of {rs_id} is under way")
        health = self.members.health(group_id, current)
        now = self.clock()
        with self.store.tx() as t:
            doc = t.get(LEASES, changes.doc_id(group_id, rs_id))
            if doc is None or not active(doc):
                return Deny(f"no rolling change of {rs_id} is under way")
            progress = Progress.from_json(doc["progress"])
            change = RollingChange.from_json(doc["change"])
            pending = tuple(m for m in change.tasks if m not in progress.done)
            request = LeaseRequest(
                member, self.policy.lease_ttl_s, pending, owner_of(change), purpose_of(change)
            )
            decision = (
                Deny(refuse) if refuse is not None else decide_grant(lease_state(doc), request, health, now)
            )
            if isinstance(decision, Grant):
                doc.update(lease_fields(LeaseState(decision.lease, member)), leaseDenied=None, updatedAt=now)
                if move is not None:
                    changes.apply_move(doc, change_id, move_from_json(move), seq, now, {})
            else:
                # The status says why the change does not go on (the agents only see the request fail),
                # unless a failure stops it: that stays the reason, with its alert, until it clears.
                doc["leaseDenied"] = {"member": member, "reason": decision.reason, "at": now}
                if (doc.get("status") or {}).get("state") != ChangeState.FAILED.value:
                    changes.fold(doc, changes.denied(member, decision.reason), now)
            t.put(LEASES, doc)
        return decision

    def state_of_lease(self, group_id: str, rs_id: str) -> dict[str, Any]:
        """The lease of ``rs_id`` as :func:`~opsmgr.maintenance.leases.lease_view` shows it."""
        doc = self.store.get(LEASES, changes.doc_id(group_id, rs_id)) or {}
        return lease_view(lease_state(doc), self.clock())

    def renew(self, group_id: str, rs_id: str, member: str, *, owner: str | None = None) -> Grant | Deny:
        """Extend ``member``'s lease for ``owner`` (None: the change under way's owner)."""
        now = self.clock()
        with self.store.tx() as t:
            doc = t.get(LEASES, changes.doc_id(group_id, rs_id))
            state = lease_state(doc) if doc is not None else LeaseState()
            owner = owner or changes.owner(doc)
            if (
                doc is None
                or state.lease is None
                or (state.lease.holder, state.lease.owner) != (member, owner)
            ):
                holder = state.lease.holder if state.lease is not None else "nobody"
                return Deny(f"{member} does not hold the maintenance lease of {rs_id} ({holder} does)")
            lease = replace(state.lease, expires_at=now + self.policy.lease_ttl_s)
            doc.update(lease_fields(LeaseState(lease, member)), updatedAt=now)
            t.put(LEASES, doc)
        return Grant(lease, renewed=True)

    def release(
        self, group_id: str, rs_id: str, member: str | None = None, *, owner: str | None = None
    ) -> bool:
        """Give the lease back (``member`` None: whoever holds it, the operator's force release; ``owner``
        None: the change under way's)."""
        with self.store.tx() as t:
            doc = t.get(LEASES, changes.doc_id(group_id, rs_id))
            if doc is None:
                return False
            state = lease_state(doc)
            owner = owner or changes.owner(doc)
            if member is None and state.lease is not None:
                member, owner = state.lease.holder, state.lease.owner
            after = released(state, member, owner) if member is not None else None
            if after is None:
                return False
            doc.update(lease_fields(after), updatedAt=self.clock())
            t.put(LEASES, doc)
        return True

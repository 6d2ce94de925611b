"""The maintenance lease: one per replica set, held by one member at a time, granted by the server.

An agent asks for the lease before its member goes down for maintenance (``AcquireMaintenanceLease``),
renews it while the member is out and releases it once the member is back and caught up. The grant is a pure
decision, :func:`decide_grant`, over the lease state, the request and the health every agent reported for
the set's members:

- a live lease held by another member is never shared, so at most one member is down for maintenance;
- a lease whose holder's agent died simply expires, but the next member is NOT granted one while the member
  that held it (expired or released) is still unhealthy: an expired lease says nothing about the member;
- the primary is granted the lease only after every other member still to do (secondaries first);
- no lease while another voting member is unhealthy, or when the healthy votes left without the requester
  would not be a majority.

Two procedures take members out and so share the lease: a config's rolling change (owner :data:`ROLLING`)
and the supervised unique index build, whose member steps are one-member rolling changes of their own
(owner ``uniqueIndexBuild:<id>``, see :func:`owner_of`). A lease is its owner's: a request from another
owner, even for the same member, is a request from somebody else, and is denied with the holder's
``purpose`` ("a unique index build ... is under way") as the reason.

:class:`LeaseService` keeps one document per replica set in the application database's
``maintenance_leases`` collection: the lease, the last holder, and the rolling change under way with its
shared :class:`~opsmgr.maintenance.procedure.Progress`. May import ``opsmgr.errors``, ``opsmgr.store`` and
``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ConfigDict

from opsmgr.maintenance.moves import Progress
from opsmgr.maintenance.rolling import RollingChange
from opsmgr.store.engine import Store
from opsmgr.store.records import Stored

LEASES = "maintenance_leases"
DEFAULT_TTL_S = 120.0
MAX_TTL_S = 3600.0
_HEALTHY_STATES = frozenset({"PRIMARY", "SECONDARY", "ARBITER"})
ROLLING = "rolling"  # the owner of the leases a rolling change takes


def build_owner(build_id: str) -> str:
    """The owner of the leases a supervised unique index build takes."""
    return f"uniqueIndexBuild:{build_id}"


def owner_of(change: RollingChange) -> str:
    """Who owns the leases ``change`` takes: a unique index build's member step is the build's."""
    return build_owner(change.build_id) if change.build_id else ROLLING


def purpose_of(change: RollingChange) -> str:
    """What the others are told while ``change`` holds its replica set's lease."""
    if change.build_id is None:
        return f"a rolling change of {change.rs_id} is under way"
    entry = change.index_builds[0] if change.index_builds else {}
    ns = f"{entry.get('dbName')}.{entry.get('collectionName')}"
    return f"a unique index build {change.build_id} on {ns} is under way"


@dataclass(frozen=True)
class Lease:
    """``holder``: the member out (or going out); ``owner``: the procedure that took it; ``purpose``: what
    the others are told while it is held."""

    holder: str
    granted_at: float
    expires_at: float
    owner: str = ROLLING
    purpose: str = ""

    def live(self, now: float) -> bool:
        return now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "grantedAt": self.granted_at,
            "expiresAt": self.expires_at,
            "owner": self.owner,
            "purpose": self.purpose,
        }


class StoredLease(Stored):
    """A lease as stored (``Lease.to_json``); leases stored before owners existed have neither owner nor
    purpose."""

    holder: str
    granted_at: float
    expires_at: float
    owner: str | None = None
    purpose: str | None = None

    def lease(self) -> Lease:
        return Lease(self.holder, self.granted_at, self.expires_at, self.owner or ROLLING, self.purpose or "")


class StoredLeaseFields(Stored):
    """The lease part of a replica set's document (the rest is the change's: ``maintenance.changes``)."""

    model_config = ConfigDict(extra="ignore")

    lease: StoredLease | None = None
    last_holder: str | None = None


@dataclass(frozen=True)
class LeaseState:
    """``lease``: the lease granted last, live or expired (None once released); ``last_holder``: who held
    the lease most recently, however it ended."""

    lease: Lease | None = None
    last_holder: str | None = None


def lease_fields(state: LeaseState) -> dict[str, Any]:
    """The lease part of a replica set's document for ``state`` (the holder of a lease is its last holder)."""
    lease = state.lease
    return {
        "lease": lease.to_json() if lease is not None else None,
        "lastHolder": lease.holder if lease is not None else state.last_holder,
    }


def lease_state(doc: Mapping[str, Any]) -> LeaseState:
    """The lease part of a replica set's stored document; a malformed one is a StoreError naming the field."""
    fields = StoredLeaseFields.parse_stored(doc, f"the stored maintenance lease of {doc.get('_id', '?')!r}")
    return LeaseState(fields.lease.lease() if fields.lease is not None else None, fields.last_holder)


@dataclass(frozen=True)
class LeaseRequest:
    """``pending``: the members of the rolling change still to do, the requester included; ``owner`` and
    ``purpose`` as in :class:`Lease`."""

    member: str
    ttl_s: float = DEFAULT_TTL_S
    pending: tuple[str, ...] = ()
    owner: str = ROLLING
    purpose: str = ""


UNREPORTED = "unreported"  # the state of a member no agent has ever reported


@dataclass(frozen=True)
class MemberHealth:
    """A member of the set as its agent last reported it; ``fresh``: that report is recent (a stale or
    missing one says nothing of the member)."""

    name: str
    healthy: bool
    state: str = "UNKNOWN"
    votes: int = 1
    primary: bool = False
    fresh: bool = True


@dataclass(frozen=True)
class Grant:
    lease: Lease
    renewed: bool = False


@dataclass(frozen=True)
class Deny:
    reason: str


def decide_grant(
    state: LeaseState, request: LeaseRequest, members_health: Sequence[MemberHealth], now: float
) -> Grant | Deny:
    """Whether ``request.member`` may hold the lease of its replica set from ``now``."""
    member, ttl = request.member, min(max(request.ttl_s, 1.0), MAX_TTL_S)
    lease = state.lease
    own = lease is not None and lease.holder == member and lease.owner == request.owner
    if lease is not None and own:
        # Its own lease, live or expired: nobody else took it meanwhile, so it may go on.
        return Grant(replace(lease, expires_at=now + ttl), renewed=True)
    if lease is not None and lease.live(now):
        held = f"{lease.holder} holds the maintenance lease for {lease.expires_at - now:.0f} s more"
        return Deny(f"{lease.purpose}: {held}" if lease.purpose else held)
    health = {h.name: h for h in members_health}
    previous = lease.holder if lease is not None else state.last_holder
    # A previous holder no longer in the set (it left) cannot hold anything up. Its own member under
    # another owner (a build's expired lease) is somebody else's outage all the same.
    other = previous != member or lease is not None
    if previous in health and other and not _healthy(health.get(previous)):
        how = "whose lease expired" if lease is not None else "which held the lease last"
        return Deny(
            f"{previous}, {how}, is still {health[previous].state}: no other member goes down "
            "until it is healthy again"
        )
    requester = health.get(member)
    if requester is None:
        return Deny(f"{member} is not a member of this replica set")
    if requester.primary:
        first = [p for p in request.pending if p != member]
        if first:
            return Deny(f"the primary {member} goes last: {', '.join(first)} still to do")
    down = [h for h in members_health if h.name != member and h.votes > 0 and not h.healthy]
    if down:
        return Deny(
            "another voting member is unavailable: " + ", ".join(f"{h.name} ({h.state})" for h in down)
        )
    total = sum(h.votes for h in members_health)
    left = sum(h.votes for h in members_health if h.name != member and h.healthy)
    if left < total // 2 + 1:
        return Deny(f"without {member}, {left} of {total} votes would be healthy: not a majority")
    return Grant(Lease(member, now, now + ttl, request.owner, request.purpose))


def _healthy(health: MemberHealth | None) -> bool:
    return health is not None and health.healthy


def released(state: LeaseState, member: str, owner: str = ROLLING) -> LeaseState | None:
    """The state once ``member`` gives its lease back; None when it does not hold it (for ``owner``)."""
    if state.lease is None or state.lease.holder != member or state.lease.owner != owner:
        return None
    return LeaseState(None, member)


def members_health(
    agent_statuses: Iterable[Mapping[str, Any]],
    votes: Mapping[str, int],
    now_ms: int,
    stale_after_ms: int,
) -> list[MemberHealth]:
    """The health of each member (``votes``: process name -> votes, from the goal config) from the agents'
    status documents (``processes[].name`` and ``.observed`` with ``running`` and ``replicaStateName``, and
    ``receivedAt``). A member whose last report is older than ``stale_after_ms`` (its agent may be dead),
    or that no agent reports, is unhealthy."""
    seen: dict[str, tuple[bool, str]] = {}
    for status in agent_statuses:
        fresh = now_ms - int(status.get("receivedAt", 0)) <= stale_after_ms
        for entry in status.get("processes", []):
            observed = entry.get("observed") or {}
            fallback = "UNKNOWN" if observed.get("running") else "DOWN"
            state = str(observed.get("replicaStateName") or fallback)
            seen[entry["name"]] = (fresh, state if fresh else f"{state}, report stale")
    out = []
    for name, vote in votes.items():
        fresh, state = seen.get(name, (False, UNREPORTED))
        healthy = fresh and state in _HEALTHY_STATES
        out.append(MemberHealth(name, healthy, state, vote, healthy and state == "PRIMARY", fresh))
    return out


class LeaseService:
    """Leases and rolling-change progress of replica sets, one document per ``(group, replica set)``."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    @staticmethod
    def _id(group_id: str, rs_id: str) -> str:
        return f"{group_id}:{rs_id}"

    def _doc(self, doc: Mapping[str, Any] | None, group_id: str, rs_id: str) -> dict[str, Any]:
        if doc is not None:
            return dict(doc)
        return {"_id": self._id(group_id, rs_id), "groupId": group_id, "rsId": rs_id, "lease": None}

    @contextmanager
    def _editing(self, group_id: str, rs_id: str) -> Iterator[dict[str, Any]]:
        """The replica set's document inside a write transaction; written back if the block changed it."""
        with self.store.tx() as t:
            doc = self._doc(t.get(LEASES, self._id(group_id, rs_id)), group_id, rs_id)
            before = dict(doc)
            yield doc
            if doc != before:
                doc["updatedAt"] = self.clock()
                t.put(LEASES, doc)

    def state(self, group_id: str, rs_id: str) -> LeaseState:
        return lease_state(self._doc(self.store.get(LEASES, self._id(group_id, rs_id)), group_id, rs_id))

    def acquire(
        self,
        group_id: str,
        rs_id: str,
        member: str,
        *,
        health: Sequence[MemberHealth],
        pending: Sequence[str] = (),
        ttl_s: float = DEFAULT_TTL_S,
    ) -> Grant | Deny:
        """Decide and persist in one transaction, so that two agents asking at once cannot both win."""
        request = LeaseRequest(member, ttl_s, tuple(pending))
        with self._editing(group_id, rs_id) as doc:
            decision = decide_grant(lease_state(doc), request, health, self.clock())
            if isinstance(decision, Grant):
                doc.update(lease_fields(LeaseState(decision.lease, member)))
        return decision

    def renew(self, group_id: str, rs_id: str, member: str, *, ttl_s: float = DEFAULT_TTL_S) -> Grant | Deny:
        """Extend the holder's lease; anyone else is denied."""
        with self._editing(group_id, rs_id) as doc:
            state = lease_state(doc)
            if state.lease is None or state.lease.holder != member:
                holder = state.lease.holder if state.lease is not None else "nobody"
                return Deny(f"{member} does not hold the maintenance lease of {rs_id} ({holder} does)")
            lease = replace(state.lease, expires_at=self.clock() + min(max(ttl_s, 1.0), MAX_TTL_S))
            doc.update(lease_fields(LeaseState(lease, member)))
        return Grant(lease, renewed=True)

    def release(self, group_id: str, rs_id: str, member: str) -> bool:
        """Give the lease back; False when ``member`` does not hold it (released twice, or expired and
        taken by another)."""
        with self._editing(group_id, rs_id) as doc:
            state = released(lease_state(doc), member)
            if state is None:
                return False
            doc.update(lease_fields(state))
        return True

    def progress(self, group_id: str, rs_id: str, change_id: str) -> Progress:
        """The progress of rolling change ``change_id``; a fresh one when another change was under way."""
        doc = self.store.get(LEASES, self._id(group_id, rs_id))
        if doc is None or doc.get("changeId") != change_id or not doc.get("progress"):
            return Progress()
        return Progress.from_json(doc["progress"])

    def save_progress(
        self, group_id: str, rs_id: str, change_id: str, change: RollingChange, progress: Progress
    ) -> bool:
        """Store ``progress`` unless a newer one (higher ``seq``) of the same change is already there."""
        with self._editing(group_id, rs_id) as doc:
            stored_seq = int((doc.get("progress") or {}).get("seq", -1))
            if doc.get("changeId") == change_id and stored_seq >= progress.seq:
                return False
            doc.update(changeId=change_id, change=change.to_json(), progress=progress.to_json())
        return True

    def view(self, group_id: str, rs_id: str) -> dict[str, Any]:
        """The lease part of a replica set's maintenance status (see ``maintenance.report.status_view``)."""
        doc = self._doc(self.store.get(LEASES, self._id(group_id, rs_id)), group_id, rs_id)
        return lease_view(lease_state(doc), self.clock())

    def documents(self, group_id: str) -> list[dict[str, Any]]:
        return self.store.find(LEASES, groupId=group_id)


def lease_view(state: LeaseState, now: float) -> dict[str, Any]:
    lease = state.lease
    return {
        "holder": lease.holder if lease is not None and lease.live(now) else None,
        "expiresInSecs": round(lease.expires_at - now, 1) if lease is not None and lease.live(now) else None,
        "expiredHolder": lease.holder if lease is not None and not lease.live(now) else None,
        "lastHolder": state.last_holder,
        "owner": lease.owner if lease is not None else None,
        "purpose": lease.purpose if lease is not None and lease.purpose else None,
    }

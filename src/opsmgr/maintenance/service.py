"""The server's side of rolling maintenance: which rolling changes are under way, what agents need to carry
them out, and what operators see of them.

:class:`MaintenanceService` keeps, per replica set, one document in the application database's
``maintenance_leases`` collection (the lease and the shared progress, as ``maintenance.leases`` lays it out)
with the rolling change under way, its :class:`~opsmgr.maintenance.report.ChangeStatus`, its event timeline
and the config it started from; changes that ended are copied to ``maintenance_changes`` for the history.

- :meth:`register` runs inside the transaction of an automation config PUT (a hook of
  ``AutomationService.put_config``): one rolling change per replica set that needs a roll. If one is already
  under way for that set, the change is recomputed from the config it started from and members whose tasks
  are unchanged keep their progress.
- A supervised unique index build's member step is a one-member rolling change too, owned by the build
  (``RollingChange.build_id``), registered with the set's lease by :meth:`acquire_for`. One change per set at
  a time: a step is refused while a config's change is under way (the denial names it), and a config PUT
  while a step is under way registers its change QUEUED, begun when the step ends. A step that ends DONE is
  handed to the ``on_step_done`` listeners (the build records its outcome).
- Agents read :meth:`agent_view` (the change, the progress, the lease, and what the other agents report of
  their members), take the lease with :meth:`acquire` (health from the agents' reported status), and report
  each move carried out with :meth:`record`: the server applies ``procedure.record`` itself, so agents never
  overwrite each other's progress. :meth:`report` folds an agent's decision into the status
  (``report.observe``), raises or resolves the ``MAINTENANCE_MEMBER_FAILED`` alert, keeps the events, and on
  Done produces the :class:`~opsmgr.maintenance.report.RollingReport`.

The knobs the agents follow (:class:`~opsmgr.maintenance.snapshot.Policy`) come from the server, so one
setting governs every agent of a set. May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.alerts``,
``opsmgr.automation.config`` (pure accessors) and ``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opsmgr.alerts import AlertService
from opsmgr.automation.config import map_secrets, process_port, processes_by_name
from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.errors import Conflict, InvalidInput, NotFound, OpsmgrError
from opsmgr.maintenance.leases import (
    LEASES,
    ROLLING,
    Deny,
    Grant,
    Lease,
    LeaseRequest,
    LeaseState,
    decide_grant,
    lease_view,
    members_health,
    owner_of,
    purpose_of,
    released,
)
from opsmgr.maintenance.procedure import (
    WAITS,
    ArbiterPhase,
    BlockCause,
    Blocked,
    Decision,
    Done,
    Move,
    MoveName,
    Progress,
    record,
    temporary_arbiter_name,
)
from opsmgr.maintenance.report import (
    ALERT_MEMBER_FAILED,
    ChangeState,
    ChangeStatus,
    Event,
    EventKind,
    change_view,
    events_for_move,
    observe,
    queued_view,
    status_view,
    summarize,
)
from opsmgr.maintenance.rolling import (
    UNIQUE_INDEX_TASKS,
    MaintenanceOptions,
    RollingChange,
    UniqueIndexTask,
    maintenance_options,
    rolling_changes,
)
from opsmgr.maintenance.snapshot import Policy
from opsmgr.maintenance.wire import (
    decision_from_json,
    move_from_json,
    options_to_json,
    policy_to_json,
)
from opsmgr.store.engine import Store, Txn, new_id

log = logging.getLogger(__name__)

HISTORY = "maintenance_changes"
STALE_REPORT_MS = 30_000  # an agent silent this long says nothing about its members' health
# While the primary's agent reports, the others' decisions (from a member cut off, say) are not folded in.
PRIMARY_VOICE_S = 5.0
LEASE_DENIAL_S = 10.0  # an agent still asking for the lease this soon after a denial is still denied
MAX_EVENTS = 2000
MAX_REFUSAL = 2000


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


def alert_key(rs_id: str) -> str:
    return f"maintenance:{rs_id}:member-failed"


def _rs(config: Mapping[str, Any], rs_id: str | None) -> dict[str, Any] | None:
    return next((dict(r) for r in config.get("replicaSets", []) if r["_id"] == rs_id), None)


class MaintenanceService:
    """Rolling changes of a project's replica sets, kept in the application database.

    ``goal`` returns a project's goal automation config (secrets in the clear), ``statuses`` the status
    documents its agents last reported; ``encrypt``/``decrypt`` protect the secrets of the config a change
    started from, as the automation config's own are.
    """

    def __init__(
        self,
        store: Store,
        alerts: AlertService,
        *,
        goal: Callable[[str], dict[str, Any]],
        statuses: Callable[[str], list[dict[str, Any]]],
        encrypt: Callable[[str], str],
        decrypt: Callable[[str], str],
        policy: Policy = Policy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.goal = goal
        self.statuses = statuses
        self.encrypt = encrypt
        self.decrypt = decrypt
        self.policy = policy
        self.clock = clock
        self.on_step_done: list[Callable[[StepEnd], None]] = []

    @staticmethod
    def _id(group_id: str, rs_id: str) -> str:
        return f"{group_id}:{rs_id}"

    # --- registration -------------------------------------------------------------------------------------

    def register(
        self, t: Txn, group_id: str, old: Mapping[str, Any], new: Mapping[str, Any], version: int
    ) -> list[str]:
        """Record the rolling changes going from ``old`` to ``new`` needs, inside the PUT's transaction
        ``t``; returns the replica sets whose change was registered or recomputed."""
        now = self.clock()
        touched = []
        sets = {rs["_id"] for rs in new.get("replicaSets", [])}
        for doc in t.find(LEASES, groupId=group_id):
            if doc["rsId"] not in sets and _active(doc):
                doc["queued"] = None
                self._end(t, doc, now, f"version {version} no longer has replica set {doc['rsId']}: dropped")
                t.put(LEASES, doc)
                touched.append(doc["rsId"])
        for rs_id, fresh in rolling_changes(old, new).items():
            doc = t.get(LEASES, self._id(group_id, rs_id)) or {
                "_id": self._id(group_id, rs_id),
                "groupId": group_id,
                "rsId": rs_id,
                "lease": None,
            }
            if _active(doc) and _owner(doc) != ROLLING:
                self._queue(doc, old, new, rs_id, version, now)
            elif _active(doc):
                start = map_secrets(copy.deepcopy(doc["startedFrom"]), self.decrypt)
                change = rolling_changes(start, new).get(rs_id)
                if change is None or not change.needs_roll:
                    self._end(t, doc, now, f"version {version} needs no rolling restart any more: superseded")
                    t.put(LEASES, doc)
                    touched.append(rs_id)
                    continue
                before = RollingChange.from_json(doc["change"])
                progress = Progress.from_json(doc["progress"])
                kept = tuple(m for m in progress.done if change.tasks.get(m) == before.tasks.get(m))
                doc.update(
                    change=change.to_json(),
                    progress=replace(progress, done=kept).to_json(),
                    goalVersion=version,
                    revision=int(doc.get("revision", 0)) + 1,
                )
                log.info("rolling change of %s recomputed for version %s", rs_id, version)
            elif fresh.needs_roll:
                self._begin(doc, fresh, map_secrets(copy.deepcopy(dict(old)), self.encrypt), version, now)
                log.info("rolling change of %s registered for version %s: %s", rs_id, version, fresh.reasons)
            else:
                continue
            doc["updatedAt"] = now
            t.put(LEASES, doc)
            touched.append(rs_id)
        return touched

    def _begin(
        self,
        doc: dict[str, Any],
        change: RollingChange,
        started_from: dict[str, Any] | None,
        version: int | None,
        now: float,
        change_id: str | None = None,
    ) -> None:
        """``change`` becomes the one under way in ``doc`` (``started_from``: the config it started from, its
        secrets encrypted; None for a build's member step)."""
        doc.update(
            changeId=change_id or new_id(),
            change=change.to_json(),
            progress=Progress().to_json(),
            status=ChangeStatus(change.rs_id).to_json(),
            events=[],
            lastPrimary=None,
            extras={},
            report=None,
            revision=0,
            startedFrom=started_from,
            goalVersion=version,
            createdAt=now,
            doneAt=None,
            refused=None,
            leaseDenied=None,
            updatedAt=now,
            **_without_own_lease(doc, owner_of(change), forget=True),
        )

    def _queue(
        self,
        doc: dict[str, Any],
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        rs_id: str,
        version: int,
        now: float,
    ) -> None:
        """A config's change of a set whose build step is under way waits for the step to end; a later PUT
        recomputes it from the config it first started from (None once nothing needs a roll)."""
        queued = doc.get("queued")
        started = queued["startedFrom"] if queued else map_secrets(copy.deepcopy(dict(old)), self.encrypt)
        change = rolling_changes(map_secrets(copy.deepcopy(started), self.decrypt), new).get(rs_id)
        if change is None or not change.needs_roll:
            doc["queued"] = None
            return
        doc["queued"] = {
            "changeId": queued["changeId"] if queued else new_id(),
            "change": change.to_json(),
            "startedFrom": started,
            "goalVersion": version,
            "createdAt": queued["createdAt"] if queued else now,
        }
        log.info("rolling change of %s for version %s queued behind %s", rs_id, version, _purpose(doc))

    def _promote(self, doc: dict[str, Any], now: float) -> None:
        """The change that waited for the one that just ended begins."""
        queued = doc.pop("queued", None)
        if queued:
            change = RollingChange.from_json(queued["change"])
            self._begin(doc, change, queued["startedFrom"], queued["goalVersion"], now, queued["changeId"])
            log.info("rolling change of %s for version %s begins", doc["rsId"], queued["goalVersion"])

    def _end(self, t: Txn, doc: dict[str, Any], now: float, reason: str) -> None:
        """The change is over (done or superseded): its lease goes, its figures and history are kept."""
        status = ChangeStatus.from_json(doc["rsId"], doc.get("status") or {})
        done = replace(status, state=ChangeState.DONE, reason=reason, failed_member=None, since=now)
        events = [*doc.get("events", []), Event(now, EventKind.DONE).to_json()]
        doc.update(
            status=done.to_json(),
            events=events,
            report=summarize(Event.from_json(e) for e in events).to_json(),
            doneAt=now,
            updatedAt=now,
            **_without_own_lease(doc, _owner(doc)),
        )
        t.put(HISTORY, {**_history(doc), "_id": doc["changeId"]})
        t.notify(WORK_CHANGED, str(doc["groupId"]))

    # --- reading ------------------------------------------------------------------------------------------

    def _doc(self, group_id: str, rs_id: str) -> dict[str, Any] | None:
        return self.store.get(LEASES, self._id(group_id, rs_id))

    def active_doc(self, group_id: str, rs_id: str) -> dict[str, Any] | None:
        doc = self._doc(group_id, rs_id)
        return doc if doc is not None and _active(doc) else None

    def _member_names(self, goal: Mapping[str, Any], doc: Mapping[str, Any]) -> dict[str, str]:
        """``hostname:port`` -> process name for the goal config, the config the change started from (members
        leaving) and the temporary arbiter."""
        names: dict[str, str] = {}
        start = doc.get("startedFrom") or {}
        for config in (start, goal):
            for p in config.get("processes", []):
                names[f"{p['hostname']}:{process_port(p)}"] = p["name"]
        rs = _rs(goal, doc["rsId"])
        arbiter = maintenance_options(rs).temporary_arbiter if rs is not None else None
        if arbiter is not None:
            names[f"{arbiter.hostname}:{arbiter.port}"] = temporary_arbiter_name(doc["rsId"])
        return names

    def _members(
        self, group_id: str, goal: Mapping[str, Any], doc: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Each member of the set (goal and leaving) as its agent last reported it, with what the agents
        measured for the maintenance (oplog window, connections)."""
        start = doc.get("startedFrom") or {}
        rs_id = doc["rsId"]
        change = RollingChange.from_json(doc["change"])
        entries: dict[str, dict[str, Any]] = {}
        for config, set_id in ((start, change.old_rs_id), (goal, rs_id)):
            rs = _rs(config, set_id)
            procs = processes_by_name(config)
            for m in rs["members"] if rs is not None else []:
                proc = procs.get(m["host"])
                if proc is None:
                    continue
                entries[m["host"]] = {
                    "name": m["host"],
                    "host": f"{proc['hostname']}:{process_port(proc)}",
                    "hostname": proc["hostname"],
                    "votes": int(m.get("votes", 1)),
                    "priority": float(m.get("priority", 1)),
                    "arbiterOnly": bool(m.get("arbiterOnly", False)),
                    "hidden": bool(m.get("hidden", False)),
                }
        now_ms = int(self.clock() * 1000)
        reported: dict[str, dict[str, Any]] = {}
        fresh: dict[str, bool] = {}
        for status in self.statuses(group_id):
            is_fresh = now_ms - int(status.get("receivedAt", 0)) <= STALE_REPORT_MS
            for p in status.get("processes", []):
                reported[p["name"]] = p.get("observed") or {}
                fresh[p["name"]] = is_fresh
        extras = doc.get("extras") or {}
        out = []
        for name, entry in entries.items():
            observed = reported.get(name, {})
            state = observed.get("replicaStateName") if fresh.get(name) else None
            measured = extras.get(name) or {}
            out.append(
                {
                    **entry,
                    "state": state or ("DOWN" if not observed.get("running") else "UNKNOWN"),
                    "health": bool(state),
                    "optimeTs": observed.get("optimeTs") or 0,
                    "connections": measured.get("connections", observed.get("connections")),
                    "oplogWindowSecs": measured.get("oplogWindowSecs"),
                }
            )
        return out

    def agent_view(self, group_id: str, rs_id: str) -> dict[str, Any]:
        """What an agent of ``rs_id`` needs on each cycle; ``active`` False when no change is under way."""
        doc = self._doc(group_id, rs_id)
        if doc is None or not _active(doc):
            return {"replicaSet": rs_id, "active": False, "state": _state(doc)}
        goal = self.goal(group_id)
        rs = _rs(goal, rs_id)
        options = maintenance_options(rs) if rs is not None else MaintenanceOptions()
        now = self.clock()
        return {
            "replicaSet": rs_id,
            "active": True,
            "changeId": doc["changeId"],
            "goalVersion": doc.get("goalVersion"),
            "owner": _owner(doc),
            "change": doc["change"],
            "progress": doc["progress"],
            "status": doc.get("status"),
            "lease": {**lease_view(_lease_state(doc), now), "raw": doc.get("lease")},
            "options": options_to_json(options),
            "policy": policy_to_json(self.policy),
            "names": self._member_names(goal, doc),
            "members": self._members(group_id, goal, doc),
            "now": now,
        }

    # --- leases -------------------------------------------------------------------------------------------

    def _health(self, group_id: str, doc: Mapping[str, Any]) -> list[Any]:
        members = self._members(group_id, self.goal(group_id), doc)
        return members_health(
            self.statuses(group_id),
            {m["name"]: m["votes"] for m in members},
            int(self.clock() * 1000),
            STALE_REPORT_MS,
        )

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
        current = self._doc(group_id, rs_id)
        if current is None or not _active(current):
            return Deny(f"no rolling change of {rs_id} is under way")
        health = self._health(group_id, current)
        now = self.clock()
        with self.store.tx() as t:
            doc = t.get(LEASES, self._id(group_id, rs_id))
            if doc is None or not _active(doc):
                return Deny(f"no rolling change of {rs_id} is under way")
            progress = Progress.from_json(doc["progress"])
            change = RollingChange.from_json(doc["change"])
            pending = tuple(m for m in change.tasks if m not in progress.done)
            request = LeaseRequest(
                member, self.policy.lease_ttl_s, pending, owner_of(change), purpose_of(change)
            )
            decision = (
                Deny(refuse) if refuse is not None else decide_grant(_lease_state(doc), request, health, now)
            )
            if isinstance(decision, Grant):
                doc.update(lease=decision.lease.to_json(), lastHolder=member, leaseDenied=None, updatedAt=now)
                if move is not None:
                    self._apply(doc, change_id, move_from_json(move), seq, now, {})
            else:
                # The status says why the change does not go on (the agents only see the request fail),
                # unless a failure stops it: that stays the reason, with its alert, until it clears.
                doc["leaseDenied"] = {"member": member, "reason": decision.reason, "at": now}
                if (doc.get("status") or {}).get("state") != ChangeState.FAILED.value:
                    self._observe(doc, self._denied(member, decision.reason), now)
            t.put(LEASES, doc)
        return decision

    @staticmethod
    def _denied(member: str, reason: str) -> Blocked:
        return Blocked(
            f"the maintenance lease for {member} is denied: {reason}", BlockCause.PREFLIGHT, member
        )

    @staticmethod
    def _observe(doc: dict[str, Any], decision: Decision, now: float) -> list[tuple[bool, str, str | None]]:
        """Fold ``decision`` into the status of ``doc``; returns the alert facts (open, reason, member)."""
        seen = observe(ChangeStatus.from_json(doc["rsId"], doc.get("status") or {}), decision, now)
        doc["status"] = seen.status.to_json()
        doc["events"] = [
            *doc.get("events", []),
            *(e.to_json() for e in seen.events if e.kind is not EventKind.DONE),
        ]
        return [(a.open, a.reason, a.member) for a in seen.alerts]

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
        health = self._set_health(group_id, rs_id)
        version = self.goal(group_id).get("version") if change is not None else None
        now = self.clock()
        with self.store.tx() as t:
            doc = t.get(LEASES, self._id(group_id, rs_id)) or {
                "_id": self._id(group_id, rs_id),
                "groupId": group_id,
                "rsId": rs_id,
                "lease": None,
            }
            under_way = RollingChange.from_json(doc["change"]) if _active(doc) else None
            if change is not None and under_way is not None and not _same_step(under_way, change):
                return Deny(
                    f"{purpose_of(under_way)} ({', '.join(under_way.tasks)}): one change per replica set at "
                    "a time"
                )
            request = LeaseRequest(member, self.policy.lease_ttl_s, (member,), owner, purpose)
            decision = (
                Deny(refuse) if refuse is not None else decide_grant(_lease_state(doc), request, health, now)
            )
            if isinstance(decision, Grant):
                if change is not None and under_way is None:
                    self._begin(doc, change, None, version, now)
                    t.notify(WORK_CHANGED, group_id)
                    log.info("%s registered as a one-member rolling change of %s", purpose, rs_id)
                doc.update(lease=decision.lease.to_json(), lastHolder=member, updatedAt=now)
                t.put(LEASES, doc)
        return decision

    def withdraw(self, group_id: str, rs_id: str, change_id: str, reason: str) -> bool:
        """End change ``change_id`` if none of its moves is carried out yet (a build's step that the build no
        longer needs); False when it has begun (it runs to its end) or is not under way."""
        with self.store.tx() as t:
            doc = t.get(LEASES, self._id(group_id, rs_id))
            if doc is None or not _active(doc) or doc.get("changeId") != change_id:
                return False
            if Progress.from_json(doc["progress"]).seq != 0:
                return False
            now = self.clock()
            self._end(t, doc, now, reason)
            self._promote(doc, now)
            t.put(LEASES, doc)
        return True

    def _set_health(self, group_id: str, rs_id: str) -> list[Any]:
        doc = self.active_doc(group_id, rs_id)
        if doc is not None:
            return self._health(group_id, doc)
        rs = _rs(self.goal(group_id), rs_id) or {}
        return members_health(
            self.statuses(group_id),
            {m["host"]: int(m.get("votes", 1)) for m in rs.get("members", [])},
            int(self.clock() * 1000),
            STALE_REPORT_MS,
        )

    def state_of_lease(self, group_id: str, rs_id: str) -> dict[str, Any]:
        """The lease of ``rs_id`` as :func:`~opsmgr.maintenance.leases.lease_view` shows it."""
        doc = self._doc(group_id, rs_id) or {}
        return lease_view(_lease_state(doc), self.clock())

    def renew(self, group_id: str, rs_id: str, member: str, *, owner: str | None = None) -> Grant | Deny:
        """Extend ``member``'s lease for ``owner`` (None: the change under way's owner)."""
        now = self.clock()
        with self.store.tx() as t:
            doc = t.get(LEASES, self._id(group_id, rs_id))
            state = _lease_state(doc) if doc is not None else LeaseState()
            owner = owner or _owner(doc)
            if (
                doc is None
                or state.lease is None
                or (state.lease.holder, state.lease.owner) != (member, owner)
            ):
                holder = state.lease.holder if state.lease is not None else "nobody"
                return Deny(f"{member} does not hold the maintenance lease of {rs_id} ({holder} does)")
            lease = replace(state.lease, expires_at=now + self.policy.lease_ttl_s)
            doc.update(lease=lease.to_json(), lastHolder=member, updatedAt=now)
            t.put(LEASES, doc)
        return Grant(lease, renewed=True)

    def release(
        self, group_id: str, rs_id: str, member: str | None = None, *, owner: str | None = None
    ) -> bool:
        """Give the lease back (``member`` None: whoever holds it, the operator's force release; ``owner``
        None: the change under way's)."""
        with self.store.tx() as t:
            doc = t.get(LEASES, self._id(group_id, rs_id))
            if doc is None:
                return False
            state = _lease_state(doc)
            owner = owner or _owner(doc)
            if member is None and state.lease is not None:
                member, owner = state.lease.holder, state.lease.owner
            after = released(state, member, owner) if member is not None else None
            if after is None:
                return False
            doc.update(lease=None, lastHolder=after.last_holder, updatedAt=self.clock())
            t.put(LEASES, doc)
        return True

    # --- progress and reports -----------------------------------------------------------------------------

    def _apply(
        self,
        doc: dict[str, Any],
        change_id: str | None,
        move: Move,
        seq: int | None,
        now: float,
        extra: Mapping[str, Any],
    ) -> None:
        """Record ``move`` in ``doc`` (in the caller's transaction), with its events."""
        if change_id is not None and change_id != doc.get("changeId"):
            raise Conflict(f"rolling change {change_id} of {doc['rsId']} is no longer the one under way")
        progress = Progress.from_json(doc["progress"])
        starts_unit = bool(move.plan) and move.plan != progress.steps
        if starts_unit and seq is not None and seq != progress.seq:
            raise Conflict(
                f"{move.name.value} for {move.member} was decided on progress {seq}, which has moved on to "
                f"{progress.seq}: decide again"
            )
        at = float(extra.get("at") or now)
        connections = extra.get("connections")
        events = events_for_move(move, progress, at, connections=connections)
        after = record(progress, move, now)
        if after is progress:
            return
        if move.name is MoveName.RELEASE_LEASE:
            state = released(_lease_state(doc), move.member, _owner(doc))
            if state is not None:
                doc.update(lease=None, lastHolder=state.last_holder)
        doc["progress"] = after.to_json()
        doc["events"] = [*doc.get("events", []), *(e.to_json() for e in events)][-MAX_EVENTS:]
        doc["updatedAt"] = now

    def record(
        self,
        group_id: str,
        rs_id: str,
        change_id: str,
        move: Mapping[str, Any],
        *,
        seq: int | None = None,
        at: float | None = None,
        connections: int | None = None,
        refused: str | None = None,
    ) -> dict[str, Any]:
        """An agent carried ``move`` out (started at ``at``; ``connections``: the primary's client
        connections just before a step-down; ``refused``: a unique index task's member refused the index,
        in its words). Returns the progress as it now stands."""
        parsed = move_from_json(move)
        with self.store.tx() as t:
            doc = t.get(LEASES, self._id(group_id, rs_id))
            if doc is None or not _active(doc):
                raise Conflict(f"no rolling change of {rs_id} is under way")
            self._apply(doc, change_id, parsed, seq, self.clock(), {"at": at, "connections": connections})
            if refused and parsed.name is MoveName.PERFORM_TASK and _owner(doc) != ROLLING:
                doc["refused"] = refused[:MAX_REFUSAL]
            t.put(LEASES, doc)
        return dict(doc["progress"])

    def report(
        self,
        group_id: str,
        rs_id: str,
        change_id: str,
        *,
        decision: Mapping[str, Any] | None = None,
        events: Sequence[Mapping[str, Any]] = (),
        extras: Mapping[str, Mapping[str, Any]] | None = None,
        from_primary: bool = False,
    ) -> dict[str, Any]:
        """Fold an agent's decision, primary sightings and measurements into the change; returns its
        status. ``from_primary``: the reporting agent runs the primary, whose view of the set prevails."""
        parsed = decision_from_json(decision) if decision is not None else None
        seen = [_event(e) for e in events]
        now = self.clock()
        alerts: list[tuple[bool, str, str | None]] = []
        with self.store.tx() as t:
            doc = t.get(LEASES, self._id(group_id, rs_id))
            if doc is None or doc.get("changeId") != change_id:
                raise Conflict(f"rolling change {change_id} of {rs_id} is not the one under way")
            if not _active(doc):
                return dict(doc.get("status") or {})
            timeline = list(doc.get("events", []))
            last = doc.get("lastPrimary")
            for e in sorted(seen, key=lambda e: e.t):
                if e.kind not in (EventKind.PRIMARY, EventKind.NO_PRIMARY):
                    continue
                if last is not None and (e.t <= last["t"] or e.member == last.get("member")):
                    continue
                timeline.append(e.to_json())
                last = {"t": e.t, "member": e.member}
            doc["lastPrimary"] = last
            for name, measured in (extras or {}).items():
                doc.setdefault("extras", {})[str(name)] = {**dict(measured), "at": now}
            if isinstance(parsed, Done) and not self._finished(doc, now):
                parsed = None
            if from_primary:
                doc["primaryReportAt"] = now
            elif (
                not isinstance(parsed, Done)
                and now - float(doc.get("primaryReportAt") or 0) < PRIMARY_VOICE_S
            ):
                parsed = None
            denial = doc.get("leaseDenied")
            if (
                isinstance(parsed, Move)
                and parsed.name is MoveName.ACQUIRE_LEASE
                and denial is not None
                and denial["member"] == parsed.member
                and now - float(denial["at"]) < LEASE_DENIAL_S
            ):
                parsed = self._denied(parsed.member, str(denial["reason"]))
            doc["events"] = timeline
            if parsed is not None:
                alerts += self._observe(doc, parsed, now)
            doc["events"] = doc["events"][-MAX_EVENTS:]
            ended = None
            if isinstance(parsed, Done):
                ended = _step_end(group_id, doc)
                self._end(t, doc, now, parsed.note)
            if alerts:
                doc["alertOpen"] = alerts[-1][0]
            status = dict(doc["status"])
            if ended is not None:
                self._promote(doc, now)
            doc["updatedAt"] = now
            t.put(LEASES, doc)
        for opened, reason, member in alerts:
            if opened:
                self.alerts.raise_alert(
                    group_id,
                    ALERT_MEMBER_FAILED,
                    alert_key(rs_id),
                    reason,
                    replicaSetName=rs_id,
                    processName=member,
                    hostnameAndPort=self._host_of(group_id, doc, member),
                )
            else:
                self.alerts.resolve(group_id, alert_key(rs_id))
        if ended is not None:
            self._step_done(ended)
        return status

    def _step_done(self, ended: StepEnd) -> None:
        for listener in self.on_step_done:
            try:
                listener(ended)
            except OpsmgrError as exc:  # recorded already; the build asks for the step again if it must
                log.warning("the end of step %s of build %s: %s", ended.change_id, ended.build_id, exc.detail)

    def settle_alerts(self) -> int:
        """Close the member-failed alerts of changes that ended without a decision closing them (superseded
        by a later config, or their replica set dropped); periodic work. Returns how many were closed."""
        closed = 0
        for doc in self.store.find(LEASES, alertOpen=True):
            if _active(doc):
                continue
            self.alerts.resolve(doc["groupId"], alert_key(doc["rsId"]))
            with self.store.tx() as t:
                current = t.get(LEASES, doc["_id"])
                if current is not None and not _active(current):
                    t.put(LEASES, {**current, "alertOpen": False})
            closed += 1
        return closed

    def _host_of(self, group_id: str, doc: Mapping[str, Any], member: str | None) -> str | None:
        names = self._member_names(self.goal(group_id), doc)
        return next((host for host, name in names.items() if name == member), None)

    @staticmethod
    def _finished(doc: dict[str, Any], now: float) -> bool:
        """Whether the change's progress agrees that it is done; trailing waits of the last unit, which the
        procedure treats as satisfied when it answers Done, are recorded here."""
        progress = Progress.from_json(doc["progress"])
        if progress.in_unit and all(s.move in WAITS for s in progress.steps[progress.position :]):
            for step in progress.steps[progress.position :]:
                progress = record(progress, Move(step.move, step.member, None, ""), now)
            doc["progress"] = progress.to_json()
        change = RollingChange.from_json(doc["change"])
        return (
            not progress.in_unit
            and set(change.tasks) <= set(progress.done)
            and progress.arbiter is not ArbiterPhase.ACTIVE
        )

    # --- operators ----------------------------------------------------------------------------------------

    def status_views(self, group_id: str) -> list[dict[str, Any]]:
        """The ``maintenance`` entries of ``automationStatus``: the latest change of each replica set."""
        now = self.clock()
        out = []
        for doc in sorted(self.store.find(LEASES, groupId=group_id), key=lambda d: d["rsId"]):
            if not doc.get("changeId"):
                continue
            view = status_view(
                RollingChange.from_json(doc["change"]),
                Progress.from_json(doc["progress"]),
                ChangeStatus.from_json(doc["rsId"], doc.get("status") or {}),
                lease=lease_view(_lease_state(doc), now),
                events=[Event.from_json(e) for e in doc.get("events", [])],
            )
            out.append({"changeId": doc["changeId"], "goalVersion": doc.get("goalVersion"), **view})
        return out

    def changes(self, group_id: str) -> list[dict[str, Any]]:
        """``GET /groups/{id}/maintenance``: every rolling change, the ones under way first, newest first."""
        current = [d for d in self.store.find(LEASES, groupId=group_id) if d.get("changeId")]
        ids = {d["changeId"] for d in current}
        history = [d for d in self.store.find(HISTORY, groupId=group_id) if d["_id"] not in ids]
        views = [change_view(_history(d)) for d in current] + [change_view(d) for d in history]
        views += [queued_view(d["rsId"], d["queued"], _purpose(d)) for d in current if d.get("queued")]
        return sorted(views, key=lambda v: (v["state"] == ChangeState.DONE.value, -(v["created"] or 0)))

    def change(self, group_id: str, change_id: str) -> dict[str, Any]:
        for view in self.changes(group_id):
            if view["id"] == change_id:
                return view
        raise NotFound(f"no rolling change {change_id} in project {group_id}")

    def active_sets(self, group_id: str) -> list[str]:
        return sorted(d["rsId"] for d in self.store.find(LEASES, groupId=group_id) if _active(d))

    def active_hosts(self, group_id: str) -> dict[str, frozenset[str]]:
        """Per replica set under a rolling change, the hosts (lower-cased) whose agents take part: of its
        members in the goal config and in the config the change started from (members leaving), and of the
        temporary arbiter."""
        docs = [d for d in self.store.find(LEASES, groupId=group_id) if _active(d)]
        if not docs:
            return {}
        goal = self.goal(group_id)
        return {
            d["rsId"]: frozenset(
                host.rsplit(":", 1)[0].lower() for host in self._member_names(goal, d)
            )
            for d in docs
        }


def _active(doc: Mapping[str, Any] | None) -> bool:
    if doc is None or not doc.get("changeId"):
        return False
    return (doc.get("status") or {}).get("state") != ChangeState.DONE.value


def _state(doc: Mapping[str, Any] | None) -> str | None:
    return (doc.get("status") or {}).get("state") if doc is not None and doc.get("changeId") else None


def _owner(doc: Mapping[str, Any] | None) -> str:
    """The owner of the leases the change under way in ``doc`` takes (a config's, when none is)."""
    return owner_of(RollingChange.from_json(doc["change"])) if doc is not None and _active(doc) else ROLLING


def _purpose(doc: Mapping[str, Any]) -> str:
    return purpose_of(RollingChange.from_json(doc["change"]))


def _same_step(a: RollingChange, b: RollingChange) -> bool:
    return (a.build_id, a.tasks) == (b.build_id, b.tasks)


def _step_end(group_id: str, doc: Mapping[str, Any]) -> StepEnd | None:
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


def _without_own_lease(doc: Mapping[str, Any], owner: str, *, forget: bool = False) -> dict[str, Any]:
    """The lease fields once ``owner``'s lease goes (``forget``: its last holder too, for a new change);
    another procedure's lease (a unique index build's) stays."""
    state = _lease_state(doc)
    if state.lease is not None and state.lease.owner != owner:
        return {"lease": doc["lease"], "lastHolder": doc.get("lastHolder")}
    return {"lease": None, "lastHolder": None if forget else state.last_holder}


def _lease_state(doc: Mapping[str, Any]) -> LeaseState:
    raw = doc.get("lease")
    return LeaseState(Lease.from_json(raw) if raw else None, doc.get("lastHolder"))


def _event(raw: Mapping[str, Any]) -> Event:
    try:
        return Event.from_json(raw)
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"event is malformed: {exc}", field="events") from None


def _history(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the history keeps of a change (no config, no lease)."""
    keep = ("groupId", "rsId", "change", "progress", "status", "events", "report", "goalVersion")
    return {
        **{k: copy.deepcopy(doc.get(k)) for k in keep},
        "_id": doc["changeId"],
        "createdAt": doc.get("createdAt"),
        "doneAt": doc.get("doneAt"),
    }

"""The server's side of a sharded cluster's rolling maintenance: the cluster's change documents, registered by
config PUTs, the order they impose on the replica sets' changes, and what the cluster's mongos agents and
operators see of them (the decisions are ``maintenance.sharded``'s).

One document per cluster change in the application database's ``maintenance_clusters`` collection
(``_id`` ``<group>:<changeId>``): the :class:`~opsmgr.maintenance.sharded.ClusterChange`, its
:class:`~opsmgr.maintenance.sharded.ClusterProgress`, the config it started from (secrets encrypted, as the
automation config's own are), its event timeline and, once done, its figures. The replica sets' own changes
stay in ``maintenance.changes``' documents; a set is done for the cluster once its change there ended.

:meth:`ClusterDesk.register` runs inside the PUT's transaction after the replica sets' registration; a
change under way is recomputed from the config it started from (a cluster the new config drops ends its
change). :meth:`~ClusterDesk.gate` is why a set's change must wait for its turn (the agents' set views carry
it, and the lease is refused meanwhile); :meth:`~ClusterDesk.view` is the mongos agents' view with the next
step decided; :meth:`~ClusterDesk.record` records a step carried out, and the last one
(``RestoreBalancer``) ends the change. May import ``opsmgr.errors``, ``opsmgr.store``,
``opsmgr.automation.config`` (pure accessors), ``opsmgr.automation.secrets``, ``opsmgr.timestamps`` and
``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from opsmgr.automation.config import processes_by_name
from opsmgr.automation.secrets import map_secrets
from opsmgr.errors import Conflict, InvalidInput
from opsmgr.maintenance import changes
from opsmgr.maintenance.changes import active
from opsmgr.maintenance.leases import LEASES
from opsmgr.maintenance.members import MemberReports
from opsmgr.maintenance.moves import (
    Blocked,
    ClusterDecision,
    ClusterMove,
    ClusterMoveName,
    ClusterProgress,
    Progress,
    record_cluster,
)
from opsmgr.maintenance.report import ChangeState
from opsmgr.maintenance.rolling import rolling_changes
from opsmgr.maintenance.sharded import (
    ClusterChange,
    ShardedPolicy,
    cluster_changes,
    gate,
    layouts,
    next_cluster_move,
)
from opsmgr.maintenance.wire import cluster_key
from opsmgr.store.engine import Store, Txn, new_id
from opsmgr.timestamps import iso_utc_seconds

log = logging.getLogger(__name__)

CLUSTERS = "maintenance_clusters"
MAX_EVENTS = 500
Reader = Store | Txn


def decision_json(decision: ClusterDecision) -> dict[str, Any]:
    if isinstance(decision, ClusterMove):
        return {"kind": "move", **decision.to_json()}
    if isinstance(decision, Blocked):
        return {"kind": "blocked", "reason": decision.reason}
    return {"kind": "done", "note": decision.note}


class ClusterDesk:
    """The rolling changes of a project's sharded clusters (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        members: MemberReports,
        *,
        encrypt: Callable[[str], str],
        decrypt: Callable[[str], str],
        policy: ShardedPolicy = ShardedPolicy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.members = members
        self.encrypt = encrypt
        self.decrypt = decrypt
        self.policy = policy
        self.clock = clock

    # --- registration -------------------------------------------------------------------------------------

    def register(
        self, t: Txn, group_id: str, old: Mapping[str, Any], new: Mapping[str, Any], version: int
    ) -> list[str]:
        """The cluster changes going from ``old`` to ``new`` needs, in the PUT's transaction ``t`` (after the
        replica sets' own); returns the clusters registered, recomputed or ended (as route keys)."""
        now = self.clock()
        names = {c.name for c in layouts(new)}
        touched = []
        under_way = set()
        for doc in _active_docs(t, group_id):
            touched.append(cluster_key(doc["cluster"]))
            if doc["cluster"] not in names:
                _end(t, doc, now, f"version {version} no longer has the sharded cluster {doc['cluster']}")
                continue
            self._recompute(t, doc, new, version, now)
            under_way.add(doc["cluster"])
        for name, change in cluster_changes(old, new, rolling_changes(old, new)).items():
            if name in under_way:
                continue
            change_id = new_id()
            t.put(
                CLUSTERS,
                {
                    "_id": f"{group_id}:{change_id}",
                    "groupId": group_id,
                    "cluster": name,
                    "changeId": change_id,
                    "state": ChangeState.RUNNING.value,
                    "change": change.to_json(),
                    "progress": ClusterProgress().to_json(),
                    "startedFrom": map_secrets(copy.deepcopy(dict(old)), self.encrypt),
                    "goalVersion": version,
                    "createdAt": now,
                    "doneAt": None,
                    "events": [],
                    "report": None,
                },
            )
            log.info("rolling change of sharded cluster %s registered for version %s", name, version)
            touched.append(cluster_key(name))
        return touched

    def _recompute(
        self, t: Txn, doc: dict[str, Any], new: Mapping[str, Any], version: int, now: float
    ) -> None:
        """The change under way from the config it started from to ``new``, still covering every set of the
        cluster whose own change is under way (a later config can undo a set's difference and roll it back:
        that roll is the cluster's too); mongos restarted whose tasks are unchanged stay done. Nothing left
        to roll: the balancer still goes back (if it was stopped)."""
        name = doc["cluster"]
        start = map_secrets(copy.deepcopy(doc["startedFrom"]), self.decrypt)
        before = ClusterChange.from_json(doc["change"])
        progress = ClusterProgress.from_json(doc["progress"])
        fresh = cluster_changes(start, new, rolling_changes(start, new)).get(name)
        fresh = fresh or ClusterChange(name, before.config_rs, before.shards, ())
        rolling = {
            s
            for s in (fresh.config_rs, *fresh.shards)
            if active(t.get(LEASES, changes.doc_id(doc["groupId"], s)))
        }
        fresh = replace(
            fresh, sets=tuple(s for s in (fresh.config_rs, *fresh.shards) if s in rolling or s in fresh.sets)
        )
        if not fresh.needs_roll and progress.balancer_was is None:
            _end(t, doc, now, f"version {version} needs no rolling restart of {name} any more: superseded")
            return
        kept = tuple(m for m in progress.mongos_done if fresh.mongos.get(m) == before.mongos.get(m))
        doc.update(
            change=fresh.to_json(),
            progress=replace(progress, mongos_done=kept).to_json(),
            goalVersion=version,
            updatedAt=now,
        )
        t.put(CLUSTERS, doc)

    # --- the order ----------------------------------------------------------------------------------------

    def _parts(
        self, r: Reader, group_id: str, change: ClusterChange
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The cluster's sets whose change ended (done) and those whose change took a step (begun)."""
        done, begun = set(), set()
        for rs_id in change.sets:
            doc = r.get(LEASES, changes.doc_id(group_id, rs_id))
            if not active(doc):
                done.add(rs_id)
            elif doc is not None and (doc.get("lease") or Progress.from_json(doc["progress"]).seq > 0):
                begun.add(rs_id)
        return frozenset(done), frozenset(begun)

    def gate(self, group_id: str, rs_id: str) -> dict[str, Any] | None:
        """The cluster change covering ``rs_id``'s: ``{cluster, changeId, waitingFor}`` (``waitingFor``: why
        the set waits for its turn, None when it may go on); None when no cluster change covers it."""
        for doc in _active_docs(self.store, group_id):
            change = ClusterChange.from_json(doc["change"])
            if rs_id not in change.sets:
                continue
            done, begun = self._parts(self.store, group_id, change)
            progress = ClusterProgress.from_json(doc["progress"])
            reason = gate(change, progress, rs_id, done, begun, self.policy)
            return {"cluster": doc["cluster"], "changeId": doc["changeId"], "waitingFor": reason}
        return None

    # --- the mongos agents --------------------------------------------------------------------------------

    def _decide(self, r: Reader, group_id: str, doc: Mapping[str, Any]) -> ClusterDecision:
        change = ClusterChange.from_json(doc["change"])
        done, _ = self._parts(r, group_id, change)
        layout = next((c for c in layouts(self.members.goal(group_id)) if c.name == change.cluster), None)
        names = layout.mongos if layout is not None else tuple(change.mongos)
        restarted = {
            e["member"]: float(e["t"])
            for e in doc.get("events", [])
            if e["kind"] == ClusterMoveName.RESTART_MONGOS.value
        }
        running = self.members.running(group_id, names, restarted)
        return next_cluster_move(change, ClusterProgress.from_json(doc["progress"]), done, running)

    def view(self, group_id: str, name: str) -> dict[str, Any]:
        """What the agents of cluster ``name``'s mongos need on each cycle: the change, its progress and its
        next step (the agent whose mongos is the step's actor carries it out)."""
        doc = _active_doc(self.store, group_id, name)
        key = cluster_key(name)
        if doc is None:
            return {"replicaSet": key, "cluster": name, "active": False}
        procs = processes_by_name(self.members.goal(group_id))
        change = ClusterChange.from_json(doc["change"])
        return {
            "replicaSet": key,
            "cluster": name,
            "active": True,
            "changeId": doc["changeId"],
            "goalVersion": doc.get("goalVersion"),
            "change": doc["change"],
            "progress": doc["progress"],
            "decision": decision_json(self._decide(self.store, group_id, doc)),
            "names": {n: procs[n]["hostname"] for n in change.mongos if n in procs},
            "now": self.clock(),
        }

    def record(
        self, group_id: str, name: str, change_id: str, raw: Mapping[str, Any], at: float | None = None
    ) -> dict[str, Any]:
        """An agent carried the cluster's step ``raw`` out (started at ``at``); a step that is not the one the
        change is at is refused (409: decide again). Returns the progress as it now stands."""
        try:
            move = ClusterMove.from_json(raw)
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidInput(
                f"move is not a step of a cluster's rolling change: {exc}", field="move"
            ) from None
        now = self.clock()
        with self.store.tx() as t:
            doc = _active_doc(t, group_id, name)
            if doc is None or doc["changeId"] != change_id:
                raise Conflict(f"rolling change {change_id} of {name} is not the one under way")
            progress = ClusterProgress.from_json(doc["progress"])
            expected = self._decide(t, group_id, doc)
            repeat = record_cluster(progress, move) is progress
            if not repeat and not _same_step(expected, move):
                raise Conflict(
                    f"{move.name.value} by {move.actor} is not the next step of {name}: decide again"
                )
            if not repeat:
                progress = record_cluster(progress, move)
                event = {"t": float(at or now), "kind": move.name.value, "member": move.actor}
                doc["events"] = [*doc.get("events", []), event][-MAX_EVENTS:]
                doc.update(progress=progress.to_json(), updatedAt=now)
                if progress.restored:
                    _end(t, doc, now, f"the rolling change of {name} is complete")
                else:
                    t.put(CLUSTERS, doc)
        return progress.to_json()

    def active_hosts(self, group_id: str) -> dict[str, frozenset[str]]:
        """Per cluster under a change (by route key), the hosts (lower-cased) of its mongos."""
        docs = _active_docs(self.store, group_id)
        if not docs:
            return {}
        goal = self.members.goal(group_id)
        procs = processes_by_name(goal)
        out = {}
        for doc in docs:
            layout = next((c for c in layouts(goal) if c.name == doc["cluster"]), None)
            names = layout.mongos if layout is not None else ()
            out[cluster_key(doc["cluster"])] = frozenset(
                str(procs[n]["hostname"]).lower() for n in names if n in procs
            )
        return out

    # --- operators ----------------------------------------------------------------------------------------

    def records(self, group_id: str) -> list[dict[str, Any]]:
        """The project's cluster changes as ``GET /groups/{id}/maintenance`` lists them (the shape of a
        replica set's change; ``replicaSet`` is the cluster's route key, ``type`` ``SHARDED_CLUSTER``)."""
        out = []
        for doc in self.store.find_prefix(CLUSTERS, f"{group_id}:"):
            change = ClusterChange.from_json(doc["change"])
            reason, done = doc.get("reason"), frozenset(change.sets)
            if doc.get("state") != ChangeState.DONE.value:
                decided = self._decide(self.store, group_id, doc)
                reason = decided.note if not isinstance(decided, Blocked) else decided.reason
                done, _ = self._parts(self.store, group_id, change)
            out.append(record_view(doc, reason, done))
        return out


def record_view(doc: Mapping[str, Any], reason: str | None, sets_done: frozenset[str]) -> dict[str, Any]:
    """One cluster change as the public API lists it; its parts are the replica sets (each with its own
    record; ``sets_done``: those whose change ended) and the mongos (``membersDone``)."""
    change = ClusterChange.from_json(doc["change"])
    progress = ClusterProgress.from_json(doc["progress"])
    done_state = doc.get("state") == ChangeState.DONE.value
    steps_total = 2 + len(change.mongos)  # the balancer stopped and restored, each mongos restarted
    current = next((e["kind"] for e in reversed(doc.get("events", []))), None)
    return {
        "id": doc["changeId"],
        "type": "SHARDED_CLUSTER",
        "replicaSet": cluster_key(change.cluster),
        "cluster": change.cluster,
        "goalVersion": doc.get("goalVersion"),
        "state": doc.get("state"),
        "reason": reason,
        "warnings": [],
        "tasks": {m: sorted(t.value for t in tasks) for m, tasks in change.mongos.items()},
        "reasons": list(change.reasons),
        "replicaSets": list(change.sets),
        "balancerWas": progress.balancer_was,
        "progress": {
            "stepsDone": progress.seq,
            "stepsTotal": progress.seq if done_state else steps_total,
            "membersDone": list(progress.mongos_done),
            "replicaSetsDone": [s for s in change.sets if s in sets_done],
            "membersTotal": len(change.mongos),
            "currentMember": None,
            "currentStep": current,
        },
        "created": iso_utc_seconds(doc.get("createdAt")),
        "finished": iso_utc_seconds(doc.get("doneAt")),
        "report": doc.get("report") if done_state else None,
    }


def _same_step(expected: ClusterDecision, move: ClusterMove) -> bool:
    if not isinstance(expected, ClusterMove) or expected.name is not move.name:
        return False
    # A balancer step may be carried out by any running mongos's agent; a restart only by its own.
    return move.name is not ClusterMoveName.RESTART_MONGOS or expected.actor == move.actor


def _active_docs(r: Reader, group_id: str) -> list[dict[str, Any]]:
    return [d for d in r.find_prefix(CLUSTERS, f"{group_id}:") if d.get("state") != ChangeState.DONE.value]


def _active_doc(r: Reader, group_id: str, name: str) -> dict[str, Any] | None:
    return next((d for d in _active_docs(r, group_id) if d["cluster"] == name), None)


def _end(t: Txn, doc: dict[str, Any], now: float, reason: str) -> None:
    """The cluster's change is over: its figures (total time, the balancer's time off, when each mongos was
    restarted) are kept with it."""
    events = doc.get("events", [])
    stopped = next((e["t"] for e in events if e["kind"] == ClusterMoveName.STOP_BALANCER.value), None)
    restored = next((e["t"] for e in events if e["kind"] == ClusterMoveName.RESTORE_BALANCER.value), None)
    doc.update(
        state=ChangeState.DONE.value,
        reason=reason,
        doneAt=now,
        updatedAt=now,
        # The figures of a set's change that have a meaning for the cluster's own steps; the sets' are theirs.
        report={
            "totalSecs": now - float(doc.get("createdAt") or now),
            "memberSecsOut": {},
            "elections": None,
            "plannedElections": None,
            "noPrimarySecs": None,
            "stepDowns": [],
            "balancerOffSecs": restored - stopped if stopped is not None and restored is not None else None,
            "mongosRestarted": [
                e["member"] for e in events if e["kind"] == ClusterMoveName.RESTART_MONGOS.value
            ],
        },
    )
    t.put(CLUSTERS, doc)
    log.info("rolling change of sharded cluster %s ended: %s", doc["cluster"], reason)

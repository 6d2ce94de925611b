"""The server's side of the supervised unique index build: what the public API and the agents' routes ask of
it, over the builds kept by :class:`~opsmgr.maintenance.builds.UniqueIndexBuilds`.

- ``create`` checks the request as an ``indexConfigs`` entry of the project's goal config (the same rules
  the automation config PUT applies, with the unique rule lifted), orders the set's data-bearing members as
  the rolling way does (secondaries, then the member the agents report PRIMARY), and starts a build
  AWAITING_CONFIRMATION.
- ``confirm`` records the operator's word that writes to the collection are stopped. The oplog is watched
  from the primary's optime as its agent last reported it: that report is older than the confirmation, so
  the watch may see writes made just before it and abort a build that would have been sound; a false abort
  is the failure that is safe.
- The agents carry out the actions and report events. Verification needs
  every member's ``listIndexes`` (each agent lists only its own processes) and one oplog sweep read after the
  build entered VERIFYING, so that no write between the last build and DONE escapes the watch: the document
  gathers ``listings`` and ``swept`` until both are complete, then :func:`verified` decides.
- At DONE the entry is added to the goal config: read it, add the entry, and write it back through
  ``adopt`` (the automation config PUT with ``allow_unique_indexes``) as a compare-and-set on the version
  read, so an operator's PUT in between is never lost (a conflict reads again; see :func:`add_index_config`).
  A failure there is retried on later agent fetches (``configPending``).

- A member is built (or its index dropped) out of its set by the rolling procedure: when its turn comes,
  its agent asks for the member step (:meth:`IndexBuildService.take_step`), which registers the action as a
  one-member rolling change (``unique_index.member_step``) with the replica set's maintenance lease, the
  one rolling changes take (``MaintenanceService.acquire_for`` with the build as owner): the same decision
  over the same health, and one change per set at a time, so a build and a config's rolling change never
  have two members out at once and each waits with the other's reason. The agents carry the step out as
  any rolling change (``opsmgr.agent.maintenance``); when it is DONE (:meth:`IndexBuildService.step_done`,
  the maintenance service's listener) the build records ``member_built`` or ``index_dropped``, or, when
  the member refused the index, ``aborted`` with the member's words and ``index_dropped`` (it dropped what
  it left). A step the build no longer needs (it aborted meanwhile) is withdrawn while none of its moves is
  carried out; once begun, it runs to its end and its member is dropped in turn.

Every event is one write transaction on the build's document. May import ``opsmgr.errors``,
``opsmgr.store``, ``opsmgr.automation.config`` (validation and accessors), ``opsmgr.automation.protocol``,
``opsmgr.drivers.base`` (types only), ``opsmgr.automation.service``
(its version conflict only) and ``opsmgr.maintenance``.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from opsmgr.automation.config import process_port, processes_by_name, replica_set, validate
from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.automation.service import ConfigVersionConflict
from opsmgr.drivers.base import OplogRecord
from opsmgr.errors import Conflict, InvalidInput, OpsmgrError
from opsmgr.maintenance.builds import BUILDS, UniqueIndexBuilds
from opsmgr.maintenance.index_steps import StepEnd
from opsmgr.maintenance.leases import Deny, Grant, owner_of, purpose_of
from opsmgr.maintenance.rolling import RollingChange, UniqueIndexTask
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.maintenance.snapshot import maintenance_port
from opsmgr.maintenance.unique_index import (
    FINAL_STATES,
    BuildState,
    UniqueIndexBuild,
    abort,
    cancel,
    confirm,
    index_dropped,
    member_built,
    member_step,
    next_action,
    oplog_observed,
    verified,
    writes_locked,
    writes_unlocked,
)
from opsmgr.store.engine import Store

log = logging.getLogger(__name__)

GoalOf = Callable[[str], dict[str, Any]]
StatusesOf = Callable[[str], list[dict[str, Any]]]
GoalWrite = Callable[[str, dict[str, Any], int], None]  # (group, config, the version it was read at)

EVENT_TYPES = (
    "activity",
    "writes_locked",
    "writes_unlocked",
    "member_built",
    "index_dropped",
    "listed",
    "oplog",
    "aborted",
)
MAX_TEXT = 2000
ADOPT_ATTEMPTS = 5  # compare-and-set tries against concurrent PUTs before leaving it to a later fetch
_ENTRY_FIELD = re.compile(r"^indexConfigs\[\d+\]\.?")
CONFIRM_MEANING = (
    "writesStopped must be true: confirming means you have stopped every write to {ns} (inserts, updates, "
    "deletes, and commands on the collection) and will keep them stopped until the build is DONE or ABORTED. "
    "A unique index built member by member while writes continue can break uniqueness, so any write seen in "
    "the oplog during the build aborts it and drops the index from every member"
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def default_index_name(key: list[list[Any]]) -> str:
    """MongoDB's name for an index whose options name none (``field_1_other_-1``)."""
    return "_".join(f"{field}_{direction}" for field, direction in key)


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 255:
        raise InvalidInput(f"{name} must be a non-empty string of at most 255 characters", field=name)
    return value


def _index_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``indexConfigs`` entry a create request describes, with ``unique`` and a name filled in."""
    if not isinstance(body, Mapping):
        raise InvalidInput("the body must be a JSON object", field="body")
    rs_name, db, coll = _text(body, "rsName"), _text(body, "dbName"), _text(body, "collectionName")
    key = body.get("key")
    if not isinstance(key, list) or not key:
        raise InvalidInput("key must be a non-empty array of [field, 1 or -1] pairs", field="key")
    options = body.get("options", {})
    if not isinstance(options, Mapping):
        raise InvalidInput("options must be an object", field="options")
    options = dict(options)
    if options.setdefault("unique", True) is not True:
        raise InvalidInput(
            "this procedure builds unique indexes only; a non-unique index is built in the rolling way by "
            "adding it to the automation config's indexConfigs",
            field="options.unique",
        )
    if not isinstance(options.get("name", ""), str) or options.get("name") == "":
        raise InvalidInput("options.name must be a non-empty string", field="options.name")
    entry = {"dbName": db, "collectionName": coll, "rsName": rs_name, "key": key, "options": options}
    if all(isinstance(p, list) and len(p) == 2 for p in key):
        options.setdefault("name", default_index_name(key))
    return entry


def _check_against(goal: Mapping[str, Any], entry: dict[str, Any]) -> None:
    """The automation config's own rules for the entry, reported with the request's field names."""
    candidate = copy.deepcopy(dict(goal))
    candidate.pop("version", None)
    existing = list(candidate.get("indexConfigs", []))
    candidate["indexConfigs"] = [*existing, entry]
    try:
        validate(candidate, allow_unique_indexes=True)
    except InvalidInput as exc:
        field = _ENTRY_FIELD.sub("", exc.field or "") or None
        if exc.rule == "index-duplicate":
            raise Conflict(
                f"{entry['dbName']}.{entry['collectionName']} in {entry['rsName']} already has this index in "
                "the automation config's indexConfigs",
                error_code="INDEX_ALREADY_CONFIGURED",
            ) from None
        raise InvalidInput(exc.detail.replace(f"indexConfigs[{len(existing)}].", ""), field=field) from None


def _build_order(
    goal: Mapping[str, Any], statuses: list[dict[str, Any]], rs_id: str
) -> tuple[list[str], int]:
    """The set's data-bearing members, secondaries first and the reported PRIMARY last, and the primary's
    reported optime."""
    rs = replica_set(goal, rs_id)
    procs = processes_by_name(goal)
    assert rs is not None  # _check_against refused an unknown rsName
    members = [
        m["host"]
        for m in rs.get("members", [])
        if not m.get("arbiterOnly") and not procs.get(m["host"], {}).get("disabled")
    ]
    reported = {
        p.get("name"): p.get("observed") or {}
        for s in statuses
        for p in s.get("processes", [])
        if isinstance(p, Mapping)
    }
    primaries = [m for m in members if reported.get(m, {}).get("replicaStateName") == "PRIMARY"]
    if len(primaries) != 1:
        raise Conflict(
            f"no agent reports a single PRIMARY among {', '.join(members)} of {rs_id}: the build needs a "
            "healthy replica set whose primary's agent watches the oplog",
            error_code="NO_PRIMARY",
        )
    primary = primaries[0]
    optime = reported[primary].get("optimeTs")
    if not isinstance(optime, int):
        raise Conflict(
            f"the agent of {primary} has not reported its oplog position yet", error_code="NO_PRIMARY"
        )
    return [m for m in members if m != primary] + [primary], optime


def _identity(entry: Mapping[str, Any]) -> list[Any]:
    return [entry.get(k) for k in ("rsName", "dbName", "collectionName", "key")]


def with_index_config(config: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """``config`` with ``entry`` added to its ``indexConfigs``; None when it lists that index already."""
    entries = list(config.get("indexConfigs", []))
    if any(_identity(e) == _identity(entry) for e in entries):
        return None
    out = copy.deepcopy(dict(config))
    out["indexConfigs"] = [*entries, copy.deepcopy(dict(entry))]
    return out


def add_index_config(
    group_id: str, entry: Mapping[str, Any], *, goal: GoalOf, write: GoalWrite, attempts: int = ADOPT_ATTEMPTS
) -> None:
    """Add ``entry`` to the goal config unless it is there: each try writes only if the config is still at
    the version it read (another PUT meanwhile makes it read again)."""
    for _ in range(attempts):
        config = goal(group_id)
        updated = with_index_config(config, entry)
        if updated is None:
            return
        try:
            write(group_id, updated, int(config["version"]))
            return
        except ConfigVersionConflict as exc:
            log.info("index config of %s: %s; reading it again", group_id, exc.detail)
    raise Conflict(
        f"the automation config of {group_id} kept changing during {attempts} tries to add the index",
        error_code="AUTOMATION_CONFIG_VERSION_CONFLICT",
    )


def _progress(build: UniqueIndexBuild) -> dict[str, int]:
    return {"done": len(build.built), "total": len(build.members)}


def _member_progress(build: UniqueIndexBuild) -> list[dict[str, Any]]:
    building = build.members[build.current] if build.state is BuildState.BUILDING else None
    out = []
    for m in build.members:
        if m in build.dropped:
            state = "DROPPED"
        elif build.state is BuildState.DROPPING and m in build.to_drop:
            state = "DROPPING"
        elif m in build.built:
            state = "BUILT"
        elif m == building:
            state = "BUILDING"
        else:
            state = "PENDING"
        out.append({"name": m, "state": state, "writesLocked": build.locked == m})
    return out


def view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A build as the public API and the agents see it."""
    build = UniqueIndexBuild.from_json(doc["build"])
    action = next_action(build)
    return {
        **build.to_json(),
        "groupId": doc["groupId"],
        "progress": _progress(build),
        "memberProgress": _member_progress(build),
        "nextAction": {"kind": action.kind.value, "member": action.member, "note": action.note},
        "activity": doc.get("activity"),
        "lastStep": doc.get("lastStep"),
        "configPending": bool(doc.get("configPending")),
        "created": doc.get("created"),
        "updated": doc.get("updated"),
    }


def _records(raw: Any) -> list[OplogRecord]:
    if not isinstance(raw, list):
        raise InvalidInput("records must be an array of oplog entries", field="records")
    out = []
    for i, r in enumerate(raw):
        if not isinstance(r, Mapping) or not isinstance(r.get("ts"), int) or not isinstance(r.get("op"), str):
            raise InvalidInput("each record needs ts (integer), op, ns and o", field=f"records[{i}]")
        o = r.get("o")
        out.append(OplogRecord(ts=r["ts"], op=r["op"], ns=str(r.get("ns", "")), o=dict(o) if o else {}))
    return out


class IndexBuildService:
    def __init__(
        self,
        store: Store,
        *,
        goal: GoalOf,
        statuses: StatusesOf,
        write_goal: GoalWrite,
        maintenance: MaintenanceService,
    ) -> None:
        """``write_goal(group, config, version)`` puts the config only if the goal is still at ``version``
        (raising :class:`ConfigVersionConflict` otherwise); ``maintenance`` keeps the sets' leases."""
        self.store = store
        self.maintenance = maintenance
        self.builds = UniqueIndexBuilds(store)
        self.goal = goal
        self.statuses = statuses
        self.write_goal = write_goal

    # --- the operator ------------------------------------------------------------------------------------

    def create(self, group_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        entry = _index_entry(body)
        lock = body.get("lockPrimaryWrites", False)
        if not isinstance(lock, bool):
            raise InvalidInput("lockPrimaryWrites must be true or false", field="lockPrimaryWrites")
        goal = self.goal(group_id)
        _check_against(goal, entry)
        members, _ = _build_order(goal, self.statuses(group_id), entry["rsName"])
        build = self.builds.create(group_id, entry, members, lock_primary=lock)
        now = _now_ms()
        return self._update(group_id, build.build_id, lambda doc, b: (b, {"created": now}))

    def of_group(self, group_id: str) -> list[dict[str, Any]]:
        docs = self.store.find(BUILDS, groupId=group_id)
        return [self._view(d) for d in sorted(docs, key=lambda d: (d.get("created") or 0, d["_id"]))]

    def get(self, group_id: str, build_id: str) -> dict[str, Any]:
        self.builds.get(group_id, build_id)  # NotFound for another project's build
        doc = self.store.get(BUILDS, build_id)
        assert doc is not None
        return self._view(doc)

    def _view(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """:func:`view` with ``step``: the member step under way, as a rolling change (None when none is)."""
        out = view(doc)
        under_way = self.maintenance.active_doc(str(doc["groupId"]), out["rsName"])
        change = RollingChange.from_json(under_way["change"]) if under_way is not None else None
        step = None
        if under_way is not None and change is not None and change.build_id == doc["_id"]:
            ((member, tasks),) = change.tasks.items()
            status = under_way.get("status") or {}
            step = {
                "changeId": under_way["changeId"],
                "member": member,
                "task": sorted(t.value for t in tasks)[0],
                "state": status.get("state"),
                "reason": status.get("reason"),
            }
        return {**out, "step": step}

    def confirm(self, group_id: str, build_id: str, body: Mapping[str, Any], caller: str) -> dict[str, Any]:
        build = self.builds.get(group_id, build_id)
        if not isinstance(body, Mapping) or body.get("writesStopped") is not True:
            raise InvalidInput(CONFIRM_MEANING.format(ns=build.ns), field="writesStopped")
        operator = _text(body, "operator", required=False) or caller
        _, optime = _build_order(self.goal(group_id), self.statuses(group_id), build.rs_id)
        return self._update(group_id, build_id, lambda doc, b: (confirm(b, operator, optime), {}))

    def cancel(self, group_id: str, build_id: str, caller: str) -> dict[str, Any]:
        return self._update(group_id, build_id, lambda doc, b: (cancel(b, f"cancelled by {caller}"), {}))

    # --- the agents --------------------------------------------------------------------------------------

    def retry_pending_configs(self) -> int:
        """Add the config entry of every DONE build whose entry could not be added yet (a periodic job);
        returns how many were added."""
        added = 0
        for doc in self.store.find(BUILDS, configPending=True):
            added += self._adopt(str(doc["groupId"]), doc["_id"]) is not None
        return added

    def for_agent(self, group_id: str) -> list[dict[str, Any]]:
        """The builds agents act on (not final)."""
        docs = self.store.find(BUILDS, groupId=group_id)
        return [
            self._view(d)
            for d in docs
            if BuildState(d["build"]["state"]) not in (BuildState.DONE, BuildState.ABORTED)
        ]

    def on_event(
        self, group_id: str, build_id: str, hostname: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not isinstance(body, Mapping) or body.get("type") not in EVENT_TYPES:
            raise InvalidInput(f"type must be one of {', '.join(EVENT_TYPES)}", field="type")
        kind = body["type"]
        note = str(body.get("note") or "")[:MAX_TEXT]
        activity = {"hostname": hostname, "note": note, "at": _now_ms()} if note else None

        def member() -> str:
            return str(_text(body, "member"))

        def apply(doc: dict[str, Any], b: UniqueIndexBuild) -> tuple[UniqueIndexBuild, dict[str, Any]]:
            extra: dict[str, Any] = {"activity": activity} if activity else {}
            if kind == "writes_locked":
                b = writes_locked(b)
            elif kind == "writes_unlocked":
                b = writes_unlocked(b)
            elif kind == "member_built":
                b = member_built(b, member())
            elif kind == "index_dropped":
                b = index_dropped(b, member())
            elif kind == "aborted":
                b = abort(b, str(_text(body, "reason"))[:MAX_TEXT])
            elif kind == "listed":
                listings = body.get("listings")
                if not isinstance(listings, Mapping) or not all(
                    isinstance(v, list) for v in listings.values()
                ):
                    raise InvalidInput(
                        "listings must map member names to listIndexes arrays", field="listings"
                    )
                if b.state is BuildState.VERIFYING:
                    extra["listings"] = {**doc.get("listings", {}), **listings}
            elif kind == "oplog":
                b = oplog_observed(b, _records(body.get("records", [])))
                if b.state is BuildState.VERIFYING and body.get("sawState") == BuildState.VERIFYING.value:
                    extra["swept"] = True
            return self._maybe_verified(b, {**doc, **extra}), extra

        return self._update(group_id, build_id, apply)

    def take_step(
        self, group_id: str, build_id: str, member: str, *, refuse: str | None = None
    ) -> Grant | Deny:
        """The member step of the build's next action, asked for by ``member``'s agent once its turn has come
        and its host is at goal: registered as a one-member rolling change with the set's maintenance lease,
        or denied with the reason it waits (``refuse``: a reason to deny outright, e.g. Restoration Mode)."""
        build = self.builds.get(group_id, build_id)
        if build.state in FINAL_STATES:
            return Deny(f"unique index build {build_id} is {build.state.value}")
        change = member_step(build)
        if change is None or member not in change.tasks:
            return Deny(
                f"unique index build {build_id} takes {member} out of {build.rs_id} only when its turn comes"
            )
        self._withdraw_stale(group_id, build)
        return self.maintenance.acquire_for(
            group_id,
            build.rs_id,
            member,
            owner=owner_of(change),
            purpose=purpose_of(change),
            refuse=refuse,
            change=change,
        )

    def step_done(self, end: StepEnd) -> None:
        """A member step ended DONE (its member back in its set and caught up): the build records what it did
        and moves on. Each transition the build has moved past meanwhile (an abort, a cancel) is skipped."""
        goal = self.goal(end.group_id)
        proc = processes_by_name(goal).get(end.member) or {}
        build = self.builds.get(end.group_id, end.build_id)
        note = self._step_note(build, end, proc)
        steps: list[Callable[[UniqueIndexBuild], UniqueIndexBuild]]
        if end.refused:
            steps = [lambda b: abort(b, end.refused or ""), lambda b: index_dropped(b, end.member)]
        elif end.task is UniqueIndexTask.BUILD_UNIQUE_INDEX:
            steps = [lambda b: member_built(b, end.member)]
        else:
            steps = [lambda b: index_dropped(b, end.member)]
        activity = {"hostname": proc.get("hostname"), "note": note, "at": _now_ms()}
        last = {"changeId": end.change_id, "member": end.member, "note": note}

        def apply(doc: dict[str, Any], b: UniqueIndexBuild) -> tuple[UniqueIndexBuild, dict[str, Any]]:
            for step in steps:
                try:
                    b = step(b)
                except Conflict as exc:
                    log.info("unique index build %s moved on: %s", end.build_id, exc.detail)
            return b, {"activity": activity, "lastStep": last}

        self._update(end.group_id, end.build_id, apply)

    def _step_note(self, build: UniqueIndexBuild, end: StepEnd, proc: Mapping[str, Any]) -> str:
        """What a member step did, as the build's activity says it."""
        member, index = end.member, build.index_name
        port = f" on port {maintenance_port(process_port(proc), self.maintenance.policy)}" if proc else ""
        done = [f"stepped {member} down"] if end.stepped_down else []
        done.append(f"restarted standalone{port}")
        if end.refused:
            done.append(f"{member} refused the index, dropped what it left")
        elif end.task is UniqueIndexTask.BUILD_UNIQUE_INDEX:
            place = build.members.index(member) + 1 if member in build.members else len(build.built)
            done.append(f"built {index} ({place} of {len(build.members)})")
        else:
            done.append(f"dropped {index}")
        return ", ".join([*done, "restarted in replSet mode", "caught up"])

    def _withdraw_stale(self, group_id: str, build: UniqueIndexBuild) -> None:
        """Withdraw this build's step under way if the build no longer needs it and it has not begun."""
        doc = self.maintenance.active_doc(group_id, build.rs_id)
        if doc is None:
            return
        step, wanted = RollingChange.from_json(doc["change"]), member_step(build)
        if step.build_id != build.build_id or (wanted is not None and wanted.tasks == step.tasks):
            return
        why = f"unique index build {build.build_id} no longer needs it: {next_action(build).note}"
        if self.maintenance.withdraw(group_id, build.rs_id, str(doc["changeId"]), why):
            log.info("step %s of unique index build %s withdrawn", doc["changeId"], build.build_id)

    # --- inside --------------------------------------------------------------------------------------------

    @staticmethod
    def _maybe_verified(b: UniqueIndexBuild, doc: Mapping[str, Any]) -> UniqueIndexBuild:
        listings = doc.get("listings", {})
        if b.state is BuildState.VERIFYING and doc.get("swept") and set(b.members) <= set(listings):
            return verified(b, listings)
        return b

    def _update(
        self,
        group_id: str,
        build_id: str,
        event: Callable[[dict[str, Any], UniqueIndexBuild], tuple[UniqueIndexBuild, dict[str, Any]]],
    ) -> dict[str, Any]:
        """One event in one transaction; entering VERIFYING starts a fresh gathering of listings."""
        self.builds.get(group_id, build_id)
        with self.store.tx() as t:
            doc = t.get(BUILDS, build_id)
            assert doc is not None
            before = UniqueIndexBuild.from_json(doc["build"])
            after, extra = event(doc, before)
            doc = {**doc, **extra, "build": after.to_json(), "updated": _now_ms()}
            if after.state is BuildState.VERIFYING and before.state is not BuildState.VERIFYING:
                doc.update(listings={}, swept=False)
            if after.state is BuildState.DONE and before.state is not BuildState.DONE:
                doc["configPending"] = True
            t.put(BUILDS, doc)
            if after.state in FINAL_STATES and before.state not in FINAL_STATES:
                t.notify(WORK_CHANGED, group_id)
        if after != before:
            self._withdraw_stale(group_id, after)
        if doc.get("configPending"):
            doc = self._adopt(group_id, build_id) or doc
        return self._view(doc)

    def _adopt(self, group_id: str, build_id: str) -> dict[str, Any] | None:
        """Add a DONE build's entry to the goal config; left pending (and retried) if that fails."""
        build = self.builds.get(group_id, build_id)
        try:
            add_index_config(group_id, build.index_config(), goal=self.goal, write=self.write_goal)
        except OpsmgrError as exc:
            log.warning("unique index build %s is DONE but its config entry waits: %s", build_id, exc.detail)
            return None
        with self.store.tx() as t:
            doc = t.get(BUILDS, build_id)
            assert doc is not None
            doc = {**doc, "configPending": False, "updated": _now_ms()}
            t.put(BUILDS, doc)
        return doc

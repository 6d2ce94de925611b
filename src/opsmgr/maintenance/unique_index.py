"""The supervised unique index build: a state machine the operator starts and an executor drives.

Why it exists: the rolling way builds an index on each member independently (each member standalone in
turn). A unique index built like that is only sound if nothing writes to the collection until the primary
has it, because a write accepted by a primary without the index can break uniqueness on the members that
already have it. So ``automation.config.validate`` refuses new unique ``indexConfigs``, and this procedure
builds them instead:

``AWAITING_CONFIRMATION`` -> (the operator confirms writes to the collection are stopped; the primary's
oplog position is noted) -> ``LOCKING_WRITES`` (only if allowed) -> ``BUILDING`` member by member in the
rolling order (secondaries, then the primary after its step-down) -> ``VERIFYING`` (every member lists the
index, unique) -> ``DONE``, after which the executor adds the entry to the automation config with
``allow_unique_indexes``. Throughout, the executor feeds the oplog entries after the noted position to
:func:`oplog_observed`; any write to the namespace (insert, update, delete, or a command on the collection)
aborts: ``DROPPING`` removes the index from every member that has it or was building it, and ``ABORTED``
reports why. No member is left with a half-built index, and no member is left locked.

What MongoDB allows for holding writes: ``fsyncLock`` locks a whole ``mongod`` (every collection, not one),
is not replicated, and blocks every write on that node including ``createIndexes`` and, on a secondary,
oplog application. So a member being built is never locked (its maintenance port already keeps
application writes away), and the only useful lock is on the primary while the secondaries build, which
stops every write to the deployment: it happens only when the operator allows it (``lock_primary``), and
the primary is unlocked before its own step-down and build. Otherwise the oplog watch is the guarantee.

A member is built (or its index dropped) out of its set, the way rolling maintenance takes any member out:
:func:`member_step` is that action as a one-member :class:`~opsmgr.maintenance.rolling.RollingChange`
(``BUILD_UNIQUE_INDEX`` or ``DROP_UNIQUE_INDEX``), which the agents carry out with the rolling procedure,
under the replica set's one maintenance lease.

Pure: events in, a new :class:`UniqueIndexBuild` out; :func:`next_action` says what the executor does next.
May import ``opsmgr.errors``, ``opsmgr.drivers.base`` (types only) and ``opsmgr.maintenance.rolling``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from opsmgr.drivers.base import OplogRecord
from opsmgr.errors import Conflict, InvalidInput
from opsmgr.maintenance.rolling import RollingChange, UniqueIndexTask


class BuildState(StrEnum):
    AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION"
    LOCKING_WRITES = "LOCKING_WRITES"
    BUILDING = "BUILDING"
    VERIFYING = "VERIFYING"
    DROPPING = "DROPPING"
    DONE = "DONE"
    ABORTED = "ABORTED"


WATCHED_STATES = frozenset({BuildState.LOCKING_WRITES, BuildState.BUILDING, BuildState.VERIFYING})
FINAL_STATES = frozenset({BuildState.DONE, BuildState.ABORTED})
# Commands (in ``<db>.$cmd`` entries) whose first field names the collection they act on.
_COLLECTION_COMMANDS = ("create", "drop", "collMod", "createIndexes", "dropIndexes", "deleteIndexes")


class ActionKind(StrEnum):
    WAIT_CONFIRMATION = "WaitConfirmation"
    LOCK_WRITES = "LockWrites"
    BUILD = "BuildIndexOnMember"
    UNLOCK_WRITES = "UnlockWrites"
    VERIFY = "VerifyIndex"
    DROP_INDEX = "DropIndex"
    NONE = "None"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    member: str | None
    note: str


@dataclass(frozen=True)
class UniqueIndexBuild:
    """One build. ``members`` is the build order (secondaries, then the primary); while BUILDING,
    ``members[current]`` is the member being built; ``built`` those that have the index."""

    build_id: str
    rs_id: str
    db: str
    collection: str
    key: tuple[tuple[str, int | str], ...]
    options: dict[str, Any]
    members: tuple[str, ...]
    lock_primary: bool = False
    state: BuildState = BuildState.AWAITING_CONFIRMATION
    current: int = 0
    built: tuple[str, ...] = ()
    locked: str | None = None
    watch_from_ts: int | None = None
    confirmed_by: str | None = None
    reason: str | None = None
    to_drop: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.collection}"

    @property
    def primary(self) -> str:
        return self.members[-1]

    @property
    def index_name(self) -> str:
        return index_name(self.index_config())

    def index_config(self) -> dict[str, Any]:
        """The ``indexConfigs`` entry to add to the automation config once DONE."""
        return {
            "dbName": self.db,
            "collectionName": self.collection,
            "rsName": self.rs_id,
            "key": [list(pair) for pair in self.key],
            "options": dict(self.options),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.build_id,
            "rsName": self.rs_id,
            "dbName": self.db,
            "collectionName": self.collection,
            "key": [list(pair) for pair in self.key],
            "options": self.options,
            "members": list(self.members),
            "lockPrimary": self.lock_primary,
            "state": self.state.value,
            "current": self.current,
            "built": list(self.built),
            "locked": self.locked,
            "watchFromTs": self.watch_from_ts,
            "confirmedBy": self.confirmed_by,
            "reason": self.reason,
            "toDrop": list(self.to_drop),
            "dropped": list(self.dropped),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> UniqueIndexBuild:
        return cls(
            build_id=raw["id"],
            rs_id=raw["rsName"],
            db=raw["dbName"],
            collection=raw["collectionName"],
            key=tuple((str(f), d) for f, d in raw["key"]),
            options=dict(raw["options"]),
            members=tuple(raw["members"]),
            lock_primary=bool(raw.get("lockPrimary", False)),
            state=BuildState(raw["state"]),
            current=int(raw.get("current", 0)),
            built=tuple(raw.get("built", ())),
            locked=raw.get("locked"),
            watch_from_ts=raw.get("watchFromTs"),
            confirmed_by=raw.get("confirmedBy"),
            reason=raw.get("reason"),
            to_drop=tuple(raw.get("toDrop", ())),
            dropped=tuple(raw.get("dropped", ())),
        )


def new_build(
    build_id: str,
    index_config: Mapping[str, Any],
    members: Sequence[str],
    *,
    lock_primary: bool = False,
) -> UniqueIndexBuild:
    """A build of ``index_config`` (an ``indexConfigs`` entry with ``options.unique`` true) over ``members``
    in build order: the secondaries, then the primary last (``maintenance.procedure.member_order``)."""
    options = index_config.get("options")
    if not isinstance(options, Mapping) or options.get("unique") is not True:
        raise InvalidInput(
            "the supervised build is for unique indexes; others build in the rolling way through the "
            "automation config",
            field="options.unique",
            rule="unique-index-build",
        )
    key = index_config.get("key")
    if not isinstance(key, list) or not key or not all(isinstance(p, list) and len(p) == 2 for p in key):
        raise InvalidInput("key must be a non-empty array of [field, direction] pairs", field="key")
    if not members or len(set(members)) != len(members):
        raise InvalidInput("the build needs the set's data-bearing members, each once", field="members")
    return UniqueIndexBuild(
        build_id=build_id,
        rs_id=str(index_config["rsName"]),
        db=str(index_config["dbName"]),
        collection=str(index_config["collectionName"]),
        key=tuple((str(f), d) for f, d in key),
        options=dict(options),
        members=tuple(members),
        lock_primary=lock_primary,
    )


def _expect(build: UniqueIndexBuild, *states: BuildState) -> None:
    if build.state not in states:
        raise Conflict(
            f"unique index build {build.build_id} is {build.state.value}, not "
            f"{' or '.join(s.value for s in states)}",
            error_code="UNIQUE_INDEX_BUILD_STATE",
        )


def confirm(build: UniqueIndexBuild, operator: str, oplog_ts: int) -> UniqueIndexBuild:
    """The operator confirms that writes to the collection are stopped; the oplog is watched from
    ``oplog_ts`` (the primary's last entry at that moment)."""
    _expect(build, BuildState.AWAITING_CONFIRMATION)
    state = BuildState.LOCKING_WRITES if build.lock_primary else BuildState.BUILDING
    return replace(build, state=state, confirmed_by=operator, watch_from_ts=oplog_ts)


def writes_locked(build: UniqueIndexBuild) -> UniqueIndexBuild:
    _expect(build, BuildState.LOCKING_WRITES)
    return replace(build, state=BuildState.BUILDING, locked=build.primary)


def writes_unlocked(build: UniqueIndexBuild) -> UniqueIndexBuild:
    return _settle(replace(build, locked=None))


def member_built(build: UniqueIndexBuild, member: str) -> UniqueIndexBuild:
    _expect(build, BuildState.BUILDING)
    if build.members[build.current] != member:
        raise Conflict(f"{member} is not the member being built ({build.members[build.current]} is)")
    current = build.current + 1
    state = BuildState.VERIFYING if current == len(build.members) else BuildState.BUILDING
    return replace(build, built=(*build.built, member), current=current, state=state)


def _same_key(index: Mapping[str, Any], key: tuple[tuple[str, int | str], ...]) -> bool:
    raw = index.get("key")
    pairs = list(raw.items()) if isinstance(raw, Mapping) else raw
    return json.dumps([list(p) for p in pairs or []]) == json.dumps([list(p) for p in key])


def verified(
    build: UniqueIndexBuild, listings: Mapping[str, Sequence[Mapping[str, Any]]]
) -> UniqueIndexBuild:
    """``listings``: each member's ``listIndexes`` of the collection. DONE when every member has the index
    and it is unique; otherwise the build aborts, naming the members that lack it."""
    _expect(build, BuildState.VERIFYING)
    missing = [
        m
        for m in build.members
        if not any(_same_key(ix, build.key) and ix.get("unique") is True for ix in listings.get(m, ()))
    ]
    if missing:
        return abort(build, f"verification failed: {', '.join(missing)} lack the unique index")
    if build.locked is not None:
        raise Conflict(f"unlock {build.locked} before the build can be DONE")
    return replace(build, state=BuildState.DONE)


def touches(record: OplogRecord, db: str, collection: str) -> bool:
    """Whether an oplog entry writes to ``db.collection`` (a CRUD entry, or a command acting on it)."""
    ns = f"{db}.{collection}"
    if record.op in ("i", "u", "d"):
        return record.ns == ns
    if record.op != "c" or record.ns != f"{db}.$cmd":
        return False
    o = record.o
    if any(o.get(c) == collection for c in _COLLECTION_COMMANDS):
        return True
    return ns in (o.get("renameCollection"), o.get("to"))


def oplog_observed(build: UniqueIndexBuild, records: Iterable[OplogRecord]) -> UniqueIndexBuild:
    """Feed the oplog entries after ``watch_from_ts``; the first write to the namespace aborts the build."""
    if build.state not in WATCHED_STATES or build.watch_from_ts is None:
        return build
    for record in records:
        if record.ts > build.watch_from_ts and touches(record, build.db, build.collection):
            return abort(
                build,
                f"a write to {build.ns} (op {record.op!r} at ts {record.ts >> 32}:{record.ts & 0xFFFFFFFF}) "
                "happened during the build, so uniqueness cannot be guaranteed; stop the application's "
                "writes to the collection and start again",
            )
    return build


def cancel(build: UniqueIndexBuild, reason: str) -> UniqueIndexBuild:
    """The operator cancels (or the executor gives up): the same clean-up as any abort."""
    if build.state in FINAL_STATES:
        raise Conflict(f"unique index build {build.build_id} is already {build.state.value}")
    return abort(build, reason)


def abort(build: UniqueIndexBuild, reason: str) -> UniqueIndexBuild:
    if build.state in FINAL_STATES or build.state is BuildState.DROPPING:
        return build
    in_progress = (build.members[build.current],) if build.state is BuildState.BUILDING else ()
    to_drop = tuple(dict.fromkeys((*build.built, *in_progress)))
    return _settle(replace(build, state=BuildState.DROPPING, reason=reason, to_drop=to_drop))


def index_dropped(build: UniqueIndexBuild, member: str) -> UniqueIndexBuild:
    _expect(build, BuildState.DROPPING)
    return _settle(replace(build, dropped=tuple(dict.fromkeys((*build.dropped, member)))))


def _settle(build: UniqueIndexBuild) -> UniqueIndexBuild:
    """ABORTED once nothing is left to undo: no lock held, the index dropped wherever it may be."""
    undone = build.locked is None and set(build.to_drop) <= set(build.dropped)
    if build.state is BuildState.DROPPING and undone:
        return replace(build, state=BuildState.ABORTED)
    return build


def next_action(build: UniqueIndexBuild) -> Action:
    """What the executor does next; it reports the outcome with the matching event function."""
    state = build.state
    if state is BuildState.AWAITING_CONFIRMATION:
        return Action(
            ActionKind.WAIT_CONFIRMATION,
            None,
            f"stop the application's writes to {build.ns}, then confirm to build the unique index",
        )
    if state is BuildState.LOCKING_WRITES:
        return Action(
            ActionKind.LOCK_WRITES,
            build.primary,
            f"fsyncLock the primary {build.primary}: every write to the deployment waits while the "
            "secondaries build",
        )
    if build.locked is not None and (
        state in (BuildState.VERIFYING, BuildState.DROPPING)
        or (state is BuildState.BUILDING and build.members[build.current] == build.locked)
    ):
        return Action(ActionKind.UNLOCK_WRITES, build.locked, f"fsyncUnlock {build.locked}")
    if state is BuildState.BUILDING:
        member = build.members[build.current]
        return Action(
            ActionKind.BUILD,
            member,
            f"build the unique index on {build.ns} on {member} while it is standalone "
            f"({build.current + 1} of {len(build.members)})",
        )
    if state is BuildState.VERIFYING:
        return Action(ActionKind.VERIFY, None, f"check that every member has the unique index on {build.ns}")
    if state is BuildState.DROPPING:
        member = next(m for m in build.to_drop if m not in build.dropped)
        return Action(ActionKind.DROP_INDEX, member, f"drop the index on {build.ns} from {member}")
    return Action(ActionKind.NONE, None, build.reason or f"the unique index on {build.ns} is built")


def index_name(entry: Mapping[str, Any]) -> str:
    """The name of an ``indexConfigs`` entry's index: its ``options.name``, else MongoDB's (``a_1_b_-1``)."""
    named = (entry.get("options") or {}).get("name")
    return str(named) if named else "_".join(f"{field}_{way}" for field, way in entry.get("key", []))


def member_step(build: UniqueIndexBuild) -> RollingChange | None:
    """The next action as a one-member rolling change when it takes a member out of its set (a build or a
    drop, on the member it names); None for the others, which need no member out."""
    action = next_action(build)
    if action.member is None or action.kind not in (ActionKind.BUILD, ActionKind.DROP_INDEX):
        return None
    creates = action.kind is ActionKind.BUILD
    task = UniqueIndexTask.BUILD_UNIQUE_INDEX if creates else UniqueIndexTask.DROP_UNIQUE_INDEX
    return RollingChange(
        build.rs_id,
        build.rs_id,
        tasks={action.member: frozenset({task})},
        reasons=(f"{action.member}: {action.note}, for unique index build {build.build_id}",),
        index_builds=(build.index_config(),),
        build_id=build.build_id,
    )

"""The supervised unique index build as a state machine: the happy paths with and without a held primary,
aborts at every stage leaving no member with the index or a lock, and what counts as a write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsmgr.drivers.base import OplogRecord
from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.maintenance.builds import UniqueIndexBuilds
from opsmgr.maintenance.unique_index import (
    ActionKind,
    BuildState,
    UniqueIndexBuild,
    cancel,
    confirm,
    index_dropped,
    member_built,
    new_build,
    next_action,
    oplog_observed,
    touches,
    verified,
    writes_locked,
    writes_unlocked,
)
from opsmgr.store.engine import Store

ENTRY = {
    "dbName": "shop",
    "collectionName": "orders",
    "rsName": "rs0",
    "key": [["orderNo", 1]],
    "options": {"name": "orderNo_1", "unique": True},
}
MEMBERS = ("rs0_0", "rs0_1", "rs0_2")  # the primary last
TS = 1_000 << 32


def build(lock_primary: bool = False) -> UniqueIndexBuild:
    return new_build("b1", ENTRY, MEMBERS, lock_primary=lock_primary)


def listing(unique: bool = True) -> list[dict[str, Any]]:
    return [
        {"name": "_id_", "key": {"_id": 1}},
        {"name": "orderNo_1", "key": {"orderNo": 1}, "unique": unique},
    ]


def write(
    ns: str = "shop.orders", op: str = "i", o: dict[str, Any] | None = None, ts: int = TS + 5
) -> OplogRecord:
    return OplogRecord(ts=ts, op=op, ns=ns, o=o or {"_id": 1})


def drive(b: UniqueIndexBuild) -> tuple[UniqueIndexBuild, list[tuple[ActionKind, str | None]]]:
    """Carry out every action until nothing is left, as a faithful executor would."""
    done: list[tuple[ActionKind, str | None]] = []
    for _ in range(50):
        action = next_action(b)
        if action.kind in (ActionKind.NONE, ActionKind.WAIT_CONFIRMATION):
            return b, done
        done.append((action.kind, action.member))
        if action.kind is ActionKind.LOCK_WRITES:
            b = writes_locked(b)
        elif action.kind is ActionKind.UNLOCK_WRITES:
            b = writes_unlocked(b)
        elif action.kind is ActionKind.BUILD:
            b = member_built(b, str(action.member))
        elif action.kind is ActionKind.VERIFY:
            b = verified(b, {m: listing() for m in MEMBERS})
        else:
            b = index_dropped(b, str(action.member))
    raise AssertionError("the build never settled")


def test_waits_for_the_operator_then_builds_member_by_member() -> None:
    b = build()
    assert (
        next_action(b).kind is ActionKind.WAIT_CONFIRMATION
        and "stop the application's writes" in next_action(b).note
    )
    b = confirm(b, "alice", TS)
    assert (b.state, b.confirmed_by, b.watch_from_ts) == (BuildState.BUILDING, "alice", TS)
    b, actions = drive(b)
    assert b.state is BuildState.DONE and b.built == MEMBERS
    assert actions == [(ActionKind.BUILD, m) for m in MEMBERS] + [(ActionKind.VERIFY, None)]
    assert b.index_config() == ENTRY
    assert UniqueIndexBuild.from_json(b.to_json()) == b


def test_with_the_primary_held_it_is_unlocked_before_its_own_build() -> None:
    b, actions = drive(confirm(build(lock_primary=True), "alice", TS))
    assert b.state is BuildState.DONE and b.locked is None
    assert actions == [
        (ActionKind.LOCK_WRITES, "rs0_2"),
        (ActionKind.BUILD, "rs0_0"),
        (ActionKind.BUILD, "rs0_1"),
        (ActionKind.UNLOCK_WRITES, "rs0_2"),
        (ActionKind.BUILD, "rs0_2"),
        (ActionKind.VERIFY, None),
    ]


@pytest.mark.parametrize("lock_primary", [False, True])
@pytest.mark.parametrize("after_builds", [0, 1, 2, 3])
def test_a_write_during_the_build_aborts_and_undoes_everything(lock_primary: bool, after_builds: int) -> None:
    b = confirm(build(lock_primary), "alice", TS)
    if lock_primary:
        b = writes_locked(b)
    for m in MEMBERS[:after_builds]:
        b = writes_unlocked(b) if b.locked == m else b
        b = member_built(b, m)
    b = oplog_observed(b, [write(ns="shop.other"), write(ts=TS - 1), write(op="u")])
    assert b.state is BuildState.DROPPING and "a write to shop.orders (op 'u'" in str(b.reason)
    # The member being built may hold a partial index: it is dropped too.
    expected = MEMBERS[: after_builds + 1] if after_builds < 3 else MEMBERS
    assert b.to_drop == expected
    b, actions = drive(b)
    assert b.state is BuildState.ABORTED and b.locked is None
    assert set(b.dropped) == set(expected)
    still_held = lock_primary and after_builds < 3  # the primary is unlocked just before its own build
    assert ((ActionKind.UNLOCK_WRITES, "rs0_2") in actions) is still_held
    assert "happened during the build" in next_action(b).note


def test_writes_before_confirmation_or_after_the_end_are_not_watched() -> None:
    assert oplog_observed(build(), [write()]).state is BuildState.AWAITING_CONFIRMATION
    done, _ = drive(confirm(build(), "alice", TS))
    assert oplog_observed(done, [write()]).state is BuildState.DONE


def test_verification_failure_aborts() -> None:
    b = confirm(build(), "alice", TS)
    for m in MEMBERS:
        b = member_built(b, m)
    b = verified(b, {"rs0_0": listing(), "rs0_1": listing(unique=False), "rs0_2": []})
    assert b.state is BuildState.DROPPING and "rs0_1, rs0_2 lack the unique index" in str(b.reason)
    assert drive(b)[0].state is BuildState.ABORTED


def test_cancel_and_wrong_order() -> None:
    assert cancel(build(), "changed my mind").state is BuildState.ABORTED
    b = confirm(build(), "alice", TS)
    with pytest.raises(Conflict):
        confirm(b, "bob", TS)
    with pytest.raises(Conflict):
        member_built(b, "rs0_2")
    done, _ = drive(b)
    with pytest.raises(Conflict):
        cancel(done, "too late")


@pytest.mark.parametrize(
    ("record", "hit"),
    [
        (write(), True),
        (write(op="d"), True),
        (write(ns="shop.orders_archive"), False),
        (write(ns="shop.$cmd", op="c", o={"drop": "orders"}), True),
        (write(ns="shop.$cmd", op="c", o={"createIndexes": "orders", "v": 2}), True),
        (write(ns="admin.$cmd", op="c", o={"renameCollection": "shop.orders", "to": "shop.old"}), False),
        (write(ns="shop.$cmd", op="c", o={"renameCollection": "shop.orders", "to": "shop.old"}), True),
        (write(ns="shop.$cmd", op="c", o={"create": "customers"}), False),
        (write(ns="", op="n", o={"msg": "periodic noop"}), False),
    ],
)
def test_what_counts_as_a_write_to_the_collection(record: OplogRecord, hit: bool) -> None:
    assert touches(record, "shop", "orders") is hit


def test_only_unique_indexes_use_this_procedure() -> None:
    with pytest.raises(InvalidInput) as info:
        new_build("b1", {**ENTRY, "options": {"unique": False}}, MEMBERS)
    assert info.value.field == "options.unique"
    with pytest.raises(InvalidInput):
        new_build("b1", ENTRY, ("rs0_0", "rs0_0"))


def test_builds_are_kept_per_project_one_at_a_time_per_replica_set(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        builds = UniqueIndexBuilds(store)
        first = builds.create("g1", ENTRY, MEMBERS, lock_primary=True)
        with pytest.raises(Conflict):
            builds.create("g1", {**ENTRY, "collectionName": "carts"}, MEMBERS)
        other_project = builds.create("g2", ENTRY, MEMBERS)
        confirmed = builds.apply("g1", first.build_id, lambda b: confirm(b, "alice", TS))
        assert confirmed.state is BuildState.LOCKING_WRITES
        with pytest.raises(Conflict):
            builds.apply("g1", first.build_id, lambda b: confirm(b, "bob", TS))
        assert builds.get("g1", first.build_id) == confirmed  # a refused event changes nothing
        with pytest.raises(NotFound):
            builds.get("g2", first.build_id)
        aborted = builds.apply("g1", first.build_id, lambda b: oplog_observed(b, [write()]))
        assert aborted.state is BuildState.ABORTED  # nothing built, nothing locked yet: nothing to undo
        assert [b.build_id for b in builds.of_group("g1", active_only=True)] == []
        second = builds.create("g1", ENTRY, MEMBERS)
        assert {b.build_id for b in builds.of_group("g1")} == {first.build_id, second.build_id}
        assert builds.done("g2") == [] and other_project.state is BuildState.AWAITING_CONFIRMATION
    finally:
        store.close()

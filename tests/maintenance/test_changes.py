"""The change document (``maintenance.changes``) over a real application database (SQLite): a change begins
without the lease of the one before but never takes another procedure's, ends into the history announcing
the work changed, lets the change queued behind it begin, records moves only of itself and only on the
progress they were decided on, and is finished only when its progress says every member's cycle is done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.errors import Conflict
from opsmgr.maintenance import changes
from opsmgr.maintenance.leases import ROLLING, Lease, build_owner
from opsmgr.maintenance.moves import Move, MoveName, PlannedStep, Progress, Unit
from opsmgr.maintenance.rolling import RollingChange, Task
from opsmgr.store.engine import Change, Store

G = "g1"
CHANGE = RollingChange("rs0", "rs0", {"rs0_0": frozenset({Task.CHANGE_VERSION})})
CYCLE = (
    MoveName.ACQUIRE_LEASE,
    MoveName.RESTART_STANDALONE,
    MoveName.PERFORM_TASK,
    MoveName.RESTART_REPLSET,
    MoveName.WAIT_SECONDARY_CAUGHT_UP,
    MoveName.RELEASE_LEASE,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'app.db'}", name="application database")
    try:
        yield s
    finally:
        s.close()


def _leased(owner: str) -> dict[str, Any]:
    doc = changes.blank(G, "rs0")
    doc.update(lease=Lease("rs0_1", 0.0, 100.0, owner).to_json(), lastHolder="rs0_1")
    return doc


def _move(name: MoveName, *, first: bool = False) -> Move:
    plan = tuple(PlannedStep(m, "rs0_0") for m in CYCLE) if first else ()
    return Move(name, "rs0_0", "rs0_0", "", unit=Unit.MEMBER if first else None, plan=plan)


def test_a_change_begins_without_the_last_changes_lease_but_keeps_a_builds() -> None:
    own = _leased(ROLLING)
    changes.begin(own, CHANGE, None, 3, 10.0)
    assert changes.active(own) and own["lease"] is None and own["lastHolder"] is None
    assert changes.owner(own) == ROLLING and own["goalVersion"] == 3

    builds = _leased(build_owner("b1"))
    changes.begin(builds, CHANGE, None, 3, 10.0)
    assert changes.lease_state(builds).lease is not None and builds["lastHolder"] == "rs0_1"


def test_an_ended_change_goes_to_the_history_and_the_queued_one_begins(store: Store) -> None:
    heard: list[Change] = []
    store.on_change(heard.append)
    doc = changes.blank(G, "rs0")
    changes.begin(doc, CHANGE, None, 3, 10.0)
    first = doc["changeId"]
    doc["queued"] = {"changeId": "next", "change": CHANGE.to_json(), "startedFrom": None, "goalVersion": 4}
    with store.tx() as t:
        changes.end(t, doc, 20.0, "superseded")
        assert changes.state(doc) == "DONE" and not changes.active(doc) and doc["report"] is not None
        changes.promote(doc, 21.0)
        t.put("maintenance_leases", doc)
    (kept,) = store.find(changes.HISTORY, groupId=G)
    assert kept["_id"] == first and kept["status"]["reason"] == "superseded" and "startedFrom" not in kept
    assert heard == [Change(WORK_CHANGED, G)]
    assert doc["changeId"] == "next" and changes.active(doc) and doc["goalVersion"] == 4
    assert "queued" not in doc


def test_moves_are_recorded_only_for_the_change_under_way_on_the_progress_they_were_decided_on() -> None:
    doc = changes.blank(G, "rs0")
    changes.begin(doc, CHANGE, None, 3, 10.0)
    with pytest.raises(Conflict, match="no longer the one under way"):
        changes.apply_move(doc, "another", _move(MoveName.ACQUIRE_LEASE, first=True), 0, 11.0, {})
    with pytest.raises(Conflict, match="decide again"):
        changes.apply_move(doc, doc["changeId"], _move(MoveName.ACQUIRE_LEASE, first=True), 5, 11.0, {})
    changes.apply_move(doc, doc["changeId"], _move(MoveName.ACQUIRE_LEASE, first=True), 0, 11.0, {})
    doc["lease"] = Lease("rs0_0", 11.0, 100.0).to_json()
    for name in (MoveName.RESTART_STANDALONE, MoveName.PERFORM_TASK, MoveName.RESTART_REPLSET):
        changes.apply_move(doc, None, _move(name), None, 12.0, {})
    assert not changes.finished(doc, 13.0), "the member is not caught up and has the lease"
    changes.apply_move(doc, None, _move(MoveName.RELEASE_LEASE), None, 13.0, {})
    assert doc["lease"] is None and doc["lastHolder"] == "rs0_0"
    assert [e["kind"] for e in doc["events"]] == ["memberOut", "memberBack"]


def test_a_change_is_finished_once_every_members_cycle_is_recorded() -> None:
    doc = changes.blank(G, "rs0")
    changes.begin(doc, CHANGE, None, 3, 10.0)
    assert not changes.finished(doc, 11.0), "nothing done yet"
    for name in CYCLE[:4]:
        changes.apply_move(doc, None, _move(name, first=name is MoveName.ACQUIRE_LEASE), None, 11.0, {})
    assert not changes.finished(doc, 12.0), "the lease is still to be released"
    assert Progress.from_json(doc["progress"]).in_unit
    changes.apply_move(doc, None, _move(MoveName.RELEASE_LEASE), None, 12.0, {})
    assert changes.finished(doc, 13.0)
    assert Progress.from_json(doc["progress"]).done == ("rs0_0",)

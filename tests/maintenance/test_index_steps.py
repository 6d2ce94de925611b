"""A unique index build's member steps over a real application database (SQLite), without any process: each
member's turn is a one-member rolling change registered with the replica set's one maintenance lease, seen as
any rolling change, taking turns with a config PUT's change, and recording its outcome on the build once it
is DONE."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsmgr.alerts import AlertService
from opsmgr.automation.service import AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.maintenance.index_service import IndexBuildService
from opsmgr.maintenance.leases import Deny, Grant, build_owner
from opsmgr.maintenance.moves import Done, Move, MoveName, PlannedStep, Unit
from opsmgr.maintenance.rolling import validate_transition
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.maintenance.wire import decision_to_json, move_to_json
from opsmgr.store.engine import Store
from tests.maintenance.helpers import config

G = "g1"
OPTIME = 1_700_000_000 << 32
BODY = {"rsName": "rs0", "dbName": "shop", "collectionName": "orders", "key": [["orderNo", 1]]}
HEALTHY = {"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"}


@dataclass
class World:
    store: Store
    automation: AutomationService
    maintenance: MaintenanceService
    builds: IndexBuildService

    def report(self, states: dict[str, str]) -> None:
        """Each member's agent reports its state (host h{i}.example.net runs rs0_{i})."""
        for name, state in states.items():
            observed: dict[str, Any] = {"running": state != "DOWN", "optimeTs": OPTIME}
            observed["replicaStateName"] = None if state == "DOWN" else state
            report = StatusReport.model_validate({"processes": [{"name": name, "observed": observed}]})
            self.automation.record_status(G, f"h{name[-1]}.example.net", report)

    def start(self, key: str = "orderNo") -> str:
        build = self.builds.create(G, {**BODY, "key": [[key, 1]]})
        self.builds.confirm(G, build["id"], {"writesStopped": True}, "tester")
        return str(build["id"])

    def step_doc(self) -> dict[str, Any]:
        doc = self.maintenance.active_doc(G, "rs0")
        assert doc is not None
        return doc

    def carry_out(self, member: str, *, refused: str | None = None) -> None:
        """The member step's moves as its agent carries them out, then the decision that it is done."""
        self.begin(member)
        self.finish(member, refused=refused)

    def begin(self, member: str) -> None:
        """The step's first move: its agent takes the lease."""
        change_id = self.step_doc()["changeId"]
        moves = (
            MoveName.ACQUIRE_LEASE,
            MoveName.RESTART_STANDALONE,
            MoveName.PERFORM_TASK,
            MoveName.RESTART_REPLSET,
            MoveName.WAIT_SECONDARY_CAUGHT_UP,
            MoveName.RELEASE_LEASE,
        )
        plan = tuple(PlannedStep(m, member) for m in moves)
        first = move_to_json(Move(MoveName.ACQUIRE_LEASE, member, member, "", unit=Unit.MEMBER, plan=plan))
        granted = self.maintenance.acquire(G, "rs0", member, change_id=change_id, move=first, seq=0)
        assert isinstance(granted, Grant), granted

    def finish(self, member: str, *, refused: str | None = None) -> None:
        """The rest of the step, then the decision that it is done."""
        change_id = self.step_doc()["changeId"]
        for name in (MoveName.RESTART_STANDALONE, MoveName.PERFORM_TASK, MoveName.RESTART_REPLSET):
            move = move_to_json(Move(name, member, member, ""))
            said = refused if name is MoveName.PERFORM_TASK else None
            self.maintenance.record(G, "rs0", change_id, move, refused=said)
        release = move_to_json(Move(MoveName.RELEASE_LEASE, member, member, ""))
        self.maintenance.record(G, "rs0", change_id, release)
        done = decision_to_json(Done("the rolling change of rs0 is complete"))
        self.maintenance.report(G, "rs0", change_id, decision=done, from_primary=True)


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}", name="application database")
    automation = AutomationService(store, lambda s: s, lambda s: s, validate_transition=validate_transition)
    maintenance = MaintenanceService(
        store,
        AlertService(store),
        goal=automation.config,
        statuses=automation.agent_statuses,
        encrypt=lambda s: s,
        decrypt=lambda s: s,
    )
    automation.on_config_change.append(maintenance.register)
    builds = IndexBuildService(
        store,
        goal=automation.config,
        statuses=automation.agent_statuses,
        write_goal=lambda g, c, v: automation.put_config(g, c, allow_unique_indexes=True, expected_version=v),
        maintenance=maintenance,
    )
    maintenance.on_step_done.append(builds.step_done)
    automation.put_config(G, config(3))
    world = World(store, automation, maintenance, builds)
    world.report(HEALTHY)
    try:
        yield world
    finally:
        store.close()


def _upgraded() -> dict[str, Any]:
    out = copy.deepcopy(config(3))
    for p in out["processes"]:
        p["version"] = "7.0.6"
    return out


def test_a_member_step_is_a_one_member_rolling_change_holding_the_sets_lease(w: World) -> None:
    build_id = w.start()
    other = w.builds.take_step(G, build_id, "rs0_1")
    assert isinstance(other, Deny) and "only when its turn comes" in other.reason
    assert w.maintenance.active_sets(G) == []

    assert isinstance(w.builds.take_step(G, build_id, "rs0_0"), Grant)
    doc = w.step_doc()
    assert doc["change"]["tasks"] == {"rs0_0": ["buildUniqueIndex"]} and doc["change"]["buildId"] == build_id
    assert doc["change"]["indexBuilds"][0]["options"] == {"unique": True, "name": "orderNo_1"}
    lease = w.maintenance.state_of_lease(G, "rs0")
    assert (lease["holder"], lease["owner"]) == ("rs0_0", build_owner(build_id))
    # Its agents are told, as for any rolling change, and carry it out with the procedure's moves.
    assert w.maintenance.active_hosts(G)["rs0"] == {f"h{i}.example.net" for i in range(3)}
    view = w.maintenance.agent_view(G, "rs0")
    assert view["owner"] == build_owner(build_id) and view["lease"]["holder"] == "rs0_0"
    (listed,) = w.maintenance.changes(G)
    assert listed["state"] == "RUNNING" and listed["tasks"] == {"rs0_0": ["buildUniqueIndex"]}
    assert listed["progress"]["membersTotal"] == 1
    (status,) = w.maintenance.status_views(G)
    assert status["changeId"] == doc["changeId"]
    assert w.builds.get(G, build_id)["step"]["changeId"] == doc["changeId"]

    # Its agent asking again (a lost answer) gets the same step, not a second one.
    assert isinstance(w.builds.take_step(G, build_id, "rs0_0"), Grant)
    assert w.step_doc()["changeId"] == doc["changeId"]

    w.carry_out("rs0_0")
    build = w.builds.get(G, build_id)
    assert build["built"] == ["rs0_0"] and build["nextAction"]["member"] == "rs0_1" and build["step"] is None
    assert build["lastStep"]["note"] == (
        "restarted standalone on port 37017, built orderNo_1 (1 of 3), restarted in replSet mode, caught up"
    )
    assert w.maintenance.active_sets(G) == [] and w.maintenance.state_of_lease(G, "rs0")["holder"] is None
    assert [c["state"] for c in w.maintenance.changes(G)] == ["DONE"]


def test_a_config_change_and_a_member_step_take_turns_under_the_one_lease(w: World) -> None:
    build_id = w.start()
    assert isinstance(w.builds.take_step(G, build_id, "rs0_0"), Grant)
    step_id = w.step_doc()["changeId"]

    # A PUT while the step is under way: its change waits, named as waiting for the build.
    w.automation.put_config(G, _upgraded())
    assert w.step_doc()["changeId"] == step_id
    queued = next(c for c in w.maintenance.changes(G) if c["state"] == "QUEUED")
    assert set(queued["tasks"]) == {"rs0_0", "rs0_1", "rs0_2"}
    assert queued["reason"].startswith(f"a unique index build {build_id} on shop.orders is under way")
    denied = w.maintenance.acquire(G, "rs0", "rs0_1")
    assert isinstance(denied, Deny)
    assert denied.reason.startswith(f"a unique index build {build_id} on shop.orders is under way: rs0_0")

    # The step ends: the config's change begins (under the id it was listed with), and the build's next
    # step waits for it, told why.
    w.carry_out("rs0_0")
    running = w.step_doc()
    assert running["changeId"] == queued["id"] and running["change"]["buildId"] is None
    assert running["status"]["state"] == "RUNNING" and running["goalVersion"] == 2
    assert w.builds.get(G, build_id)["built"] == ["rs0_0"]
    waits = w.builds.take_step(G, build_id, "rs0_1")
    assert isinstance(waits, Deny)
    assert waits.reason == (
        "a rolling change of rs0 is under way (rs0_0, rs0_1, rs0_2): one change per replica set at a time"
    )
    # The config's change takes the lease as any: a secondary first.
    assert isinstance(w.maintenance.acquire(G, "rs0", "rs0_0"), Grant)


def test_a_member_step_gets_the_lease_rules_of_any_member(w: World) -> None:
    build_id = w.start()
    w.report({"rs0_1": "DOWN"})
    denied = w.builds.take_step(G, build_id, "rs0_0")
    assert isinstance(denied, Deny) and "another voting member is unavailable: rs0_1 (DOWN)" in denied.reason
    assert w.maintenance.active_sets(G) == [], "nothing registered without the lease"
    w.report({"rs0_1": "SECONDARY"})
    assert isinstance(w.builds.take_step(G, build_id, "rs0_0"), Grant)


def test_a_step_the_build_no_longer_needs_is_withdrawn_unless_begun(w: World) -> None:
    build_id = w.start()
    assert isinstance(w.builds.take_step(G, build_id, "rs0_0"), Grant)
    write = {"ts": OPTIME + 5, "op": "i", "ns": "shop.orders", "o": {"_id": 1}}
    aborted = w.builds.on_event(G, build_id, "h2.example.net", {"type": "oplog", "records": [write]})
    # Nothing of the build step was carried out: it is withdrawn, and the drop of what it may have left
    # is the next step.
    assert aborted["state"] == "DROPPING" and aborted["nextAction"]["kind"] == "DropIndex"
    (withdrawn,) = w.maintenance.changes(G)
    assert withdrawn["state"] == "DONE" and "no longer needs it" in withdrawn["reason"]
    assert isinstance(w.builds.take_step(G, build_id, "rs0_0"), Grant)
    assert w.step_doc()["change"]["tasks"] == {"rs0_0": ["dropUniqueIndex"]}
    w.carry_out("rs0_0")
    done = w.builds.get(G, build_id)
    assert done["state"] == "ABORTED" and done["dropped"] == ["rs0_0"]
    assert "dropped orderNo_1" in done["lastStep"]["note"]

    # A step begun runs to its end, and its member is dropped in turn.
    second = w.start("sku")
    assert isinstance(w.builds.take_step(G, second, "rs0_0"), Grant)
    change_id = w.step_doc()["changeId"]
    w.begin("rs0_0")
    cancelled = w.builds.cancel(G, second, "tester")
    assert cancelled["state"] == "DROPPING" and cancelled["step"]["changeId"] == change_id
    busy = w.builds.take_step(G, second, "rs0_0")
    assert isinstance(busy, Deny) and "(rs0_0): one change per replica set at a time" in busy.reason
    w.finish("rs0_0")
    assert w.builds.get(G, second)["state"] == "DROPPING", "built, then dropped in turn"
    assert isinstance(w.builds.take_step(G, second, "rs0_0"), Grant)
    assert w.step_doc()["change"]["tasks"] == {"rs0_0": ["dropUniqueIndex"]}


def test_a_member_refusing_the_index_aborts_the_build_with_its_words_once_back(w: World) -> None:
    build_id = w.start("sku")
    assert isinstance(w.builds.take_step(G, build_id, "rs0_0"), Grant)
    words = "rs0_0 refused to build the unique index sku_1 on shop.orders: E11000 duplicate key error"
    change_id = w.step_doc()["changeId"]
    w.carry_out("rs0_0", refused=words)
    aborted = w.builds.get(G, build_id)
    assert aborted["state"] == "ABORTED" and aborted["reason"] == words
    assert aborted["dropped"] == ["rs0_0"] and aborted["lastStep"]["changeId"] == change_id
    assert "rs0_0 refused the index, dropped what it left" in aborted["lastStep"]["note"]

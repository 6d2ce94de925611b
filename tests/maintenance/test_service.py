"""The server's maintenance service over a real application database (SQLite), without any process: changes
registered by config PUTs, the agents' view, leases with health from agent reports, server-side progress,
decisions folded into status with the member-failed alert, and the report once done."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsmgr.alerts import AlertService, AlertStatus
from opsmgr.automation.service import AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.errors import Conflict
from opsmgr.maintenance.leases import Deny, Grant, build_owner
from opsmgr.maintenance.procedure import (
    BlockCause,
    Blocked,
    Done,
    Move,
    MoveName,
    PlannedStep,
    Progress,
    Unit,
)
from opsmgr.maintenance.report import ALERT_MEMBER_FAILED
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.maintenance.snapshot import Policy
from opsmgr.maintenance.wire import decision_to_json, move_to_json
from opsmgr.store.engine import Store
from tests.maintenance.helpers import config, name_of

G = "g1"


class Clock:
    def __init__(self) -> None:
        self.t = time.time() - 1000  # behind the wall clock the status reports are stamped with

    def __call__(self) -> float:
        return self.t


@dataclass
class World:
    store: Store
    automation: AutomationService
    alerts: AlertService
    service: MaintenanceService
    clock: Clock

    def put(self, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self.automation.put_config(G, copy.deepcopy(body), **kw)

    def report_states(self, states: dict[str, str]) -> None:
        """Each member's agent reports its state (host h{i}.example.net runs rs0_{i})."""
        for name, state in states.items():
            i = int(name.rsplit("_", 1)[1])
            observed = {"running": state != "DOWN", "replicaStateName": None if state == "DOWN" else state}
            report = StatusReport.model_validate({"processes": [{"name": name, "observed": observed}]})
            self.automation.record_status(G, f"h{i}.example.net", report)

    def doc(self) -> dict[str, Any]:
        doc = self.service.active_doc(G, "rs0")
        assert doc is not None
        return doc


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}", name="application database")
    clock = Clock()
    automation = AutomationService(store, lambda s: s, lambda s: s)
    alerts = AlertService(store, clock=clock)
    service = MaintenanceService(
        store,
        alerts,
        goal=automation.config,
        statuses=automation.agent_statuses,
        encrypt=lambda s: s,
        decrypt=lambda s: s,
        policy=Policy(lease_ttl_s=30),
        clock=clock,
    )
    automation.on_config_change.append(service.register)
    try:
        yield World(store, automation, alerts, service, clock)
    finally:
        store.close()


def _upgraded(
    base: dict[str, Any], version: str = "7.0.6", only: tuple[int, ...] = (0, 1, 2)
) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for i in only:
        out["processes"][i]["version"] = version
    return out


def _cycle(member: str) -> tuple[PlannedStep, ...]:
    moves = (
        MoveName.ACQUIRE_LEASE,
        MoveName.RESTART_STANDALONE,
        MoveName.PERFORM_TASK,
        MoveName.RESTART_REPLSET,
        MoveName.WAIT_SECONDARY_CAUGHT_UP,
        MoveName.RELEASE_LEASE,
    )
    return tuple(PlannedStep(m, member) for m in moves)


def _move(name: MoveName, member: str, *, first: bool = False) -> dict[str, Any]:
    plan = _cycle(member) if first else ()
    return move_to_json(Move(name, member, member, "", unit=Unit.MEMBER if first else None, plan=plan))


def _maintain(w: World, member: str) -> None:
    """Carry one secondary's whole cycle through the service, as its agent would."""
    change_id = w.doc()["changeId"]
    seq = Progress.from_json(w.doc()["progress"]).seq
    granted = w.service.acquire(
        G, "rs0", member, change_id=change_id, move=_move(MoveName.ACQUIRE_LEASE, member, first=True), seq=seq
    )
    assert isinstance(granted, Grant), granted
    for name in (MoveName.RESTART_STANDALONE, MoveName.PERFORM_TASK, MoveName.RESTART_REPLSET):
        w.clock.t += 1
        w.service.record(G, "rs0", change_id, _move(name, member))
    w.clock.t += 1
    w.service.record(G, "rs0", change_id, _move(MoveName.RELEASE_LEASE, member))


def test_a_put_registers_one_change_per_set_that_rolls_and_adoption_registers_none(w: World) -> None:
    base = config(3)
    w.put(base)
    assert w.service.active_sets(G) == []
    w.put(_upgraded(base))
    doc = w.doc()
    assert set(doc["change"]["tasks"]) == {name_of(i) for i in range(3)}
    assert doc["status"]["state"] == "RUNNING" and doc["goalVersion"] == 2

    # A change whose members need no restart (a priority) registers nothing new.
    prioritised = _upgraded(base)
    prioritised["replicaSets"][0]["members"][0]["priority"] = 2
    w.put(prioritised)
    assert w.doc()["changeId"] == doc["changeId"]

    # Restoration Mode adopting a config the agents already run never starts a roll.
    w.put(_upgraded(base, "7.0.8"), check_transition=False)
    assert w.doc()["change"]["reasons"] == doc["change"]["reasons"]


def test_a_second_put_recomputes_from_the_start_keeping_members_whose_tasks_did_not_change(w: World) -> None:
    base = config(3)
    w.put(base)
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"})
    w.put(_upgraded(base))
    _maintain(w, "rs0_0")
    _maintain(w, "rs0_1")
    assert Progress.from_json(w.doc()["progress"]).done == ("rs0_0", "rs0_1")

    # rs0_1 now also gets a new argument: it is redone; rs0_0's tasks are the same, it stays done.
    more = _upgraded(base)
    more["processes"][1]["args2_6"]["net"]["maxIncomingConnections"] = 100
    w.put(more)
    doc = w.doc()
    assert Progress.from_json(doc["progress"]).done == ("rs0_0",)
    assert sorted(doc["change"]["tasks"]["rs0_1"]) == ["changeArgs", "changeVersion"]

    # Going back to the start config leaves nothing to roll: the change ends, superseded.
    w.put(base)
    assert w.service.active_sets(G) == []
    (ended,) = w.service.changes(G)
    assert ended["state"] == "DONE" and "superseded" in ended["reason"]


def test_the_agent_view_carries_the_change_the_lease_and_the_members_as_reported(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base))
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "DOWN", "rs0_2": "PRIMARY"})
    view = w.service.agent_view(G, "rs0")
    assert view["active"] and view["changeId"] == w.doc()["changeId"]
    assert view["names"]["h1.example.net:27017"] == "rs0_1"
    states = {m["name"]: (m["state"], m["health"]) for m in view["members"]}
    assert states == {"rs0_0": ("SECONDARY", True), "rs0_1": ("DOWN", False), "rs0_2": ("PRIMARY", True)}
    assert view["policy"]["lease_ttl_s"] == 30
    assert view["lease"]["holder"] is None
    assert w.service.agent_view(G, "other") == {"replicaSet": "other", "active": False, "state": None}


def test_leases_follow_the_agents_reports(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base))
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "DOWN", "rs0_2": "PRIMARY"})
    denied = w.service.acquire(G, "rs0", "rs0_0")
    assert isinstance(denied, Deny) and "rs0_1" in denied.reason

    w.report_states({"rs0_1": "SECONDARY"})
    primary_first = w.service.acquire(G, "rs0", "rs0_2")
    assert isinstance(primary_first, Deny) and "goes last" in primary_first.reason
    assert isinstance(w.service.acquire(G, "rs0", "rs0_0", refuse="Restoration Mode"), Deny)
    assert isinstance(w.service.acquire(G, "rs0", "rs0_0"), Grant)
    other = w.service.acquire(G, "rs0", "rs0_1")
    assert isinstance(other, Deny) and "rs0_0 holds" in other.reason
    assert isinstance(w.service.renew(G, "rs0", "rs0_0"), Grant)
    assert isinstance(w.service.renew(G, "rs0", "rs0_1"), Deny)
    assert w.service.release(G, "rs0") is True  # an operator's force release
    assert w.service.release(G, "rs0", "rs0_0") is False


def test_progress_is_recorded_by_the_server_and_a_stale_unit_start_is_refused(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base))
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"})
    _maintain(w, "rs0_0")
    doc = w.doc()
    assert doc["lease"] is None and doc["lastHolder"] == "rs0_0"
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds == ["memberOut", "memberBack"]
    with pytest.raises(Conflict, match="decide again"):
        w.service.record(G, "rs0", doc["changeId"], _move(MoveName.ACQUIRE_LEASE, "rs0_1", first=True), seq=0)
    with pytest.raises(Conflict, match="no longer the one"):
        w.service.record(G, "rs0", "another", _move(MoveName.PERFORM_TASK, "rs0_1"))


def test_a_failure_opens_the_alert_and_the_next_decision_closes_it(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base))
    change_id = w.doc()["changeId"]
    failure = Blocked("rs0_0 did not come back", BlockCause.FAILURE, "rs0_0")
    status = w.service.report(G, "rs0", change_id, decision=decision_to_json(failure), from_primary=True)
    assert status["state"] == "FAILED"
    (alert,) = w.alerts.of_group(G, AlertStatus.OPEN)
    assert alert["eventTypeName"] == ALERT_MEMBER_FAILED and alert["replicaSetName"] == "rs0"
    assert alert["hostnameAndPort"] == "h0.example.net:27017"

    # Another agent's view does not override the primary's while the primary's agent reports.
    moving = decision_to_json(Move(MoveName.RESTART_REPLSET, "rs0_0", "rs0_0", "restart rs0_0"))
    assert w.service.report(G, "rs0", change_id, decision=moving)["state"] == "FAILED"
    assert w.service.report(G, "rs0", change_id, decision=moving, from_primary=True)["state"] == "RESUMED"
    assert w.alerts.of_group(G, AlertStatus.OPEN) == []
    view = w.service.status_views(G)[0]
    assert view["replicaSet"] == "rs0" and view["report"]["failures"] == 1


def test_done_is_taken_only_when_the_progress_agrees_and_then_reports_the_figures(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base, only=(0, 1)))
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"})
    change_id = w.doc()["changeId"]
    done = decision_to_json(Done("complete"))
    t0 = w.clock.t
    w.service.report(G, "rs0", change_id, events=[{"t": t0, "kind": "primary", "member": "rs0_2"}])
    assert w.service.report(G, "rs0", change_id, decision=done)["state"] == "RUNNING", "not done yet"
    _maintain(w, "rs0_0")
    _maintain(w, "rs0_1")
    late = [
        {"t": t0 + 1, "kind": "noPrimary"},
        {"t": t0 - 5, "kind": "primary", "member": "rs0_0"},  # older than what is known: ignored
        {"t": t0 + 2, "kind": "primary", "member": "rs0_1"},
    ]
    w.service.report(G, "rs0", change_id, events=late)
    w.clock.t += 1
    assert w.service.report(G, "rs0", change_id, decision=done)["state"] == "DONE"
    assert w.service.active_sets(G) == []
    (listed,) = w.service.changes(G)
    assert listed["state"] == "DONE" and listed["progress"]["stepsDone"] == listed["progress"]["stepsTotal"]
    report = listed["report"]
    assert set(report["memberSecsOut"]) == {"rs0_0", "rs0_1"}
    assert report["elections"] == 1 and report["noPrimarySecs"] == pytest.approx(1.0)
    assert w.service.change(G, listed["id"])["id"] == listed["id"]


def test_the_alert_of_a_superseded_change_is_closed_by_the_periodic_work(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base))
    failure = decision_to_json(Blocked("rs0_1 did not come back", BlockCause.FAILURE, "rs0_1"))
    w.service.report(G, "rs0", w.doc()["changeId"], decision=failure, from_primary=True)
    assert w.service.settle_alerts() == 0, "the change is still under way"
    w.put(base)  # back to where it started: nothing to roll, the change ends
    assert len(w.alerts.of_group(G, AlertStatus.OPEN)) == 1
    assert w.service.settle_alerts() == 1
    assert w.alerts.of_group(G, AlertStatus.OPEN) == []
    assert w.service.settle_alerts() == 0


def test_a_denied_lease_is_the_stated_reason_unless_a_failure_stops_the_change(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base))
    change_id = w.doc()["changeId"]
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "DOWN", "rs0_2": "PRIMARY"})
    assert isinstance(w.service.acquire(G, "rs0", "rs0_0"), Deny)
    status = w.doc()["status"]
    assert status["state"] == "BLOCKED" and "lease for rs0_0 is denied" in status["reason"]
    # The primary's agent, which sees the lease step ahead, does not hide the denial.
    asking = decision_to_json(Move(MoveName.ACQUIRE_LEASE, "rs0_0", "rs0_0", "ask for the lease"))
    assert w.service.report(G, "rs0", change_id, decision=asking, from_primary=True)["state"] == "BLOCKED"

    failure = decision_to_json(Blocked("rs0_1 did not come back", BlockCause.FAILURE, "rs0_1"))
    w.service.report(G, "rs0", change_id, decision=failure, from_primary=True)
    assert isinstance(w.service.acquire(G, "rs0", "rs0_0"), Deny)
    assert w.doc()["status"]["state"] == "FAILED", "a denial does not hide the failure"
    assert len(w.alerts.of_group(G, AlertStatus.OPEN)) == 1


# --- the lease shared with the supervised unique index build ---------------------------------------------
# Each waits with the other's reason; a build's lease outlives the registration and the end of rolling
# changes, and a lease answers only to its own owner (even for the same member).

BUILD = build_owner("b1")
PURPOSE = "a unique index build b1 on shop.orders is under way"

HEALTHY = {"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"}


def _for_build(w: World, member: str) -> Grant | Deny:
    return w.service.acquire_for(G, "rs0", member, owner=BUILD, purpose=PURPOSE)


def test_a_build_holding_the_lease_blocks_the_rolling_change_with_its_reason(w: World) -> None:
    base = config(3)
    w.put(base)
    w.report_states(HEALTHY)
    assert isinstance(_for_build(w, "rs0_1"), Grant), "no rolling change needed to take it"
    w.put(_upgraded(base))
    assert w.service.state_of_lease(G, "rs0")["holder"] == "rs0_1", "registering a change keeps it"

    denied = w.service.acquire(G, "rs0", "rs0_0")
    assert isinstance(denied, Deny) and denied.reason.startswith(PURPOSE), denied
    status = w.doc()["status"]
    assert status["state"] == "BLOCKED" and PURPOSE in status["reason"]
    # The same member under the rolling change is somebody else too.
    assert isinstance(w.service.acquire(G, "rs0", "rs0_1"), Deny)
    assert isinstance(w.service.renew(G, "rs0", "rs0_1"), Deny)
    assert w.service.release(G, "rs0", "rs0_1") is False

    assert isinstance(w.service.renew(G, "rs0", "rs0_1", owner=BUILD), Grant)
    assert w.service.release(G, "rs0", "rs0_1", owner=BUILD) is True
    assert isinstance(w.service.acquire(G, "rs0", "rs0_0"), Grant)


def test_a_rolling_change_holding_the_lease_keeps_the_build_waiting(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base))
    w.report_states(HEALTHY)
    assert isinstance(w.service.acquire(G, "rs0", "rs0_0"), Grant)
    denied = _for_build(w, "rs0_1")
    assert isinstance(denied, Deny) and denied.reason.startswith(
        "a rolling change of rs0 is under way: rs0_0"
    )
    assert isinstance(w.service.renew(G, "rs0", "rs0_0", owner=BUILD), Deny)
    assert w.service.release(G, "rs0", "rs0_0", owner=BUILD) is False
    assert w.service.state_of_lease(G, "rs0")["holder"] == "rs0_0"


def test_the_build_gets_the_same_health_rules(w: World) -> None:
    w.put(config(3))
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "DOWN", "rs0_2": "PRIMARY"})
    denied = _for_build(w, "rs0_0")
    assert isinstance(denied, Deny) and "rs0_1 (DOWN)" in denied.reason
    w.report_states({"rs0_1": "SECONDARY"})
    # The build orders its members itself: its primary, last, is not held back by a rolling order.
    assert isinstance(_for_build(w, "rs0_2"), Grant)
    assert isinstance(_for_build(w, "rs0_0"), Deny), "one member out at a time"


def test_an_expired_build_lease_keeps_the_set_in_while_its_member_is_unhealthy(w: World) -> None:
    base = config(3)
    w.put(base)
    w.report_states(HEALTHY)
    assert isinstance(_for_build(w, "rs0_1"), Grant)
    w.put(_upgraded(base))
    w.report_states({"rs0_1": "DOWN"})  # standalone on its maintenance port, its agent gone
    w.clock.t += 31  # the lease's life (30 s) is over
    for member in ("rs0_0", "rs0_1"):
        denied = w.service.acquire(G, "rs0", member)
        assert isinstance(denied, Deny) and "rs0_1, whose lease expired, is still DOWN" in denied.reason
    w.report_states({"rs0_1": "SECONDARY"})
    assert isinstance(w.service.acquire(G, "rs0", "rs0_1"), Grant)


def test_the_end_of_a_rolling_change_leaves_a_builds_lease(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(_upgraded(base))
    w.report_states(HEALTHY)
    assert isinstance(_for_build(w, "rs0_0"), Grant)
    w.put(base)  # back to the start: the change is superseded and ends
    assert w.service.active_doc(G, "rs0") is None
    assert w.service.state_of_lease(G, "rs0")["holder"] == "rs0_0"

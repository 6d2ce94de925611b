"""Moves and decisions agents report (``maintenance.recorder``), through the maintenance service over a real
application database: progress recorded by the server, the member-failed alert opened and closed, Done taken
only when the progress agrees, with the report's figures."""

from __future__ import annotations

import pytest

from opsmgr.alerts import AlertStatus
from opsmgr.errors import Conflict
from opsmgr.maintenance.moves import BlockCause, Blocked, Done, Move, MoveName
from opsmgr.maintenance.report import ALERT_MEMBER_FAILED
from opsmgr.maintenance.wire import decision_to_json
from tests.maintenance.helpers import config
from tests.maintenance.service_world import G, World, maintain, move, upgraded


def test_progress_is_recorded_by_the_server_and_a_stale_unit_start_is_refused(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(upgraded(base))
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"})
    maintain(w, "rs0_0")
    doc = w.doc()
    assert doc["lease"] is None and doc["lastHolder"] == "rs0_0"
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds == ["memberOut", "memberBack"]
    with pytest.raises(Conflict, match="decide again"):
        w.service.record(G, "rs0", doc["changeId"], move(MoveName.ACQUIRE_LEASE, "rs0_1", first=True), seq=0)
    with pytest.raises(Conflict, match="no longer the one"):
        w.service.record(G, "rs0", "another", move(MoveName.PERFORM_TASK, "rs0_1"))


def test_a_failure_opens_the_alert_and_the_next_decision_closes_it(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(upgraded(base))
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
    w.put(upgraded(base, only=(0, 1)))
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"})
    change_id = w.doc()["changeId"]
    done = decision_to_json(Done("complete"))
    t0 = w.clock.t
    w.service.report(G, "rs0", change_id, events=[{"t": t0, "kind": "primary", "member": "rs0_2"}])
    assert w.service.report(G, "rs0", change_id, decision=done)["state"] == "RUNNING", "not done yet"
    maintain(w, "rs0_0")
    maintain(w, "rs0_1")
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
    w.put(upgraded(base))
    failure = decision_to_json(Blocked("rs0_1 did not come back", BlockCause.FAILURE, "rs0_1"))
    w.service.report(G, "rs0", w.doc()["changeId"], decision=failure, from_primary=True)
    assert w.service.settle_alerts() == 0, "the change is still under way"
    w.put(base)  # back to where it started: nothing to roll, the change ends
    assert len(w.alerts.of_group(G, AlertStatus.OPEN)) == 1
    assert w.service.settle_alerts() == 1
    assert w.alerts.of_group(G, AlertStatus.OPEN) == []
    assert w.service.settle_alerts() == 0

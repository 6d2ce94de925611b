"""What a rolling change's record keeps, through the maintenance service over a real application database:
the warnings its decisions gave (shown by the finished change too), the majority lost while it runs (the
``MAINTENANCE_MAJORITY_LOST`` alert open for as long, the change BLOCKED naming it), and the temporary
arbiter listed as a host while it exists."""

from __future__ import annotations

import copy

from opsmgr.alerts import AlertStatus
from opsmgr.maintenance.moves import Done, Move, MoveName, PlannedStep, Unit, temporary_arbiter_name
from opsmgr.maintenance.watch import MAJORITY_LOST
from opsmgr.maintenance.watcher import ALERT_MAJORITY_LOST
from opsmgr.maintenance.wire import decision_to_json, move_to_json
from tests.maintenance.helpers import config
from tests.maintenance.service_world import G, World, maintain, upgraded

HEALTHY = {"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"}


def _decide(w: World, warnings: tuple[str, ...], member: str = "rs0_0") -> None:
    move = Move(MoveName.ACQUIRE_LEASE, member, member, "ask for the lease", warnings=warnings)
    w.service.report(G, "rs0", w.doc()["changeId"], decision=decision_to_json(move), from_primary=True)


def test_every_warning_is_kept_and_the_finished_change_still_shows_it(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(upgraded(base, only=(0,)))
    w.report_states(HEALTHY)
    _decide(w, ("one more failure loses the majority of rs0",))
    w.clock.t += 5
    _decide(w, ("one more failure loses the majority of rs0", "no oplog window is known"))
    _decide(w, ())
    (running,) = w.service.changes(G)
    assert running["warnings"] == ["one more failure loses the majority of rs0", "no oplog window is known"]
    assert w.service.status_views(G)[0]["warnings"] == [], "the status holds the current decision's only"
    maintain(w, "rs0_0")
    w.clock.t += 1
    done = w.service.report(G, "rs0", w.doc()["changeId"], decision=decision_to_json(Done("complete")))
    assert done["state"] == "DONE"
    (finished,) = w.service.changes(G)
    assert finished["state"] == "DONE" and finished["warnings"] == running["warnings"]
    first, second = finished["warningsSeen"]
    assert first["member"] == "rs0_0" and first["firstSeen"] < second["firstSeen"]


def test_a_lost_majority_opens_the_alert_blocks_the_change_and_is_kept_with_its_duration(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(upgraded(base))
    w.report_states(HEALTHY)
    assert w.service.settle_alerts() == 0
    w.report_states({"rs0_0": "DOWN", "rs0_1": "SECONDARY"})  # rs0_0 out for its maintenance
    assert w.service.settle_alerts() == 0, "one member out keeps the majority"
    w.report_states({"rs0_1": "DOWN", "rs0_2": "SECONDARY"})  # a second failure
    assert w.service.settle_alerts() == 1
    (alert,) = w.alerts.of_group(G, AlertStatus.OPEN)
    assert alert["eventTypeName"] == ALERT_MAJORITY_LOST and alert["replicaSetName"] == "rs0"
    assert "1 of 3 votes" in alert["message"]
    assert w.service.settle_alerts() == 0, "the alert opens once"

    # The agents' decisions meanwhile do not make it read RUNNING.
    _decide(w, ())
    (blocked,) = w.service.changes(G)
    assert blocked["state"] == "BLOCKED" and blocked["reason"].startswith(MAJORITY_LOST)
    assert blocked["majorityLost"][0]["until"] is None and blocked["majorityLost"][0]["down"] == [
        "rs0_0",
        "rs0_1",
    ]

    w.clock.t += 35
    w.report_states(HEALTHY)
    assert w.service.settle_alerts() == 1
    assert w.alerts.of_group(G, AlertStatus.OPEN) == []
    (back,) = w.service.changes(G)
    assert back["state"] == "RUNNING" and "is back" in back["reason"]
    (spell,) = back["majorityLost"]
    assert spell["durationSecs"] == 35.0 and spell["until"] is not None


def test_the_alert_of_a_change_that_ended_while_the_majority_was_lost_closes(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(upgraded(base))
    w.report_states({"rs0_0": "DOWN", "rs0_1": "DOWN", "rs0_2": "SECONDARY"})
    assert w.service.settle_alerts() == 1
    w.put(base)  # back to where it started: the change ends
    assert w.service.settle_alerts() == 1
    assert w.alerts.of_group(G, AlertStatus.OPEN) == []
    (ended,) = w.service.changes(G)
    assert ended["state"] == "DONE" and ended["majorityLost"][0]["until"] is not None


def _record(w: World, name: MoveName, plan: tuple[PlannedStep, ...] = (), unit: Unit | None = None) -> None:
    arbiter = temporary_arbiter_name("rs0")
    move = Move(name, arbiter, "rs0_2", "", unit=unit, plan=plan)
    w.service.record(G, "rs0", w.doc()["changeId"], move_to_json(move))


def test_the_temporary_arbiter_is_a_host_while_it_exists(w: World) -> None:
    base = config(3)
    with_arbiter = copy.deepcopy(base)
    with_arbiter["replicaSets"][0]["maintenance"] = {
        "temporaryArbiter": {"hostname": "h9.example.net", "port": 27099}
    }
    w.put(base)
    w.put(upgraded(with_arbiter))
    arbiter = temporary_arbiter_name("rs0")
    assert w.service.arbiter_hosts(G, {}) == []
    setup = tuple(
        PlannedStep(m, arbiter) for m in (MoveName.START_TEMPORARY_ARBITER, MoveName.ADD_TEMPORARY_ARBITER)
    )
    _record(w, MoveName.START_TEMPORARY_ARBITER, setup, Unit.SETUP)
    (starting,) = w.service.arbiter_hosts(G, {"rs0": "c0"})
    assert starting["replicaStateName"] == "STARTUP" and starting["clusterId"] == "c0"
    _record(w, MoveName.ADD_TEMPORARY_ARBITER)
    (host,) = w.service.arbiter_hosts(G, {})
    assert (host["typeName"], host["replicaStateName"], host["hostname"], host["port"]) == (
        "REPLICA_ARBITER",
        "ARBITER",
        "h9.example.net",
        27099,
    )
    assert host["opsmgr"]["temporaryFor"] == w.doc()["changeId"]
    teardown = tuple(
        PlannedStep(m, arbiter) for m in (MoveName.REMOVE_TEMPORARY_ARBITER, MoveName.STOP_TEMPORARY_ARBITER)
    )
    _record(w, MoveName.REMOVE_TEMPORARY_ARBITER, teardown, Unit.TEARDOWN)
    assert w.service.arbiter_hosts(G, {})[0]["replicaStateName"] == "REMOVED"
    _record(w, MoveName.STOP_TEMPORARY_ARBITER)
    assert w.service.arbiter_hosts(G, {}) == [], "stopped: gone from the hosts"

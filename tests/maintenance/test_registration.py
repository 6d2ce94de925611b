"""Rolling changes registered from config PUTs (``maintenance.registration``), through the maintenance
service over a real application database: one change per set that rolls, none on adoption, and a change
under way recomputed from the config it started from."""

from __future__ import annotations

from opsmgr.maintenance.moves import Progress
from tests.maintenance.helpers import config, name_of
from tests.maintenance.service_world import G, World, maintain, upgraded


def test_a_put_registers_one_change_per_set_that_rolls_and_adoption_registers_none(w: World) -> None:
    base = config(3)
    w.put(base)
    assert w.service.active_sets(G) == []
    w.put(upgraded(base))
    doc = w.doc()
    assert set(doc["change"]["tasks"]) == {name_of(i) for i in range(3)}
    assert doc["status"]["state"] == "RUNNING" and doc["goalVersion"] == 2

    # A change whose members need no restart (a priority) registers nothing new.
    prioritised = upgraded(base)
    prioritised["replicaSets"][0]["members"][0]["priority"] = 2
    w.put(prioritised)
    assert w.doc()["changeId"] == doc["changeId"]

    # Restoration Mode adopting a config the agents already run never starts a roll.
    w.put(upgraded(base, "7.0.8"), check_transition=False)
    assert w.doc()["change"]["reasons"] == doc["change"]["reasons"]


def test_a_second_put_recomputes_from_the_start_keeping_members_whose_tasks_did_not_change(w: World) -> None:
    base = config(3)
    w.put(base)
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "SECONDARY", "rs0_2": "PRIMARY"})
    w.put(upgraded(base))
    maintain(w, "rs0_0")
    maintain(w, "rs0_1")
    assert Progress.from_json(w.doc()["progress"]).done == ("rs0_0", "rs0_1")

    # rs0_1 now also gets a new argument: it is redone; rs0_0's tasks are the same, it stays done.
    more = upgraded(base)
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

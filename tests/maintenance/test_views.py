"""What the maintenance service shows of a change (``maintenance.views``): the agent's view with the change,
the lease and the members as their agents reported them."""

from __future__ import annotations

from tests.maintenance.helpers import config
from tests.maintenance.service_world import G, World, upgraded


def test_the_agent_view_carries_the_change_the_lease_and_the_members_as_reported(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(upgraded(base))
    w.report_states({"rs0_0": "SECONDARY", "rs0_1": "DOWN", "rs0_2": "PRIMARY"})
    view = w.service.agent_view(G, "rs0")
    assert view["active"] and view["changeId"] == w.doc()["changeId"]
    assert view["names"]["h1.example.net:27017"] == "rs0_1"
    states = {m["name"]: (m["state"], m["health"]) for m in view["members"]}
    assert states == {"rs0_0": ("SECONDARY", True), "rs0_1": ("DOWN", False), "rs0_2": ("PRIMARY", True)}
    assert view["policy"]["lease_ttl_s"] == 30
    assert view["lease"]["holder"] is None
    assert w.service.agent_view(G, "other") == {"replicaSet": "other", "active": False, "state": None}

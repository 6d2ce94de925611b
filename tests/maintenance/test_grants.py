"""The maintenance lease of a set under a rolling change (``maintenance.grants``), through the maintenance
service over a real application database: grants follow the agents' reports, a denial is the change's stated
reason, and the lease is shared with the supervised unique index build."""

from __future__ import annotations

from opsmgr.alerts import AlertStatus
from opsmgr.maintenance.leases import Deny, Grant, build_owner
from opsmgr.maintenance.moves import BlockCause, Blocked, Move, MoveName
from opsmgr.maintenance.wire import decision_to_json
from tests.maintenance.helpers import config
from tests.maintenance.service_world import G, World, upgraded


def test_leases_follow_the_agents_reports(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(upgraded(base))
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


def test_a_denied_lease_is_the_stated_reason_unless_a_failure_stops_the_change(w: World) -> None:
    base = config(3)
    w.put(base)
    w.put(upgraded(base))
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
    w.put(upgraded(base))
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
    w.put(upgraded(base))
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
    w.put(upgraded(base))
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
    w.put(upgraded(base))
    w.report_states(HEALTHY)
    assert isinstance(_for_build(w, "rs0_0"), Grant)
    w.put(base)  # back to the start: the change is superseded and ends
    assert w.service.active_doc(G, "rs0") is None
    assert w.service.state_of_lease(G, "rs0")["holder"] == "rs0_0"

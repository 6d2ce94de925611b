"""The snapshot built from a member's replSetGetStatus, the oplog window estimate and the maintenance port."""

from __future__ import annotations

import math

from opsmgr.drivers.base import MemberState, MemberStatus, OplogWindow, RsStatus
from opsmgr.maintenance.snapshot import (
    ObservedExtras,
    effective_window_s,
    maintenance_port,
    snapshot_from_status,
)

CONFIG = {
    "_id": "rs0",
    "members": [
        {"_id": 0, "host": "h0:27017", "priority": 2.0, "votes": 1},
        {"_id": 1, "host": "h1:27017", "priority": 0.0, "votes": 0, "hidden": True},
        {"_id": 2, "host": "h2:27017", "arbiterOnly": True, "priority": 0.0},
        {"_id": 3, "host": "h3:27017"},
    ],
}


def test_members_are_mapped_to_process_names_with_their_config() -> None:
    status = RsStatus(
        "rs0",
        MemberState.PRIMARY,
        3,
        (
            MemberStatus("h0:27017", MemberState.PRIMARY, True, 100 << 32, self=True),
            MemberStatus("h1:27017", MemberState.SECONDARY, True, 97 << 32),
            MemberStatus("h2:27017", MemberState.ARBITER, True, 0),
        ),
        5,
    )
    names = {"h0:27017": "rs0_0", "h1:27017": "rs0_1", "h2:27017": "rs0_2"}
    extras = ObservedExtras({"rs0_0": 3600.0}, {"rs0_0": 42})
    snap = snapshot_from_status("rs0", 7.0, status, CONFIG, names, extras)
    by_name = {m.name: m for m in snap.members}
    assert by_name["rs0_0"].priority == 2.0 and by_name["rs0_0"].oplog_window_s == 3600.0
    assert by_name["rs0_0"].connections == 42 and snap.primary() == by_name["rs0_0"]
    assert by_name["rs0_1"].hidden and by_name["rs0_1"].votes == 0 and not by_name["rs0_1"].electable
    assert by_name["rs0_2"].arbiter and by_name["rs0_2"].healthy
    # Not in the status (unreachable, or standalone): DOWN, and it keeps its host as its name.
    assert by_name["h3:27017"].state is MemberState.DOWN and not by_name["h3:27017"].healthy
    assert snap.total_votes == 3 and snap.majority == 2 and snap.healthy_votes(excluding="rs0_0") == 1
    assert snap.lag_s("rs0_1") == 3.0 and snap.lag_s("nobody") is None


def test_without_a_status_every_member_is_down() -> None:
    snap = snapshot_from_status("rs0", 0.0, None, CONFIG, {})
    assert {m.state for m in snap.members} == {MemberState.DOWN} and snap.primary() is None


def test_a_young_oplog_is_judged_by_what_it_will_hold() -> None:
    full = OplogWindow(size_mb=100, used_mb=100, first_ts=0, last_ts=0, window_hours=2.0)
    young = OplogWindow(size_mb=1000, used_mb=10, first_ts=0, last_ts=0, window_hours=0.01)
    assert effective_window_s(full) == 7200.0
    assert math.isclose(effective_window_s(young), 3600.0)
    assert effective_window_s(OplogWindow(990, 0, 0, 0, 0.0)) == math.inf
    assert effective_window_s(OplogWindow(990, 0.001, 5, 5, 0.0)) == math.inf, "one instant: no rate yet"


def test_the_maintenance_port_stays_a_valid_port() -> None:
    assert maintenance_port(27017) == 37017 and maintenance_port(60000) == 50000

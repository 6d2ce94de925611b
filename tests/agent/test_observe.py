"""What a cycle reports of a process it observed: the ``observed`` part of the agent's status."""

from __future__ import annotations

from opsmgr.agent.observe import lag_seconds, status_observed
from opsmgr.agent.plan import LocalProcess
from opsmgr.drivers.base import MemberState, MemberStatus, ProcessObservation, RsStatus, RunMode


def _status(my_optime_s: int, primary_optime_s: int) -> RsStatus:
    return RsStatus(
        set_name="rs0",
        my_state=MemberState.SECONDARY,
        term=1,
        members=(
            MemberStatus("h0:27017", MemberState.PRIMARY, True, primary_optime_s << 32),
            MemberStatus("h1:27017", MemberState.SECONDARY, True, (my_optime_s << 32) | 3, self=True),
        ),
        config_version=1,
    )


def test_a_process_not_in_the_snapshot_is_reported_stopped_with_nothing_known() -> None:
    observed = status_observed(None, "h1.example.net")
    assert observed["hostname"] == "h1.example.net" and observed["running"] is False
    assert all(observed[k] is None for k in ("port", "mode", "replicaSetName", "optimeTs", "lagSeconds"))


def test_a_secondary_reports_its_set_state_optime_and_lag_behind_the_primary() -> None:
    obs = ProcessObservation("rs0_1", True, RunMode.REPLSET, 27017, "7.0.5")
    observed = status_observed(LocalProcess(obs, rs_status=_status(100, 107), connections=4), "h1")
    assert (observed["port"], observed["mode"], observed["version"]) == (
        27017,
        RunMode.REPLSET.value,
        "7.0.5",
    )
    assert (observed["replicaSetName"], observed["replicaStateName"]) == ("rs0", MemberState.SECONDARY.value)
    assert observed["optimeTs"] == (100 << 32) | 3 and observed["connections"] == 4
    assert observed["lagSeconds"] == 7.0


def test_no_lag_without_a_primary_and_never_negative() -> None:
    assert lag_seconds(None) is None
    assert lag_seconds(_status(107, 100)) == 0.0
    no_primary = RsStatus("rs0", MemberState.SECONDARY, 1, _status(1, 2).members[1:], 1)
    assert lag_seconds(no_primary) is None

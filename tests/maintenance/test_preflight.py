"""Table tests of the preflight checks: fault tolerance, oplog window, preferred primary."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from opsmgr.maintenance.preflight import (
    Check,
    Verdict,
    estimate_out_s,
    fault_tolerance,
    oplog_window,
    preferred_primary,
)
from opsmgr.maintenance.rolling import MaintenanceOptions
from opsmgr.maintenance.snapshot import Policy, RsSnapshot
from tests.maintenance.helpers import A, D, P, S, psa, snap, view

POLICY = Policy(default_out_s=300, oplog_margin=2.0, catch_up_lag_s=2)


@dataclass
class FT:
    id: str
    snap: RsSnapshot
    member: str
    blocked: str | None  # a fragment of the reason; None: allowed
    warning: str | None = None
    leaving: bool = False
    options: MaintenanceOptions = field(default_factory=MaintenanceOptions)


FAULT_TOLERANCE = [
    FT("3 members healthy: allowed, with the remedies", psa(), "rs0_0", None, "temporary arbiter"),
    FT(
        "3 members, another down: wait",
        psa(S, D, P),
        "rs0_0",
        "rs0_1 (DOWN, unreachable) already unavailable",
    ),
    FT(
        "5 members healthy: allowed without warning",
        psa(S, S, S, S, P),
        "rs0_0",
        None,
    ),
    FT("5 members, another down: still wait", psa(S, D, S, S, P), "rs0_0", "already unavailable"),
    FT(
        "a non-voting member down does not hold maintenance up",
        snap(view("rs0_0"), view("rs0_1"), view("rs0_2", P), view("rs0_3", D, votes=0, priority=0)),
        "rs0_0",
        None,
        "one more failure",
    ),
    FT("2 voting members: no majority without one", psa(S, P), "rs0_0", "a majority needs 2"),
    FT(
        "2 voting members with downtime accepted",
        psa(S, P),
        "rs0_0",
        None,
        "unavailable",
        options=MaintenanceOptions(accept_downtime=True),
    ),
    FT(
        "arbiter set (PSA): the secondary may go, with a warning",
        snap(view("rs0_0"), view("rs0_1", P), view("rs0_2", A, arbiter=True, priority=0)),
        "rs0_0",
        None,
        "one more failure",
    ),
    FT(
        "the member itself already down does not block itself",
        psa(D, S, P),
        "rs0_0",
        None,
        "one more failure",
    ),
    FT(
        "a vote handed to the temporary arbiter: no warning",
        snap(
            view("rs0_0", votes=0, priority=0),
            view("rs0_1"),
            view("rs0_2", P),
            view("rs0_maintenance_arbiter", A, arbiter=True, priority=0),
        ),
        "rs0_0",
        None,
    ),
    FT(
        "leaving: the removed member's vote leaves the count",
        psa(D, S, P),
        "rs0_0",
        None,
        "once rs0_0 is gone",
        leaving=True,
    ),
]


@pytest.mark.parametrize("case", FAULT_TOLERANCE, ids=lambda c: c.id)
def test_fault_tolerance(case: FT) -> None:
    verdict = fault_tolerance(case.snap, case.member, leaving=case.leaving, options=case.options)
    if case.blocked is None:
        assert verdict.ok, verdict.blocked
    else:
        assert verdict.check is Check.FAULT_TOLERANCE
        assert case.blocked in str(verdict.blocked)
    if case.warning is None:
        assert verdict.warnings == ()
    else:
        assert any(case.warning in w for w in verdict.warnings), verdict.warnings


def test_three_member_warning_names_both_remedies() -> None:
    (warning,) = fault_tolerance(psa(), "rs0_0").warnings
    assert "one more failure loses the majority" in warning
    assert "maintenance.temporaryArbiter" in warning and "5-member" in warning


@dataclass
class OW:
    id: str
    snap: RsSnapshot
    observed: tuple[float, ...]
    blocked: bool
    warning: str | None = None


HOUR = 3600.0
OPLOG = [
    OW(
        "a day of oplog",
        snap(view("rs0_0", window_s=24 * HOUR), view("rs0_1", P, window_s=24 * HOUR)),
        (),
        False,
    ),
    OW(
        "5 minutes of oplog, 300 s default estimate x2",
        snap(view("rs0_0", window_s=300), view("rs0_1", P, window_s=300)),
        (),
        True,
    ),
    OW(
        "the largest window of the other members counts",
        snap(view("rs0_0", window_s=60), view("rs0_1", P, window_s=60), view("rs0_2", window_s=700)),
        (),
        False,
    ),
    OW(
        "observed restarts make the estimate",
        snap(view("rs0_0", window_s=300), view("rs0_1", P, window_s=300)),
        (40.0, 100.0),
        False,
    ),
    OW(
        "an unhealthy member is no sync source",
        snap(view("rs0_0"), view("rs0_1", P, window_s=100), view("rs0_2", D, window_s=24 * HOUR)),
        (),
        True,
    ),
    OW(
        "only the member's own window is known", snap(view("rs0_0", window_s=100), view("rs0_1", P)), (), True
    ),
    OW("no window known: warn", snap(view("rs0_0"), view("rs0_1", P)), (), False, "oplog check was skipped"),
]


@pytest.mark.parametrize("case", OPLOG, ids=lambda c: c.id)
def test_oplog_window(case: OW) -> None:
    verdict = oplog_window(case.snap, "rs0_0", case.observed, POLICY)
    assert verdict.ok is not case.blocked
    if case.blocked:
        assert verdict.check is Check.OPLOG_WINDOW
        assert "replication.oplogSizeMB" in str(verdict.blocked)
    assert (case.warning is None) == (verdict.warnings == ())


def test_arbiters_need_no_oplog() -> None:
    s = snap(view("rs0_0", A, arbiter=True, priority=0), view("rs0_1", P, window_s=1))
    assert oplog_window(s, "rs0_0", (), POLICY).ok


def test_estimate_is_the_longest_observed_or_the_default() -> None:
    assert estimate_out_s([], POLICY) == 300
    assert estimate_out_s([10.0, 70.0, 30.0], POLICY) == 70.0


@dataclass
class PP:
    id: str
    snap: RsSnapshot
    target: str | None
    ready: bool
    blocked: str | None = None


PREFERRED = [
    PP("equal priorities, a caught-up secondary", psa(), None, True),
    PP(
        "equal priorities, every secondary behind",
        snap(view("rs0_0", behind_s=30), view("rs0_1", behind_s=30), view("rs0_2", P)),
        None,
        False,
    ),
    PP(
        "the highest priority member is the target",
        snap(view("rs0_0", priority=5), view("rs0_1", priority=2), view("rs0_2", P, priority=1)),
        "rs0_0",
        True,
    ),
    PP(
        "target behind: wait for it, even with another caught up",
        snap(view("rs0_0", priority=5, behind_s=20), view("rs0_1", priority=2), view("rs0_2", P)),
        "rs0_0",
        False,
    ),
    PP(
        "target unhealthy: blocked",
        snap(view("rs0_0", D, priority=5), view("rs0_1", priority=2), view("rs0_2", P)),
        "rs0_0",
        False,
        "preferred primary rs0_0",
    ),
    PP(
        "hidden and priority-0 members are not candidates",
        snap(view("rs0_0", priority=0, hidden=True), view("rs0_1", priority=0), view("rs0_2", P)),
        None,
        False,
        "no other member",
    ),
    PP(
        "primary with a higher priority than the others: highest among them",
        snap(view("rs0_0", priority=1), view("rs0_1", priority=3), view("rs0_2", P, priority=10)),
        "rs0_1",
        True,
    ),
]


@pytest.mark.parametrize("case", PREFERRED, ids=lambda c: c.id)
def test_preferred_primary(case: PP) -> None:
    handoff = preferred_primary(case.snap, "rs0_2", POLICY)
    assert handoff.target == case.target
    assert handoff.ready is case.ready
    if case.blocked is None:
        assert handoff.verdict.ok
    else:
        assert handoff.verdict.check is Check.PREFERRED_PRIMARY
        assert case.blocked in str(handoff.verdict.blocked)


def test_verdicts_chain_first_block_and_all_warnings() -> None:
    first = Verdict(warnings=("w1",))
    second = Verdict("no", Check.OPLOG_WINDOW, ("w2",))
    chained = first.then(second)
    assert chained.blocked == "no" and chained.check is Check.OPLOG_WINDOW
    assert chained.warnings == ("w1", "w2")
    assert Verdict("a", Check.FAULT_TOLERANCE).then(second).blocked == "a"

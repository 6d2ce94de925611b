"""The checks run before a member of a replica set goes down for maintenance; each blocks with a stated reason
instead of letting the procedure proceed.

- *Fault tolerance*: with the member out (or gone, for a member leaving the set), the healthy voting members
  must still form a majority of the votes; while another voting member is unavailable the procedure waits,
  because maintenance must never be the second failure. When one more failure during the maintenance would
  lose the majority (every 3-member set), a warning names the remedies: a temporary arbiter
  (``replicaSets[i].maintenance.temporaryArbiter``; the procedure then adds it first and hands each
  member's vote to it while that member is out) or converting to a 5-member set; once the temporary arbiter
  is configured, the warning says so instead, and that it is in place once it is in the set
  (:func:`remedy`). A set that cannot stay available at all (one or two votes) is blocked unless
  ``maintenance.acceptDowntime`` is set.
- *Oplog window*: when the member comes back it replays, from a sync source, everything written while it was
  out. MongoDB picks any member whose oplog still covers its last operation, so the largest window among the
  other healthy data-bearing members is what counts (the member's own window stands in when no other is
  known: members share the write load). It must exceed the estimated time out (the longest observed so far
  in this rolling change, or ``Policy.default_out_s``) times ``Policy.oplog_margin``; otherwise the check
  points to ``replication.oplogSizeMB``.
- *Preferred primary*: when electable members have different priorities, the step-down must hand the primary
  to the highest-priority electable member. MongoDB's election handoff after ``replSetStepDown`` picks the
  caught-up electable secondary of highest priority, so the step-down waits until that member is caught up;
  if it is unhealthy, the step-down is blocked.

Pure functions of an :class:`~opsmgr.maintenance.snapshot.RsSnapshot`. May import ``opsmgr.maintenance``
modules and ``opsmgr.drivers.base`` (types only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from opsmgr.maintenance.rolling import MaintenanceOptions, temporary_arbiter_name
from opsmgr.maintenance.snapshot import MemberView, Policy, RsSnapshot

ARBITER_REMEDY = (
    "remedies: add a temporary arbiter for the maintenance (set replicaSets[].maintenance.temporaryArbiter "
    "to {hostname, port} and it is added and removed automatically), or convert to a 5-member replica set"
)


class Check(StrEnum):
    FAULT_TOLERANCE = "faultTolerance"
    OPLOG_WINDOW = "oplogWindow"
    PREFERRED_PRIMARY = "preferredPrimary"


@dataclass(frozen=True)
class Verdict:
    """``blocked`` is the reason to wait (None: go ahead); ``warnings`` are worth showing either way."""

    blocked: str | None = None
    check: Check | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.blocked is None

    def then(self, other: Verdict) -> Verdict:
        """This verdict's block if any, else ``other``'s, with the warnings of both."""
        first = self if not self.ok else other
        return Verdict(first.blocked, first.check, self.warnings + other.warnings)


def _state(member: MemberView) -> str:
    return member.state.value if member.health else f"{member.state.value}, unreachable"


def fault_tolerance(
    snap: RsSnapshot, name: str, *, leaving: bool = False, options: MaintenanceOptions = MaintenanceOptions()
) -> Verdict:
    """May ``name`` go down (or, ``leaving``, be removed) now without risking the set's majority?"""
    member = snap.member(name)
    votes = member.votes if member is not None else 0
    if options.accept_downtime:
        return Verdict(warnings=(f"maintenance of {snap.rs_id} may make it unavailable (acceptDowntime)",))
    others_down = [m for m in snap.members if m.name != name and m.votes > 0 and not m.healthy]
    if others_down:
        names = ", ".join(f"{m.name} ({_state(m)})" for m in others_down)
        return Verdict(
            f"waiting before taking {name} down: {names} already unavailable, and maintenance takes a "
            f"member down only while every other voting member of {snap.rs_id} is healthy",
            Check.FAULT_TOLERANCE,
        )
    total = snap.total_votes - (votes if leaving else 0)
    majority = total // 2 + 1
    healthy_after = snap.healthy_votes(excluding=name)
    if healthy_after < majority:
        return Verdict(
            f"taking {name} down would leave {healthy_after} of {total} votes of {snap.rs_id} healthy, "
            f"and a majority needs {majority}: it would lose its primary; add members, or set "
            "replicaSets[].maintenance.acceptDowntime to accept the downtime",
            Check.FAULT_TOLERANCE,
        )
    if votes > 0 and healthy_after == majority:
        risk = (
            f"{'once' if leaving else 'while'} {name} is {'gone' if leaving else 'out'}, one more "
            f"failure loses the majority of {snap.rs_id} "
            f"({healthy_after} of {total} votes up, {majority} needed)"
        )
        return Verdict(warnings=(f"{risk}; {remedy(snap, leaving, options)}",))
    return Verdict()


def remedy(snap: RsSnapshot, leaving: bool, options: MaintenanceOptions) -> str:
    """What the one-more-failure warning says can be done: with the temporary arbiter in the set, that it is
    in place (the member hands it its vote while out, so the set survives one more failure); with one
    configured but not in the set yet, that it is added first; otherwise the remedies. A leaving member
    hands over no vote, so for it the remedies stand."""
    spec = options.temporary_arbiter
    if spec is None or leaving:
        return ARBITER_REMEDY
    where = f"{spec.hostname}:{spec.port}"
    arbiter = snap.member(temporary_arbiter_name(snap.rs_id))
    if arbiter is not None and arbiter.votes > 0:
        return (
            f"the temporary arbiter {where} is in place ({_state(arbiter)}): the member hands it its vote "
            "while it is out, so one more failure keeps the majority"
        )
    return (
        f"the temporary arbiter {where} is configured: it is added before the first member goes out and "
        "takes each member's vote while that member is out"
    )


def estimate_out_s(observed: Sequence[float], policy: Policy) -> float:
    """How long a member is expected to be out: the longest observed in this change, else the default."""
    return max(observed) if observed else policy.default_out_s


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def oplog_window(snap: RsSnapshot, name: str, observed_out_s: Sequence[float], policy: Policy) -> Verdict:
    """Will ``name`` be able to catch up after being out for the estimated time?"""
    member = snap.member(name)
    if member is None or member.arbiter:
        return Verdict()
    sources = [
        (m.oplog_window_s, m.name)
        for m in snap.members
        if m.name != name and m.healthy and not m.arbiter and m.oplog_window_s is not None
    ]
    if sources:
        window, best = max(sources)
        whose = f"the oplog window of {best}"
    elif member.oplog_window_s is not None:
        window, whose = member.oplog_window_s, f"the oplog window of {name} (no other member's is known)"
    else:
        return Verdict(warnings=(f"no oplog window is known for {snap.rs_id}: the oplog check was skipped",))
    estimate = estimate_out_s(observed_out_s, policy)
    needed = estimate * policy.oplog_margin
    if window < needed:
        return Verdict(
            f"{whose} is {_duration(window)}, less than {_duration(needed)} ({policy.oplog_margin:g} x the "
            f"estimated {_duration(estimate)} that {name} is out): it could not catch up afterwards; enlarge "
            "the oplog with processes[].args2_6.replication.oplogSizeMB, or wait for a lighter write load",
            Check.OPLOG_WINDOW,
        )
    return Verdict()


@dataclass(frozen=True)
class Handoff:
    """Where the primary goes at the step-down: ``target`` (None when priorities are equal: any caught-up
    electable secondary) and whether the step-down can happen now."""

    target: str | None
    ready: bool
    verdict: Verdict
    note: str


def preferred_primary(snap: RsSnapshot, primary: str, policy: Policy) -> Handoff:
    """Whom stepping ``primary`` down hands the primary to, and whether that member is ready."""
    others = [m for m in snap.members if m.name != primary and m.electable]
    current = snap.member(primary)
    priorities = {m.priority for m in others} | ({current.priority} if current is not None else set())
    if not others:
        reason = f"no other member of {snap.rs_id} can become primary, so {primary} cannot be stepped down"
        return Handoff(None, False, Verdict(reason, Check.PREFERRED_PRIMARY), reason)
    if len(priorities) > 1:
        top = max(m.priority for m in others)
        candidates = [m for m in others if m.priority == top]
        target = max(candidates, key=lambda m: (m.healthy, m.optime))
        if not target.healthy:
            reason = (
                f"the preferred primary {target.name} (priority {target.priority:g}, the highest of the "
                f"electable members) is {_state(target)}: stepping {primary} down now would hand the primary "
                "to a lower-priority member; waiting for it to recover"
            )
            return Handoff(target.name, False, Verdict(reason, Check.PREFERRED_PRIMARY), reason)
        lag = snap.lag_s(target.name) or 0.0
        ready = lag <= policy.catch_up_lag_s
        note = (
            f"hand the primary to {target.name}"
            if ready
            else f"waiting for the preferred primary {target.name} to catch up ({lag:.0f} s behind)"
        )
        return Handoff(target.name, ready, Verdict(), note)
    healthy = [m for m in others if m.healthy]
    if not healthy:
        reason = f"no electable member of {snap.rs_id} other than {primary} is healthy: cannot step down"
        return Handoff(None, False, Verdict(reason, Check.PREFERRED_PRIMARY), reason)
    caught_up = [m for m in healthy if (snap.lag_s(m.name) or 0.0) <= policy.catch_up_lag_s]
    note = "waiting for an electable secondary to catch up" if not caught_up else "any caught-up secondary"
    return Handoff(None, bool(caught_up), Verdict(), note)

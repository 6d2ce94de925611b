"""What a rolling change keeps of what happened around it, so that it stays visible after the fact: the
warnings its steps gave, the spells during which its replica set lost the majority of its votes, and the
temporary arbiter while it exists.

- :func:`keep_warnings`: every warning a decision carried, once each, with when it was first seen (the
  status only holds the current decision's, so a finished change used to show none);
- :func:`voting_members` and :func:`majority_of`: whether the members' reported health still holds a
  majority of the votes the set has right now (a vote handed to the temporary arbiter counts as the
  arbiter's); :func:`track_majority` keeps the spells (``since``/``until``/``durationSecs``) and says when
  one opens or closes; :func:`with_majority` is the status a change shows meanwhile: BLOCKED with a reason
  naming the lost majority rather than a plain RUNNING;
- :func:`arbiter_present`: from its start until its stop, the temporary arbiter is a process of the set,
  and :func:`arbiter_host` is how ``GET /hosts`` shows it.

Pure. May import ``opsmgr.maintenance`` modules and ``opsmgr.automation.hosts`` (host ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opsmgr.automation.hosts import host_id
from opsmgr.maintenance.leases import UNREPORTED, MemberHealth
from opsmgr.maintenance.moves import ArbiterPhase, MoveName, Progress, temporary_arbiter_name
from opsmgr.maintenance.report import ChangeState, ChangeStatus

MAX_WARNINGS = 50  # distinct warnings kept per change; a change that produces more repeats itself
MAJORITY_LOST = "majority lost"  # how a status's reason begins while the set has lost its majority
# States a lost majority overrides; FAILED keeps its own (its alert closes on the state it has).
_OVERRIDDEN = frozenset({ChangeState.RUNNING, ChangeState.RESUMED, ChangeState.BLOCKED})


def keep_warnings(
    kept: Sequence[Mapping[str, Any]], warnings: Sequence[str], member: str | None, now: float
) -> list[dict[str, Any]]:
    """``kept`` (``{warning, firstSeen, member}`` each) with those of ``warnings`` it lacks, seen at ``now``
    for ``member``; the first sighting of a warning stands."""
    out = [dict(k) for k in kept]
    known = {str(k["warning"]) for k in out}
    for text in warnings:
        if text not in known and len(out) < MAX_WARNINGS:
            out.append({"warning": text, "firstSeen": now, "member": member})
            known.add(text)
    return out


def voting_members(votes: Mapping[str, int], progress: Progress, rs_id: str) -> dict[str, int]:
    """The votes the set has now, from its configured ``votes``: while the temporary arbiter is in the set it
    has one, and a member that handed its vote over (``TransferVoteToArbiter`` done, ``RestoreVote`` not yet)
    has none."""
    out = dict(votes)
    if progress.arbiter is not ArbiterPhase.ACTIVE:
        return out
    out[temporary_arbiter_name(rs_id)] = 1
    done = progress.steps[: progress.position]
    for step in done:
        if step.move is MoveName.TRANSFER_VOTE and not any(
            s.move is MoveName.RESTORE_VOTE and s.member == step.member for s in done
        ):
            out[step.member] = 0
    return out


@dataclass(frozen=True)
class Majority:
    """The healthy votes of a set against the majority it needs; ``down``: the voting members not healthy."""

    healthy: int
    total: int
    down: tuple[str, ...]

    @property
    def needed(self) -> int:
        return self.total // 2 + 1

    @property
    def lost(self) -> bool:
        return self.healthy < self.needed

    def reason(self, rs_id: str) -> str:
        down = ", ".join(self.down) or "none"
        return (
            f"{MAJORITY_LOST}: only {self.healthy} of {self.total} votes of {rs_id} are healthy, a majority "
            f"needs {self.needed} (unavailable: {down}); the set has no primary to write to until a member "
            "is back"
        )


def majority_of(health: Sequence[MemberHealth], votes: Mapping[str, int]) -> Majority | None:
    """The majority of the set whose members' ``health`` is reported, with ``votes`` per member (a member
    ``health`` does not name, the temporary arbiter, counts as healthy: no agent reports it, and the
    procedure only goes on while it serves). None when no vote is known, no report is fresh or a voting
    member was never reported (the server then does not know the set's health, and says nothing)."""
    by_name = {h.name: h for h in health}
    if not any(h.fresh for h in health):
        return None
    if any(h.state == UNREPORTED and votes.get(h.name, 0) > 0 for h in health):
        return None  # a member no agent ever reported: its absence of news is no evidence it is down
    voting = {name: v for name, v in votes.items() if v > 0}
    if not voting:
        return None
    down = tuple(sorted(n for n in voting if n in by_name and not by_name[n].healthy))
    healthy = sum(v for n, v in voting.items() if n not in down)
    return Majority(healthy, sum(voting.values()), down)


@dataclass(frozen=True)
class Spells:
    """The majority-lost spells of a change after one look; ``opened``/``closed``: whether this look began
    or ended one."""

    entries: list[dict[str, Any]]
    opened: bool = False
    closed: bool = False

    @property
    def open(self) -> bool:
        return bool(self.entries) and self.entries[-1].get("until") is None


def track_majority(entries: Sequence[Mapping[str, Any]], majority: Majority | None, now: float) -> Spells:
    """The spells (``since``, ``until``, ``durationSecs``, the worst ``healthyVotes`` of ``votes``, who was
    ``down``) once ``majority`` is seen at ``now``; None (nothing known) changes nothing."""
    out = [dict(e) for e in entries]
    current = out[-1] if out and out[-1].get("until") is None else None
    if majority is None:
        return Spells(out)
    if majority.lost:
        if current is None:
            out.append(
                {
                    "since": now,
                    "until": None,
                    "durationSecs": None,
                    "healthyVotes": majority.healthy,
                    "votes": majority.total,
                    "down": list(majority.down),
                }
            )
            return Spells(out, opened=True)
        current["healthyVotes"] = min(int(current["healthyVotes"]), majority.healthy)
        current["down"] = sorted(set(current["down"]) | set(majority.down))
        return Spells(out)
    if current is None:
        return Spells(out)
    return Spells(close_spell(out, now), closed=True)


def open_majority(entries: Sequence[Mapping[str, Any]]) -> Majority | None:
    """The lost majority of the spell still open in ``entries``, if any."""
    last = entries[-1] if entries else None
    if last is None or last.get("until") is not None:
        return None
    return Majority(int(last["healthyVotes"]), int(last["votes"]), tuple(last.get("down") or ()))


def close_spell(entries: Sequence[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """``entries`` with the open spell, if any, ended at ``now`` (the change ended, or its majority is
    back)."""
    out = [dict(e) for e in entries]
    if out and out[-1].get("until") is None:
        out[-1].update(until=now, durationSecs=round(now - float(out[-1]["since"]), 1))
    return out


def with_majority(status: ChangeStatus, majority: Majority | None, rs_id: str, now: float) -> ChangeStatus:
    """The status a change shows given the set's ``majority`` (None: not lost): BLOCKED naming the lost
    majority instead of RUNNING, RESUMED or another block; once the majority is back, a status that named
    its loss reads RUNNING again (the next decision says more)."""
    if majority is not None and majority.lost and status.state in _OVERRIDDEN:
        since = status.since if status.state is ChangeState.BLOCKED and _names_loss(status) else now
        return replace(status, state=ChangeState.BLOCKED, reason=majority.reason(rs_id), since=since)
    if (
        (majority is None or not majority.lost)
        and status.state is ChangeState.BLOCKED
        and _names_loss(status)
    ):
        reason = f"the majority of {rs_id} is back: the rolling change goes on"
        return replace(status, state=ChangeState.RUNNING, reason=reason, member=None, since=now)
    return status


def _names_loss(status: ChangeStatus) -> bool:
    return (status.reason or "").startswith(MAJORITY_LOST)


def arbiter_present(progress: Progress) -> bool:
    """Whether the temporary arbiter's process exists: from its ``StartTemporaryArbiter`` until its
    ``StopTemporaryArbiter`` are recorded."""
    done = {s.move for s in progress.steps[: progress.position]}
    if progress.arbiter is ArbiterPhase.ACTIVE:
        return True
    if progress.arbiter is ArbiterPhase.NONE:
        return MoveName.START_TEMPORARY_ARBITER in done
    return progress.in_unit and MoveName.STOP_TEMPORARY_ARBITER not in done


def arbiter_host(
    group_id: str, rs_id: str, change_id: str, hostname: str, port: int, progress: Progress
) -> dict[str, Any]:
    """The temporary arbiter of change ``change_id`` as ``GET /groups/{id}/hosts`` lists a host: an arbiter
    while it is in the set (``STARTUP`` before it is added, ``REMOVED`` once it is taken out), and an
    ``opsmgr`` field saying it is temporary and whose it is."""
    name = temporary_arbiter_name(rs_id)
    state = {ArbiterPhase.ACTIVE: "ARBITER", ArbiterPhase.NONE: "STARTUP"}.get(progress.arbiter, "REMOVED")
    return {
        "id": host_id(group_id, name),
        "groupId": group_id,
        "hostname": hostname,
        "port": port,
        "typeName": "REPLICA_ARBITER",
        "replicaSetName": rs_id,
        "replicaStateName": state,
        "processName": name,
        "version": None,
        "lastPing": None,
        "hostEnabled": True,
        "alertsEnabled": True,
        "deactivated": False,
        "hidden": False,
        "running": True,
        "opsmgr": {
            "temporary": True,
            "temporaryFor": change_id,
            "reason": f"the temporary arbiter of {rs_id} for rolling change {change_id}, gone when it ends",
        },
    }

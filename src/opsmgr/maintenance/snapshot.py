"""What the maintenance decisions look at: one replica set as an agent sees it at one instant, and the knobs.

Owns :class:`MemberView`, :class:`RsSnapshot` (built by the agent from a member's ``replSetGetStatus``, the
set's config and what it knows of its own processes; :func:`snapshot_from_status` does the mapping) and
:class:`Policy` (timeouts, margins, step-down parameters). Pure values. May import ``opsmgr.drivers.base``
(types only) and ``opsmgr.errors``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsmgr.drivers.base import MemberState, OplogWindow, RsStatus

HEALTHY_STATES = frozenset({MemberState.PRIMARY, MemberState.SECONDARY, MemberState.ARBITER})


def effective_window_s(window: OplogWindow) -> float:
    """How many seconds of writes the oplog holds at the current write rate. ``window_hours`` spans the
    first to the last entry, so an oplog that is not full yet (a young one) understates what it will hold:
    scale it by size over used. Without any write yet, or with all its entries at one instant (a set just
    initiated, no write since), the oplog covers any outage so far (infinity): there is no rate to judge."""
    seconds = window.window_hours * 3600
    if window.used_mb <= 0 or seconds <= 0:
        return math.inf
    return seconds * max(1.0, window.size_mb / window.used_mb)


def optime_seconds(optime_ts: int) -> int:
    """The seconds part of a BSON-style timestamp (``seconds << 32 | increment``)."""
    return optime_ts >> 32


@dataclass(frozen=True)
class MemberView:
    """One member of the set: its state as the set sees it, its config entry, and what its agent adds.

    ``oplog_window_s`` and ``connections`` are known for the processes of the observing agent's host (and
    for others when the server relays them); None means unknown.
    """

    name: str  # the process name in the automation config
    state: MemberState
    health: bool = True
    votes: int = 1
    priority: float = 1.0
    arbiter: bool = False
    hidden: bool = False
    optime: int = 0  # BSON-style timestamp of the last applied operation
    oplog_window_s: float | None = None
    connections: int | None = None

    @property
    def healthy(self) -> bool:
        return self.health and self.state in HEALTHY_STATES

    @property
    def electable(self) -> bool:
        """Could become primary by its config (priority > 0, a vote, not arbiter or hidden)."""
        return self.priority > 0 and self.votes > 0 and not self.arbiter and not self.hidden


@dataclass(frozen=True)
class RsSnapshot:
    """One replica set at time ``now`` (seconds, any epoch, increasing)."""

    rs_id: str
    now: float
    members: tuple[MemberView, ...]

    def member(self, name: str) -> MemberView | None:
        return next((m for m in self.members if m.name == name), None)

    def primary(self) -> MemberView | None:
        return next((m for m in self.members if m.state is MemberState.PRIMARY and m.health), None)

    @property
    def total_votes(self) -> int:
        return sum(m.votes for m in self.members)

    @property
    def majority(self) -> int:
        return self.total_votes // 2 + 1

    def healthy_votes(self, *, excluding: str | None = None) -> int:
        return sum(m.votes for m in self.members if m.healthy and m.name != excluding)

    def lag_s(self, name: str) -> float | None:
        """How far ``name`` is behind the primary (or, without one, the most advanced member), in seconds."""
        member = self.member(name)
        if member is None:
            return None
        primary = self.primary()
        reference = (
            primary.optime if primary is not None else max((m.optime for m in self.members), default=0)
        )
        return float(max(0, optime_seconds(reference) - optime_seconds(member.optime)))


@dataclass(frozen=True)
class Policy:
    """How patient and how careful the procedure is.

    ``member_timeout_s``: a member that is not healthy again this long after its restart in replSet mode
    has failed (the rolling change stops there until it recovers). ``catch_up_lag_s``: a secondary this
    close to the primary is caught up. ``oplog_margin``: the oplog window must exceed the estimated time a
    member is out by this factor; ``default_out_s`` is that estimate before any restart has been observed.
    ``step_down_secs``/``secondary_catch_up_period_secs`` are ``replSetStepDown``'s arguments.
    ``alert_window_s`` is the server's alone: a rolling change that begins opens a maintenance window of its
    project this long (0: none), closed when the change ends (``store.maintenance_windows``).
    """

    lease_ttl_s: float = 120.0
    member_timeout_s: float = 600.0
    election_timeout_s: float = 60.0
    catch_up_lag_s: float = 2.0
    oplog_margin: float = 2.0
    default_out_s: float = 300.0
    step_down_secs: int = 60
    secondary_catch_up_period_secs: int = 10
    maintenance_port_offset: int = 10000
    alert_window_s: float = 0.0


def maintenance_port(port: int, policy: Policy = Policy()) -> int:
    """The port a member listens on while standalone, away from its clients and its set (MongoDB's rolling
    procedures restart a member standalone on a different port so that nothing writes to it)."""
    shifted = port + policy.maintenance_port_offset
    return shifted if shifted <= 65535 else port - policy.maintenance_port_offset


def standalone_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """A member's start-up options for its standalone restart: a shard or config server member (one with
    ``sharding.clusterRole``) loses the role and gets the two parameters MongoDB's maintenance procedure
    asks for; any other member's options are returned as they are."""
    out = copy.deepcopy(dict(args))
    sharding = out.get("sharding")
    if not isinstance(sharding, Mapping) or "clusterRole" not in sharding:
        return out
    rest = {k: v for k, v in sharding.items() if k != "clusterRole"}
    if rest:
        out["sharding"] = rest
    else:
        out.pop("sharding")
    params = dict(out.get("setParameter") or {})
    params.update(skipShardingConfigurationChecks=True, disableLogicalSessionCacheRefresh=True)
    out["setParameter"] = params
    return out


@dataclass(frozen=True)
class ObservedExtras:
    """What an agent knows beyond ``replSetGetStatus``: per process name, its oplog window (seconds, see
    :func:`effective_window_s`) and client connections."""

    oplog_window_s: Mapping[str, float] = field(default_factory=dict)
    connections: Mapping[str, int] = field(default_factory=dict)


def snapshot_from_status(
    rs_id: str,
    now: float,
    status: RsStatus | None,
    rs_config: Mapping[str, Any],
    names_by_host: Mapping[str, str],
    extras: ObservedExtras = ObservedExtras(),
) -> RsSnapshot:
    """Map a member's view of its set onto process names.

    ``rs_config`` is the set's replica set config as MongoDB holds it (``members`` with ``host`` as
    ``hostname:port``, ``votes``, ``priority``...); ``names_by_host`` maps ``hostname:port`` to process names
    (from the goal config and, for members leaving or the temporary arbiter, the previous one). A member
    in the config that ``status`` does not list (or no status at all: the observing process is down or
    standalone) is DOWN. Members whose host maps to no name keep ``hostname:port`` as their name.
    """
    seen = {m.host: m for m in status.members} if status is not None else {}
    members = []
    for entry in rs_config.get("members", []):
        host = str(entry["host"])
        name = names_by_host.get(host, host)
        st = seen.get(host)
        members.append(
            MemberView(
                name=name,
                state=st.state if st is not None else MemberState.DOWN,
                health=st.health if st is not None else False,
                votes=int(entry.get("votes", 1)),
                priority=float(entry.get("priority", 1)),
                arbiter=bool(entry.get("arbiterOnly", False)),
                hidden=bool(entry.get("hidden", False)),
                optime=st.optime_ts if st is not None else 0,
                oplog_window_s=extras.oplog_window_s.get(name),
                connections=extras.connections.get(name),
            )
        )
    return RsSnapshot(rs_id, now, tuple(members))

"""Backup alerts: which conditions hold for a backed-up source, decided from the daemon's facts, and their
publication (raise while a condition holds, resolve once it clears) through any alert sink shaped like
``opsmgr.alerts.AlertService``.

:func:`decide` is pure: ``(facts, policy, now) -> {condition: message}``. :class:`Publisher` does the
side effects for a list of sources; the server runs it from its periodic work over the sources whose backup
is STARTED (a source no longer listed has its alerts resolved). Event type names follow Ops Manager where it
has one (``OPLOG_BEHIND``, ``RESYNC_REQUIRED``, ``BACKUP_AGENT_DOWN``):

=================================== =========================================================================
``BACKUP_SNAPSHOT_MISSED``          no snapshot within ``snapshotIntervalHours`` + :attr:`grace_ms` (counted
                                    from the last snapshot, or from when backup started)
``BACKUP_SNAPSHOT_FAILED``          the last snapshot attempt failed (cleared by the next success)
``RESYNC_REQUIRED``                 the slice chain is broken (an oplog gap, or a resync was demanded) or
                                    its new chain has no snapshot yet: the window cannot extend until a new
                                    initial sync and its first snapshot, which the daemon takes at once
``BACKUP_PITR_WINDOW_GAP``          the PITR window has a hole (more than one range); it clears when
                                    retention moves the window past the hole
``BACKUP_PITR_WINDOW_NOT_ADVANCING`` the window's end is more than :attr:`stall_ms` behind the newest entry
                                    the source is known to have (or there is no window that long after
                                    the chain started)
``OPLOG_BEHIND``                    the source's newest oplog entry, as the shipping agent last reported it,
                                    is more than :attr:`lag_ms` ahead of the acknowledged slices
``BACKUP_AGENT_DOWN``               no agent has reached the daemon for this source for
                                    :attr:`silent_ms` (the daemon being unreachable from the agents looks
                                    the same from here); counted from the daemon's start after a restart
``BACKUP_BLOCK_CORRUPT``            the integrity job found blocks of this source's snapshots or slices that
                                    are corrupt or missing
=================================== =========================================================================

Agent reachability is decided on the server: every agent call for a source (``acknowledged``, slices, gap
reports) counts as contact, so no agent change is needed and an agent that died is noticed the same way as
one cut off from the daemon. Thresholds are an :class:`AlertPolicy`, which the server reads from the
``mms.backup.alerts.*`` properties of ``conf-mms.properties`` (defaults below, documented in
``opsmgr.server.settings``).

An alert's key is ``backup:<sourceId>:<condition>``, so each source has at most one open alert per
condition.

One more alert is installation-wide (a global alert, :class:`CapacityWatch`): ``BACKUP_BLOCKSTORE_FILLING``
opens when the capacity projection (``opsmgr.backup.capacity``) says the blockstore's disk fills within
:attr:`AlertPolicy.capacity_days` and closes when it no longer does. May import the standard library only:
the sink is a protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

MINUTE_MS = 60_000


class Condition(StrEnum):
    SNAPSHOT_MISSED = "BACKUP_SNAPSHOT_MISSED"
    SNAPSHOT_FAILED = "BACKUP_SNAPSHOT_FAILED"
    RESYNC_REQUIRED = "RESYNC_REQUIRED"
    WINDOW_GAP = "BACKUP_PITR_WINDOW_GAP"
    WINDOW_NOT_ADVANCING = "BACKUP_PITR_WINDOW_NOT_ADVANCING"
    OPLOG_BEHIND = "OPLOG_BEHIND"
    AGENT_DOWN = "BACKUP_AGENT_DOWN"
    BLOCK_CORRUPT = "BACKUP_BLOCK_CORRUPT"


@dataclass(frozen=True)
class AlertPolicy:
    grace_ms: int = 60 * MINUTE_MS  # a snapshot later than its interval by this much is missed
    lag_ms: int = MINUTE_MS  # backup lag (source newest entry - acknowledged) that is OPLOG_BEHIND
    stall_ms: int = 15 * MINUTE_MS  # window end this far behind the source: not advancing
    silent_ms: int = 5 * MINUTE_MS  # no agent contact for this long: BACKUP_AGENT_DOWN
    # On a primary: its secondary failing the readiness probe this long is BACKUP_SECONDARY_UNREACHABLE.
    secondary_unreachable_ms: int = MINUTE_MS
    capacity_days: float = 14.0  # the blockstore's disk projected full within this: BACKUP_BLOCKSTORE_FILLING


@dataclass(frozen=True)
class SourceFacts:
    """What :func:`decide` needs of a source; times are epoch milliseconds, ``None`` when unknown."""

    source_id: str
    group_id: str
    cluster_id: str
    name: str
    created_ms: int
    snapshot_interval_ms: int
    last_snapshot_ms: int | None = None
    last_failure: str | None = None
    has_chain: bool = False  # an initial sync has finished at least once
    chain_started_ms: int | None = None
    sync_required: str | None = None  # why a new initial sync is needed (None for "no initial sync yet")
    gap_after_ms: int | None = None  # the chain broke after this time
    current_chain_snapshotted: bool = False
    window: tuple[tuple[int, int], ...] = ()  # restorable ranges in ms, oldest first
    tip_ms: int | None = None  # the acknowledged slices' end
    source_last_ms: int | None = None  # newest source entry the shipping agent reported
    last_contact_ms: int | None = None
    daemon_started_ms: int = 0
    integrity_problems: int = 0

    @classmethod
    def from_status(cls, status: Mapping[str, Any], daemon_started_ms: int = 0) -> SourceFacts:
        """From :meth:`opsmgr.backup.daemon.BackupDaemon.status`."""
        failure = status.get("lastSnapshotFailure")
        gap = status.get("gap") or {}
        window = tuple(
            (int(r["startUTCMillis"]), int(r["endUTCMillis"]))
            for r in status.get("window", [])
            if r.get("startUTCMillis") is not None and r.get("endUTCMillis") is not None
        )
        last = status.get("lastSnapshot")
        return cls(
            source_id=status["sourceId"],
            group_id=status["groupId"],
            cluster_id=status["clusterId"],
            name=status["name"],
            created_ms=int(status["createdAt"]),
            snapshot_interval_ms=int(status["snapshotIntervalMs"]),
            last_snapshot_ms=None if last is None else int(last["createdAt"]),
            last_failure=None if failure is None else str(failure.get("message", "")),
            has_chain=status.get("chain") is not None,
            chain_started_ms=status.get("chainStartUTCMillis"),
            sync_required=status.get("syncRequired") if status.get("chain") is not None else None,
            gap_after_ms=gap.get("afterUTCMillis"),
            current_chain_snapshotted=bool(status.get("currentChainSnapshotted")),
            window=window,
            tip_ms=status.get("tipUTCMillis"),
            source_last_ms=status.get("sourceLastUTCMillis"),
            last_contact_ms=status.get("lastAgentContact"),
            daemon_started_ms=daemon_started_ms,
            integrity_problems=int(status.get("sourceIntegrityProblems", 0)),
        )


def _ago(ms: int) -> str:
    seconds = ms // 1000
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def decide(facts: SourceFacts, policy: AlertPolicy, now_ms: int) -> dict[Condition, str]:
    """The conditions that hold for a source at ``now_ms``, each with the alert's message."""
    out: dict[Condition, str] = {}
    who = f"backup of {facts.name}"
    since = facts.last_snapshot_ms if facts.last_snapshot_ms is not None else facts.created_ms
    if now_ms - since > facts.snapshot_interval_ms + policy.grace_ms:
        what = "the last snapshot" if facts.last_snapshot_ms is not None else "backup started"
        out[Condition.SNAPSHOT_MISSED] = (
            f"{who}: no snapshot for {_ago(now_ms - since)} since {what} "
            f"(interval {_ago(facts.snapshot_interval_ms)} + grace {_ago(policy.grace_ms)})"
        )
    if facts.last_failure is not None:
        out[Condition.SNAPSHOT_FAILED] = f"{who}: the last snapshot failed: {facts.last_failure}"
    if facts.has_chain and facts.sync_required is not None:
        out[Condition.RESYNC_REQUIRED] = f"{who}: a new initial sync is required: {facts.sync_required}"
    elif facts.last_snapshot_ms is not None and not facts.current_chain_snapshotted:
        out[Condition.RESYNC_REQUIRED] = (
            f"{who}: resynced after a break; the window resumes with the new chain's first snapshot"
        )
    if len(facts.window) > 1:
        holes = [(a[1], b[0]) for a, b in zip(facts.window, facts.window[1:], strict=False)]
        shown = ", ".join(f"{_ago(b - a)} after {a} ms" for a, b in holes)
        out[Condition.WINDOW_GAP] = f"{who}: the point-in-time window has {len(holes)} hole(s): {shown}"
    newest = max((t for t in (facts.tip_ms, facts.source_last_ms) if t is not None), default=None)
    if facts.window and newest is not None and newest - facts.window[-1][1] > policy.stall_ms:
        out[Condition.WINDOW_NOT_ADVANCING] = (
            f"{who}: the point-in-time window ends {_ago(newest - facts.window[-1][1])} before the source's "
            "newest entry"
        )
    elif (
        not facts.window
        and facts.chain_started_ms is not None
        and now_ms - facts.chain_started_ms > policy.stall_ms
    ):
        out[Condition.WINDOW_NOT_ADVANCING] = (
            f"{who}: no point-in-time window {_ago(now_ms - facts.chain_started_ms)} after the initial sync"
        )
    if facts.source_last_ms is not None and facts.tip_ms is not None:
        behind = facts.source_last_ms - facts.tip_ms
        if behind > policy.lag_ms:
            out[Condition.OPLOG_BEHIND] = (
                f"{who}: the acknowledged oplog slices are {_ago(behind)} behind the source "
                f"(threshold {_ago(policy.lag_ms)})"
            )
    # Silence is counted from the daemon's start at the earliest: the contact recorded before a restart does
    # not make the agents late for a daemon they could not reach.
    contact = max(facts.last_contact_ms or 0, facts.daemon_started_ms)
    if now_ms - max(contact, facts.created_ms) > policy.silent_ms:
        out[Condition.AGENT_DOWN] = (
            f"{who}: no agent has reached the backup daemon for {_ago(now_ms - facts.last_contact_ms)}"
            if facts.last_contact_ms is not None
            else f"{who}: no agent has reached the backup daemon since it started"
        )
    if facts.integrity_problems:
        out[Condition.BLOCK_CORRUPT] = (
            f"{who}: the integrity job found {facts.integrity_problems} corrupt or missing block(s); "
            "restores that need them are refused"
        )
    return out


def alert_key(source_id: str, condition: Condition) -> str:
    return f"backup:{source_id}:{condition.value}"


class AlertSink(Protocol):
    def raise_alert(
        self, group_id: str, event_type: str, key: str, message: str, **details: Any
    ) -> dict[str, Any]: ...

    def resolve(self, group_id: str, key: str) -> bool: ...


class Publisher:
    """Raises every condition that holds and resolves every one that stopped holding.

    It remembers what it last published, so an unchanged condition costs no write; its first run resolves
    whatever is not found any more, including alerts a previous server process left open.
    """

    def __init__(self, sink: AlertSink, policy: AlertPolicy | None = None) -> None:
        self.sink = sink
        self.policy = policy or AlertPolicy()
        self._published: dict[str, dict[Condition, str]] | None = None
        self._groups: dict[str, str] = {}

    def run(self, sources: Iterable[SourceFacts], now_ms: int) -> dict[str, dict[Condition, str]]:
        """Publishes the conditions of ``sources``; returns them per source id."""
        before = self._published
        held: dict[str, dict[Condition, str]] = {}
        for facts in sources:
            found = decide(facts, self.policy, now_ms)
            held[facts.source_id] = found
            last = None if before is None else before.get(facts.source_id, {})
            for condition in Condition:
                key = alert_key(facts.source_id, condition)
                message = found.get(condition)
                if message is not None and (last is None or last.get(condition) != message):
                    self.sink.raise_alert(
                        facts.group_id,
                        condition.value,
                        key,
                        message,
                        clusterId=facts.cluster_id,
                        replicaSetName=facts.name,
                        sourceId=facts.source_id,
                    )
                elif message is None and (last is None or condition in last):
                    self.sink.resolve(facts.group_id, key)
            self._groups[facts.source_id] = facts.group_id
        for gone in set(before or {}) - set(held):
            for condition in (before or {})[gone]:
                self.sink.resolve(self._groups[gone], alert_key(gone, condition))
        self._published = held
        return held


BLOCKSTORE_FILLING = "BACKUP_BLOCKSTORE_FILLING"
BLOCKSTORE_FILLING_KEY = f"backup:blockstore:{BLOCKSTORE_FILLING}"
# Measuring capacity stats every block file: done at most this often, not at every alert period.
CAPACITY_CHECK_MS = MINUTE_MS


def capacity_message(days_until_full: float | None, full_date: str | None, policy: AlertPolicy) -> str | None:
    """The alert's message while the disk is projected full within the threshold, else None."""
    if days_until_full is None or days_until_full > policy.capacity_days:
        return None
    return (
        f"the blockstore's disk is projected to fill in {days_until_full:.1f} days ({full_date}) at the "
        f"measured snapshot growth (threshold {policy.capacity_days:g} days)"
    )


class CapacityWatch:
    """Keeps the global ``BACKUP_BLOCKSTORE_FILLING`` alert in step with the capacity projection.

    ``measure`` answers ``(days until full, the date it fills)``; it is called at most every
    :data:`CAPACITY_CHECK_MS`. The first run resolves an alert an earlier process may have left open.
    """

    def __init__(self, sink: AlertSink, group_id: str, policy: AlertPolicy | None = None) -> None:
        self.sink = sink
        self.group_id = group_id
        self.policy = policy or AlertPolicy()
        self.checked_ms: int | None = None
        self.message: str | None = ""  # "" = unknown yet

    def run(self, measure: Callable[[], tuple[float | None, str | None]], now_ms: int) -> str | None:
        if self.checked_ms is not None and now_ms - self.checked_ms < CAPACITY_CHECK_MS:
            return self.message or None
        self.checked_ms = now_ms
        message = capacity_message(*measure(), self.policy)
        if message is not None and message != self.message:
            self.sink.raise_alert(self.group_id, BLOCKSTORE_FILLING, BLOCKSTORE_FILLING_KEY, message)
        elif message is None and self.message is not None:
            self.sink.resolve(self.group_id, BLOCKSTORE_FILLING_KEY)
        self.message = message
        return message

"""Backup alerts: the pure decision as a table (each condition raised when it holds and absent when it does
not), and the publisher raising, refreshing only on change, and resolving through an alert sink."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from opsmgr.backup.alerts import AlertPolicy, Condition, Publisher, SourceFacts, alert_key, decide

H = 3_600_000
NOW = 100 * H
POLICY = AlertPolicy(grace_ms=H, lag_ms=60_000, stall_ms=15 * 60_000, silent_ms=5 * 60_000)

# A healthy source: snapshotted an hour ago in its current chain, window up to the tip, agent in contact.
HEALTHY = SourceFacts(
    source_id="s1",
    group_id="g1",
    cluster_id="c1",
    name="rs0",
    created_ms=NOW - 48 * H,
    snapshot_interval_ms=6 * H,
    last_snapshot_ms=NOW - H,
    has_chain=True,
    chain_started_ms=NOW - 48 * H,
    current_chain_snapshotted=True,
    window=((NOW - 48 * H, NOW - 2_000),),
    tip_ms=NOW - 2_000,
    source_last_ms=NOW - 1_000,
    last_contact_ms=NOW - 1_000,
    daemon_started_ms=NOW - 10 * H,
)

CASES: list[tuple[str, dict[str, Any], set[Condition]]] = [
    ("healthy", {}, set()),
    ("snapshot within interval + grace", {"last_snapshot_ms": NOW - 7 * H + 1}, set()),
    ("snapshot missed", {"last_snapshot_ms": NOW - 7 * H - 1}, {Condition.SNAPSHOT_MISSED}),
    (
        "never snapshotted, counted from backup start",
        {"last_snapshot_ms": None, "created_ms": NOW - 8 * H, "current_chain_snapshotted": False},
        {Condition.SNAPSHOT_MISSED},
    ),
    ("never snapshotted, young", {"last_snapshot_ms": None, "created_ms": NOW - H}, set()),
    ("snapshot failed", {"last_failure": "disk full"}, {Condition.SNAPSHOT_FAILED}),
    ("gap: resync required", {"sync_required": "oplog rolled over"}, {Condition.RESYNC_REQUIRED}),
    (
        "resynced, new chain not snapshotted yet",
        {"current_chain_snapshotted": False},
        {Condition.RESYNC_REQUIRED},
    ),
    (
        "a hole in the window",
        {"window": ((NOW - 48 * H, NOW - 10 * H), (NOW - 9 * H, NOW - 2_000))},
        {Condition.WINDOW_GAP},
    ),
    ("window end just under the stall", {"window": ((NOW - 48 * H, NOW - 15 * 60_000),)}, set()),
    (
        "window not advancing behind the tip",
        {"window": ((NOW - 48 * H, NOW - 20 * 60_000),)},
        {Condition.WINDOW_NOT_ADVANCING},
    ),
    (
        "no window long after the initial sync",
        {"window": (), "last_snapshot_ms": None, "created_ms": NOW - 2 * H, "chain_started_ms": NOW - H},
        {Condition.WINDOW_NOT_ADVANCING},
    ),
    ("lag under the threshold", {"tip_ms": NOW - 50_000, "window": ((NOW - 48 * H, NOW - 50_000),)}, set()),
    (
        "oplog behind",
        {"tip_ms": NOW - 120_000, "window": ((NOW - 48 * H, NOW - 120_000),)},
        {Condition.OPLOG_BEHIND},
    ),
    (
        "idle source: old tip, nothing newer at the source",
        {"tip_ms": NOW - 5 * H, "source_last_ms": NOW - 5 * H, "window": ((NOW - 48 * H, NOW - 5 * H),)},
        set(),
    ),
    ("agent silent", {"last_contact_ms": NOW - 6 * 60_000}, {Condition.AGENT_DOWN}),
    (
        "never contacted since the daemon started",
        {"last_contact_ms": None, "daemon_started_ms": NOW - 6 * 60_000},
        {Condition.AGENT_DOWN},
    ),
    ("daemon just restarted", {"last_contact_ms": None, "daemon_started_ms": NOW - 60_000}, set()),
    (
        # The shared record of a contact heard before a restart: the agents get the daemon's first minutes
        "restarted after a long stop",
        {"last_contact_ms": NOW - 60 * 60_000, "daemon_started_ms": NOW - 60_000},
        set(),
    ),
    ("corrupt block", {"integrity_problems": 2}, {Condition.BLOCK_CORRUPT}),
]


@pytest.mark.parametrize(("case", "changes", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(case: str, changes: dict[str, Any], expected: set[Condition]) -> None:
    found = decide(replace(HEALTHY, **changes), POLICY, NOW)
    assert set(found) == expected, (case, found)
    assert all("rs0" in message for message in found.values())


def test_facts_from_the_daemons_status() -> None:
    status = {
        "sourceId": "s1",
        "groupId": "g1",
        "clusterId": "c1",
        "name": "rs0",
        "createdAt": 5,
        "snapshotIntervalMs": 6 * H,
        "lastSnapshot": {"id": "x", "createdAt": 7},
        "lastSnapshotFailure": {"at": 8, "snapshotId": "y", "message": "boom"},
        "chain": "c",
        "chainStartUTCMillis": 6,
        "syncRequired": None,
        "gap": {"afterTs": 1, "afterUTCMillis": 9},
        "currentChainSnapshotted": True,
        "window": [
            {"startUTCMillis": 1, "endUTCMillis": 2},
            {"startUTCMillis": None, "endUTCMillis": None},
            {"startUTCMillis": 3, "endUTCMillis": 4},
        ],
        "tipUTCMillis": 4,
        "sourceLastUTCMillis": 5,
        "lastAgentContact": 10,
        "sourceIntegrityProblems": 1,
    }
    facts = SourceFacts.from_status(status, daemon_started_ms=3)
    assert facts.window == ((1, 2), (3, 4))
    assert (facts.last_snapshot_ms, facts.last_failure, facts.gap_after_ms) == (7, "boom", 9)
    assert (facts.source_last_ms, facts.last_contact_ms, facts.integrity_problems) == (5, 10, 1)
    no_chain = SourceFacts.from_status({**status, "chain": None, "syncRequired": "no initial sync yet"})
    assert no_chain.sync_required is None and not no_chain.has_chain


class Sink:
    def __init__(self) -> None:
        self.open: dict[tuple[str, str], str] = {}
        self.writes = 0

    def raise_alert(
        self, group_id: str, event_type: str, key: str, message: str, **details: Any
    ) -> dict[str, Any]:
        assert key == f"backup:{details['sourceId']}:{event_type}"
        self.open[(group_id, key)] = message
        self.writes += 1
        return {}

    def resolve(self, group_id: str, key: str) -> bool:
        self.writes += 1
        return self.open.pop((group_id, key), None) is not None


def test_the_publisher_raises_refreshes_on_change_and_resolves() -> None:
    sink = Sink()
    sink.open[("g1", alert_key("s1", Condition.SNAPSHOT_FAILED))] = "left open by a previous process"
    publisher = Publisher(sink, POLICY)
    publisher.run([HEALTHY], NOW)
    assert sink.open == {}, "the first run resolves what no longer holds"
    failing = replace(HEALTHY, last_failure="disk full")
    publisher.run([failing], NOW)
    assert list(sink.open) == [("g1", alert_key("s1", Condition.SNAPSHOT_FAILED))]
    writes = sink.writes
    publisher.run([failing], NOW + 1)
    assert sink.writes == writes, "an unchanged condition costs no write"
    publisher.run([replace(failing, last_failure="disk still full")], NOW + 2)
    assert (
        sink.open[("g1", alert_key("s1", Condition.SNAPSHOT_FAILED))]
        == "backup of rs0: the last snapshot failed: disk still full"
    )
    publisher.run([HEALTHY], NOW + 3)
    assert sink.open == {}
    publisher.run([failing], NOW + 4)
    publisher.run([], NOW + 5)
    assert sink.open == {}, "a source no longer backed up has its alerts resolved"

"""Restoration Mode at scale (issue 18 item 4), without processes: a collection round's deadline grows with
the agents expected, a failed round keeps what it heard (the next one waits only for the missing agents, and
the last missing claim completes collection at once), and only the periodic job judges time, so agent
contact on any server never fails or restarts a round."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmgr.automation.service import AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.restoration import mode
from opsmgr.restoration.mode import AgentReport, Fail, ModeState, RequestUpload, Wait
from opsmgr.restoration.service import RestorationService
from opsmgr.restoration.state import MissingHost, ModeRecord
from opsmgr.store.engine import Store
from tests.configs import replica_set_config

POLL_MS = 1000
HASH_A = "a" * 64
HASH_B = "b" * 64
HASH_C = "c" * 64


@pytest.mark.parametrize(
    ("agents", "polls"),
    [(0, 3), (3, 3), (99, 3), (100, 4), (333, 6), (1000, 13), (2700, 30), (10_000, 30), (-5, 3)],
)
def test_the_collection_deadline_grows_with_the_agents_expected(agents: int, polls: int) -> None:
    """3 poll intervals, one more per 100 agents expected, at most the agents' own retry cap (30)."""
    assert mode.collection_deadline_ms(agents, POLL_MS) == polls * POLL_MS


def test_the_deadline_never_shrinks_as_more_agents_are_expected() -> None:
    deadlines = [mode.collection_deadline_ms(n, POLL_MS) for n in range(0, 5000, 37)]
    assert deadlines == sorted(deadlines)


def _collecting(now: int = 0) -> ModeRecord:
    rec = mode.enter(mode.new_record("g"), hostname="a", agent_version=5, restored_version=3, now=now)
    return mode.heard(rec, AgentReport("a", 5, 100, HASH_A), now=now)


def test_a_round_at_scale_waits_longer_before_it_fails() -> None:
    rec = _collecting()
    few = mode.collection_deadline_ms(0, POLL_MS) + 1
    assert isinstance(mode.decide(rec, {"a", "b"}, few, POLL_MS), Fail), "alone, the base deadline"
    assert isinstance(mode.decide(rec, {"a", "b"}, few, POLL_MS, agents_expected=1000), Wait)
    late = mode.collection_deadline_ms(1000, POLL_MS) + 1
    assert isinstance(mode.decide(rec, {"a", "b"}, late, POLL_MS, agents_expected=1000), Fail)


def _failed(rec: ModeRecord, expected: set[str], now: int) -> ModeRecord:
    decision = mode.decide(rec, expected, now, POLL_MS)
    assert isinstance(decision, Fail)
    return mode.record_failure(rec, decision, now, POLL_MS)


def test_a_failed_round_keeps_what_it_heard_and_the_next_waits_for_the_missing_only() -> None:
    rec = mode.heard(_collecting(), AgentReport("b", 6, 50, HASH_B), now=10)
    late = mode.collection_deadline_ms(3, POLL_MS) + 1
    rec = _failed(rec, {"a", "b", "c"}, late)
    assert rec.state is ModeState.RETRY_WAIT and [m.hostname for m in rec.missing_hosts] == ["c"]
    assert mode.missing(rec, {"a", "b", "c"}) == ["c"], "a's and b's claims survive the failure"
    assert rec.next_attempt_at is not None and not mode.next_round_due(rec, rec.next_attempt_at - 1)
    assert mode.next_round_due(rec, rec.next_attempt_at)
    started = rec.next_attempt_at
    rec = mode.next_round(rec, started, reset_failures=False)
    assert rec.state is ModeState.COLLECTING and rec.failure_count == 1 and rec.collecting_since == started
    assert mode.missing(rec, {"a", "b", "c"}) == ["c"]
    rec = mode.heard(rec, AgentReport("c", 5, 70, HASH_C), now=started + 1)
    assert mode.completed(rec, {"a", "b", "c"}) == RequestUpload(AgentReport("b", 6, 50, HASH_B))


def test_the_last_claim_completes_collection_during_the_backoff() -> None:
    """The backoff spaces failed rounds out; it never holds back a collection that is complete."""
    late = mode.collection_deadline_ms(2, POLL_MS) + 1
    rec = _failed(_collecting(), {"a", "b"}, late)
    assert rec.state is ModeState.RETRY_WAIT
    assert mode.completed(rec, {"a", "b"}) is None
    assert isinstance(mode.decide(rec, {"a", "b"}, late + 1, POLL_MS), Wait)
    rec = mode.heard(rec, AgentReport("b", 6, 50, HASH_B), now=late + 2)
    expected_request = RequestUpload(AgentReport("b", 6, 50, HASH_B))
    assert mode.completed(rec, {"a", "b"}) == expected_request
    assert mode.decide(rec, {"a", "b"}, late + 3, POLL_MS) == expected_request


def test_a_failed_upload_drops_only_the_chosen_agent_s_claim() -> None:
    rec = mode.heard(_collecting(), AgentReport("b", 6, 50, HASH_B), now=10)
    rec = mode.request_upload(rec, AgentReport("b", 6, 50, HASH_B), now=20)
    failure = Fail("b's upload was refused", [MissingHost(hostname="b", reason="uploaded config refused")])
    rec = mode.record_failure(rec, failure, now=30, poll_interval_ms=POLL_MS)
    assert mode.missing(rec, {"a", "b"}) == ["b"], "b is heard again, a is not asked twice"
    assert rec.agents["a"].config_hash == HASH_A


def test_a_claim_remembers_when_it_first_came_in() -> None:
    rec = _collecting(now=5)
    assert rec.agents["a"].claimed_at == 5
    rec = mode.heard(rec, AgentReport("a", 5, 100), now=9)  # a poll at the same version
    rec = mode.heard(rec, AgentReport("a", 5, 100, HASH_A), now=12)  # its next status report
    assert rec.agents["a"].claimed_at == 5 and rec.agents["a"].heard_at == 12
    rec = mode.heard(rec, AgentReport("a", 6, 200, HASH_B), now=20)  # another version: a new claim
    assert rec.agents["a"].claimed_at == 20
    rec = mode.heard(rec, AgentReport("b", 6, 0), now=21)  # a poll claims nothing
    assert rec.agents["b"].claimed_at is None


HOSTS = ["a.rounds.sim", "b.rounds.sim"]


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def _service(tmp_path: Path, clock: Clock) -> RestorationService:
    store = Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")
    automation = AutomationService(store, str, str, validate_transition=lambda old, new: None)
    automation.put_config("g1", replica_set_config(HOSTS), check_transition=False)
    return RestorationService(store, automation, enabled=True, poll_interval_s=1.0, clock=clock)


def test_agent_contact_never_judges_time_only_the_job_does(tmp_path: Path) -> None:
    """Polls and status reports reach any server: long past the deadline they still fail nothing; the
    periodic job (one server, under its lease) fails the round, and the late agent's claim then completes
    it in the transaction that records it."""
    clock = Clock()
    service = _service(tmp_path, clock)
    restored = service.automation.version("g1")
    assert service.on_poll("g1", HOSTS[0], restored + 2) is None
    claim = StatusReport(cv=restored + 2, cvTimestamp=5, cvHash=HASH_A)
    assert service.on_status("g1", HOSTS[0], claim) == {}
    clock.ms += 100 * POLL_MS
    assert service.on_poll("g1", HOSTS[0], restored + 2) is None
    assert service.on_status("g1", HOSTS[0], claim) == {}
    rec = service.record("g1")
    assert rec.state is ModeState.COLLECTING and rec.failure_count == 0, "agent contact judged the deadline"
    service.tick()
    rec = service.record("g1")
    assert rec.state is ModeState.RETRY_WAIT and [m.hostname for m in rec.missing_hosts] == [HOSTS[1]]
    answer = service.on_status("g1", HOSTS[1], StatusReport(cv=restored + 1, cvTimestamp=9, cvHash=HASH_B))
    assert answer == {}, "the upload is asked of the latest agent, not of the one that completed it"
    rec = service.record("g1")
    assert rec.state is ModeState.AWAITING_UPLOAD and rec.failure_count == 1
    assert rec.chosen_agent is not None and rec.chosen_agent.hostname == HOSTS[0]
    asked = service.on_status("g1", HOSTS[0], claim)
    assert asked["requests"][0]["configVersion"] == restored + 2


def test_a_repeated_report_is_not_news_until_heard_at_is_stale() -> None:
    rec = _collecting(now=0)
    refresh = mode.HEARD_REFRESH_POLLS * POLL_MS
    assert not mode.is_news(rec, AgentReport("a", 5, 0), 10, POLL_MS), "a poll at the version heard"
    assert not mode.is_news(rec, AgentReport("a", 5, 100, HASH_A), 10, POLL_MS), "the same claim again"
    assert mode.is_news(rec, AgentReport("a", 6, 0), 10, POLL_MS), "another version"
    assert mode.is_news(rec, AgentReport("a", 5, 100, HASH_B), 10, POLL_MS), "another claim"
    assert mode.is_news(rec, AgentReport("a", 5, 101, HASH_A), 10, POLL_MS), "another timestamp"
    assert mode.is_news(rec, AgentReport("b", 5, 0), 10, POLL_MS), "an agent not heard yet"
    assert mode.is_news(rec, AgentReport("a", 5, 0), refresh, POLL_MS), "heardAt refreshed now and then"

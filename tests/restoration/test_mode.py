"""The pure decisions of Restoration Mode, without processes."""

from __future__ import annotations

import pytest

from opsmgr.restoration import mode
from opsmgr.restoration.mode import AgentReport, Fail, ModeState, RequestUpload, Wait
from opsmgr.restoration.state import ArmedBy, ChosenAgent, ModeRecord

POLL_MS = 1000
HASH_A = "a" * 64
HASH_B = "b" * 64


def entered(now: int = 0) -> ModeRecord:
    return mode.enter(mode.new_record("g"), hostname="a", agent_version=5, restored_version=3, now=now)


@pytest.mark.parametrize(
    ("reports", "winner"),
    [
        ([AgentReport("a", 4, 10), AgentReport("b", 5, 1)], "b"),  # highest version wins
        ([AgentReport("a", 5, 10), AgentReport("b", 5, 20)], "b"),  # then the later timestamp
        ([AgentReport("a", 5, 10), AgentReport("b", 5, 10)], "b"),  # then the hostname
        ([AgentReport("z", 5, 10), AgentReport("b", 5, 10)], "z"),
    ],
)
def test_choose_latest(reports: list[AgentReport], winner: str) -> None:
    chosen = mode.choose_latest(reports)
    assert chosen is not None and chosen.hostname == winner


def test_choose_latest_of_nothing() -> None:
    assert mode.choose_latest([]) is None


def test_enter_records_trigger_and_resets_failures() -> None:
    rec = entered(now=7)
    assert rec.state == ModeState.COLLECTING
    assert rec.triggered_at == 7
    assert rec.trigger_reason is not None and rec.trigger_reason.to_doc() == {
        "hostname": "a",
        "agentConfigVersion": 5,
        "restoredConfigVersion": 3,
        "detail": "agent a holds automation config version 5, higher than the restored version 3",
    }


def test_waits_for_every_expected_agent_then_requests_the_latest() -> None:
    rec = entered()
    rec = mode.heard(rec, AgentReport("a", 5, 100, HASH_A), now=1)
    assert isinstance(mode.decide(rec, {"a", "b"}, now=2, poll_interval_ms=POLL_MS), Wait)
    rec = mode.heard(rec, AgentReport("b", 6, 50, HASH_B), now=3)
    decision = mode.decide(rec, {"a", "b"}, now=4, poll_interval_ms=POLL_MS)
    assert decision == RequestUpload(AgentReport("b", 6, 50, HASH_B))


def test_the_choice_waits_for_every_agent_s_status_claim() -> None:
    """A poll says which version an agent holds, not since when nor the config's hash: choosing on polls
    alone would rank agents by hostname and ask for an upload nothing can be checked against."""
    rec = entered()
    rec = mode.heard(rec, AgentReport("a", 5, 100, HASH_A), now=1)
    rec = mode.heard(rec, AgentReport("b", 6, 0), now=2)  # a poll: no hash yet
    assert isinstance(mode.decide(rec, {"a", "b"}, now=3, poll_interval_ms=POLL_MS), Wait)
    assert mode.missing(rec, {"a", "b"}) == ["b"]
    rec = mode.heard(rec, AgentReport("b", 6, 50, HASH_B), now=4)  # its status
    rec = mode.heard(rec, AgentReport("b", 6, 50), now=5)  # a later poll keeps the claim of the same version
    assert mode.decide(rec, {"a", "b"}, now=6, poll_interval_ms=POLL_MS) == RequestUpload(
        AgentReport("b", 6, 50, HASH_B)
    )
    rec = mode.heard(rec, AgentReport("b", 7, 60), now=7)  # a poll at another version drops the claim
    assert isinstance(mode.decide(rec, {"a", "b"}, now=8, poll_interval_ms=POLL_MS), Wait)
    late = int(mode.COLLECTION_TIMEOUT_POLLS * POLL_MS) + 10
    failed = mode.decide(rec, {"a", "b"}, now=late, poll_interval_ms=POLL_MS)
    assert isinstance(failed, Fail) and failed.missing_hosts[0].hostname == "b"


@pytest.mark.parametrize(
    ("version", "digest", "problem"),
    [
        (6, HASH_B, None),
        (5, HASH_B, "claimed to hold version 6"),
        (6, HASH_A, "is not the hash"),
        ("6", HASH_B, "claimed to hold version 6"),
    ],
)
def test_an_upload_must_be_the_claimed_config(version: object, digest: str, problem: str | None) -> None:
    chosen = ChosenAgent(hostname="b", config_version=6, config_hash=HASH_B)
    found = mode.claim_problem(chosen, version, digest)
    assert found is None if problem is None else (found is not None and problem in found)


def test_an_upload_without_a_claimed_hash_is_refused() -> None:
    found = mode.claim_problem(ChosenAgent(hostname="b", config_version=6, config_hash=None), 6, HASH_B)
    assert found is not None and "never reported" in found


@pytest.mark.parametrize(
    ("processes", "running", "rule"),
    [
        ({"p1": "b", "p2": "c"}, {"b": {"p1"}, "c": {"p2"}}, None),
        ({}, {"b": {"p1"}}, "no-processes"),
        ({}, {"b": set()}, None),
        ({"p2": "c"}, {"b": {"p1"}, "c": {"p2"}}, "running-processes"),
        ({"p1": "c"}, {"b": {"p1"}}, "running-processes"),  # on another host is not what b runs
        ({"p1": "B"}, {"b": {"p1"}}, None),  # host names compare case-insensitively
        ({"p1": "b"}, {"b": {"p1"}, "c": {"old"}}, None),  # another agent may still be converging
    ],
)
def test_an_upload_must_describe_what_the_chosen_agent_runs(
    processes: dict[str, str], running: dict[str, set[str]], rule: str | None
) -> None:
    found = mode.upload_problem(processes, running, "b")
    assert found is None if rule is None else (found is not None and f"rule {rule}" in found)


def test_armed_clears_once_every_awaited_agent_polled() -> None:
    rec = mode.arm(mode.new_record("g"), hosts=["a", "b"], restore=ArmedBy(restore_job_id="j"), now=1)
    assert rec.state == ModeState.ARMED and ModeState.ARMED in mode.GUARDED_STATES
    rec = mode.heard_while_armed(rec, "A", now=2)
    assert rec.state is ModeState.ARMED
    assert rec.awaiting_hosts == ["b"]
    rec = mode.heard_while_armed(rec, "stranger", now=3)
    assert rec.state is ModeState.ARMED
    rec = mode.heard_while_armed(rec, "b", now=4)
    assert rec.state == ModeState.INACTIVE and rec.disarmed_at == 4


def test_missing_agents_fail_after_the_collection_timeout_with_backoff() -> None:
    rec = entered(now=0)
    rec = mode.heard(rec, AgentReport("a", 5, 1, HASH_A), now=1)
    late = int(mode.COLLECTION_TIMEOUT_POLLS * POLL_MS) + 1
    decision = mode.decide(rec, {"a", "c"}, now=late, poll_interval_ms=POLL_MS)
    assert isinstance(decision, Fail)
    assert decision.missing_hosts[0].hostname == "c"
    rec = mode.record_failure(rec, decision, now=late, poll_interval_ms=POLL_MS)
    assert rec.state == ModeState.RETRY_WAIT and rec.failure_count == 1
    assert rec.next_attempt_at is not None
    first_wait = rec.next_attempt_at - late
    rec = mode.next_round(rec, now=rec.next_attempt_at, reset_failures=False)
    rec = mode.record_failure(rec, decision, now=late * 3, poll_interval_ms=POLL_MS)
    assert rec.failure_count == 2
    assert rec.next_attempt_at is not None and rec.next_attempt_at - late * 3 == 2 * first_wait


def test_backoff_is_capped() -> None:
    assert mode.backoff_ms(100, POLL_MS) == mode.BACKOFF_CAP_POLLS * POLL_MS


def test_upload_timeout_is_a_failure_naming_the_agent() -> None:
    rec = entered()
    rec = mode.request_upload(rec, AgentReport("b", 6, 1), now=10)
    assert isinstance(mode.decide(rec, {"b"}, now=11, poll_interval_ms=POLL_MS), Wait)
    late = 10 + int(mode.UPLOAD_TIMEOUT_POLLS * POLL_MS) + 1
    decision = mode.decide(rec, {"b"}, now=late, poll_interval_ms=POLL_MS)
    assert isinstance(decision, Fail) and decision.missing_hosts[0].hostname == "b"


def test_retry_resets_counter_without_leaving() -> None:
    rec = entered()
    rec = mode.record_failure(rec, Fail("x", []), now=5, poll_interval_ms=POLL_MS)
    rec = mode.next_round(rec, now=6, reset_failures=True)
    assert rec.state == ModeState.COLLECTING and rec.failure_count == 0 and rec.last_failure is None


def test_forced_exit_waits_for_every_agent_to_converge() -> None:
    rec = entered()
    rec = mode.force_exit(rec, served_version=9, expected={"a", "b"}, now=1)
    assert rec.state == ModeState.FORCED_EXIT_CONVERGING
    rec = mode.converged(rec, "a", 9, now=2)
    assert rec.state is ModeState.FORCED_EXIT_CONVERGING
    rec = mode.converged(rec, "b", 8, now=3)
    below = "an agent below the forced version has not converged"
    assert rec.state is ModeState.FORCED_EXIT_CONVERGING, below
    rec = mode.converged(rec, "b", 9, now=4)
    assert rec.state == ModeState.INACTIVE


def test_exit_keeps_a_bounded_history() -> None:
    rec = entered()
    for i in range(15):
        rec = mode.exit_mode(rec, reason="r", version=i, now=i)
    assert len(rec.history) == 10 and rec.history[-1].authoritative_version == 14


def test_the_modes_alerts_follow_its_state_changes_only() -> None:
    rec = entered()
    opened = mode.alert_facts(None, rec)
    assert [(f.event_type, f.open) for f in opened] == [
        (mode.ENTERED_ALERT, True),
        (mode.FAILED_ALERT, False),
    ]
    assert "entered Restoration Mode" in opened[0].message
    assert mode.alert_facts(rec, rec.changed(updated_at=5)) == [], "no change of state, nothing to do"
    failed = mode.record_failure(rec, Fail("the chosen agent did not upload", []), 10, POLL_MS)
    facts = {f.event_type: f for f in mode.alert_facts(rec, failed)}
    assert facts[mode.FAILED_ALERT].open and "did not upload" in facts[mode.FAILED_ALERT].message
    assert facts[mode.ENTERED_ALERT].open, "still in the mode while it waits to retry"
    done = mode.exit_mode(failed, reason="reconciled at version 7", version=7, now=20)
    facts = {f.event_type: f for f in mode.alert_facts(failed, done)}
    assert (
        not facts[mode.ENTERED_ALERT].open and "reconciled at version 7" in facts[mode.ENTERED_ALERT].message
    )
    assert not facts[mode.FAILED_ALERT].open

"""The pure decisions of Restoration Mode, without processes."""

from __future__ import annotations

import pytest

from opsmgr.restoration import mode
from opsmgr.restoration.mode import AgentReport, Fail, ModeState, RequestUpload, Wait

POLL_MS = 1000


def entered(now: int = 0) -> dict[str, object]:
    rec = mode.new_record("g")
    mode.enter(rec, hostname="a", agent_version=5, restored_version=3, now=now)
    return rec


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
    assert rec["state"] == ModeState.COLLECTING
    assert rec["triggeredAt"] == 7
    assert rec["triggerReason"] == {
        "hostname": "a",
        "agentConfigVersion": 5,
        "restoredConfigVersion": 3,
        "detail": "agent a holds automation config version 5, higher than the restored version 3",
    }


def test_waits_for_every_expected_agent_then_requests_the_latest() -> None:
    rec = entered()
    mode.heard(rec, AgentReport("a", 5, 100), now=1)
    assert isinstance(mode.decide(rec, {"a", "b"}, now=2, poll_interval_ms=POLL_MS), Wait)
    mode.heard(rec, AgentReport("b", 6, 50), now=3)
    decision = mode.decide(rec, {"a", "b"}, now=4, poll_interval_ms=POLL_MS)
    assert decision == RequestUpload(AgentReport("b", 6, 50))


def test_missing_agents_fail_after_the_collection_timeout_with_backoff() -> None:
    rec = entered(now=0)
    mode.heard(rec, AgentReport("a", 5, 1), now=1)
    late = int(mode.COLLECTION_TIMEOUT_POLLS * POLL_MS) + 1
    decision = mode.decide(rec, {"a", "c"}, now=late, poll_interval_ms=POLL_MS)
    assert isinstance(decision, Fail)
    assert decision.missing_hosts[0]["hostname"] == "c"
    mode.record_failure(rec, decision, now=late, poll_interval_ms=POLL_MS)
    assert rec["state"] == ModeState.RETRY_WAIT and rec["failureCount"] == 1
    first_wait = rec["nextAttemptAt"] - late
    mode.restart_collection(rec, now=rec["nextAttemptAt"], reset_failures=False)
    mode.record_failure(rec, decision, now=late * 3, poll_interval_ms=POLL_MS)
    assert rec["failureCount"] == 2
    assert rec["nextAttemptAt"] - late * 3 == 2 * first_wait


def test_backoff_is_capped() -> None:
    assert mode.backoff_ms(100, POLL_MS) == mode.BACKOFF_CAP_POLLS * POLL_MS


def test_upload_timeout_is_a_failure_naming_the_agent() -> None:
    rec = entered()
    mode.request_upload(rec, AgentReport("b", 6, 1), now=10)
    assert isinstance(mode.decide(rec, {"b"}, now=11, poll_interval_ms=POLL_MS), Wait)
    late = 10 + int(mode.UPLOAD_TIMEOUT_POLLS * POLL_MS) + 1
    decision = mode.decide(rec, {"b"}, now=late, poll_interval_ms=POLL_MS)
    assert isinstance(decision, Fail) and decision.missing_hosts[0]["hostname"] == "b"


def test_retry_resets_counter_without_leaving() -> None:
    rec = entered()
    mode.record_failure(rec, Fail("x", []), now=5, poll_interval_ms=POLL_MS)
    mode.restart_collection(rec, now=6, reset_failures=True)
    assert rec["state"] == ModeState.COLLECTING and rec["failureCount"] == 0 and rec["lastFailure"] is None


def test_forced_exit_waits_for_every_agent_to_converge() -> None:
    rec = entered()
    mode.force_exit(rec, served_version=9, expected={"a", "b"}, now=1)
    assert rec["state"] == ModeState.FORCED_EXIT_CONVERGING
    assert not mode.converged(rec, "a", 9, now=2)
    assert not mode.converged(rec, "b", 8, now=3), "an agent below the forced version has not converged"
    assert mode.converged(rec, "b", 9, now=4)
    assert rec["state"] == ModeState.INACTIVE


def test_exit_keeps_a_bounded_history() -> None:
    rec = entered()
    for i in range(15):
        mode.exit_mode(rec, reason="r", version=i, now=i)
    assert len(rec["history"]) == 10 and rec["history"][-1]["authoritativeVersion"] == 14

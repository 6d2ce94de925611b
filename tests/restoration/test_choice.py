"""Which agent is asked for its config (issue 18 item 4, the exit's latency): the latest claim wins, but when
the agent whose status report completes collection claims that very config (same version, same hash: every
agent of a project usually got the same config), it is asked instead, so that the answer to its report
carries the request and the mode exits without waiting for another agent's next report. Pure decisions,
then through a RestorationService on a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmgr.automation.service import AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.restoration import mode
from opsmgr.restoration.mode import AgentReport, ModeState, RequestUpload
from opsmgr.restoration.service import RestorationService
from opsmgr.store.engine import Store
from tests.configs import replica_set_config

SAME = "5" * 64
OTHER = "0" * 64
LATEST = AgentReport("a", 7, 300, SAME)


@pytest.mark.parametrize(
    ("mine", "reporter", "winner"),
    [
        (AgentReport("b", 7, 100, SAME), "b", "b"),  # the same config, claimed earlier: the reporter
        (AgentReport("b", 7, 100, OTHER), "b", "a"),  # the same version, another config: the latest
        (AgentReport("b", 6, 900, SAME), "b", "a"),  # an older version: the latest
        (AgentReport("b", 7, 100, SAME), None, "a"),  # no reporter (the periodic job): the latest
        (AgentReport("b", 7, 100, SAME), "c", "a"),  # a reporter without a claim: the latest
        (AgentReport("b", 7, 100, None), "b", "a"),  # a reporter without a hash: the latest
    ],
)
def test_the_reporter_is_chosen_only_for_the_latest_config(
    mine: AgentReport, reporter: str | None, winner: str
) -> None:
    chosen = mode.choose([LATEST, mine], reporter)
    assert chosen is not None and chosen.hostname == winner


def test_without_a_hash_on_the_latest_the_reporter_is_not_preferred() -> None:
    unhashed = AgentReport("a", 7, 300, None)
    assert mode.choose([unhashed, AgentReport("b", 7, 100, None)], "b") == unhashed
    assert mode.choose([], "b") is None


def test_the_completing_report_is_asked_when_its_claim_ties() -> None:
    rec = mode.enter(mode.new_record("g"), hostname="a", agent_version=7, restored_version=3, now=0)
    rec = mode.heard(rec, LATEST, now=1)
    assert mode.completed(rec, {"a", "b"}, "a") is None, "b's claim is missing"
    rec = mode.heard(rec, AgentReport("b", 7, 100, SAME), now=2)
    assert mode.completed(rec, {"a", "b"}, "b") == RequestUpload(AgentReport("b", 7, 100, SAME))
    assert mode.completed(rec, {"a", "b"}) == RequestUpload(LATEST)


HOSTS = ["a.choice.sim", "b.choice.sim", "c.choice.sim"]


def test_the_answer_to_the_last_report_asks_for_the_upload(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")
    automation = AutomationService(store, str, str, validate_transition=lambda old, new: None)
    automation.put_config("g1", replica_set_config(HOSTS), check_transition=False)
    service = RestorationService(store, automation, enabled=True, poll_interval_s=1.0)
    held = automation.version("g1") + 2
    assert service.on_poll("g1", HOSTS[0], held) is None
    answers = [
        service.on_status("g1", host, StatusReport(cv=held, cvTimestamp=1000 - i, cvHash=SAME))
        for i, host in enumerate(HOSTS)
    ]
    assert answers[:2] == [{}, {}], "collection is not complete before the last claim"
    assert answers[2] == {"requests": [{"type": "UPLOAD_CONFIG", "configVersion": held}]}
    rec = service.record("g1")
    assert rec.state is ModeState.AWAITING_UPLOAD
    assert rec.chosen_agent is not None and rec.chosen_agent.hostname == HOSTS[2]
    assert rec.chosen_agent.timestamp == 998, "not the latest timestamp: the same config, reported last"

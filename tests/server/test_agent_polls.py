"""The status report's path (``services.AgentPolls.record_status``): Restoration Mode's record is read for a
report only when the poll cache does not already show the mode INACTIVE, and the mode still hears every
report while it is not, the moment its change is announced; the report is kept either way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmgr.automation.service import AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.automation.templates import replica_set_config
from opsmgr.maintenance.rolling import validate_transition
from opsmgr.restoration.mode import ModeState
from opsmgr.restoration.service import RESTORATION_CHANGED, RestorationService
from opsmgr.server.cache import TtlCache
from opsmgr.server.services import AgentPolls, PollCaches
from opsmgr.store.engine import Change, Store

G = "g1"
HOSTS = ["h0", "h1", "h2"]
ASK: dict[str, object] = {"restorationMode": "asked"}


class WatchedMode(RestorationService):
    """The real service with its state set by the test and every report it is handed counted."""

    mode = ModeState.INACTIVE
    heard: list[str]

    def state(self, group_id: str) -> ModeState:
        return self.mode

    def on_status(self, group_id: str, hostname: str, report: StatusReport) -> dict[str, object]:
        self.heard.append(hostname)
        return ASK if self.mode is not ModeState.INACTIVE else {}


@pytest.fixture
def polls(tmp_path: Path) -> Iterator[AgentPolls]:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}", name="application database")
    automation = AutomationService(store, lambda s: s, lambda s: s, validate_transition=validate_transition)
    automation.put_config(G, replica_set_config(HOSTS))
    mode = WatchedMode(store, automation, enabled=True, poll_interval_s=10)
    mode.heard = []
    try:
        yield AgentPolls(automation, mode, PollCaches())
    finally:
        store.close()


def mode_of(polls: AgentPolls) -> WatchedMode:
    assert isinstance(polls.restoration, WatchedMode)
    return polls.restoration


def report(polls: AgentPolls, host: str) -> dict[str, object]:
    return dict(
        polls.record_status(G, host, StatusReport(cv=1, cvTimestamp=5, statusSentence=f"from {host}"))
    )


def kept(polls: AgentPolls) -> set[str]:
    return {str(s["statusSentence"]) for s in polls.automation.agent_statuses(G)}


def test_a_report_after_a_poll_at_goal_skips_the_mode_and_is_kept(polls: AgentPolls) -> None:
    assert polls.config_for(G, HOSTS[0], 1) is None  # the poll caches the goal version: INACTIVE
    assert report(polls, HOSTS[0]) == {}
    assert mode_of(polls).heard == []
    assert kept(polls) == {f"from {HOSTS[0]}"}


def test_without_a_cached_version_the_mode_hears_the_report(polls: AgentPolls) -> None:
    assert report(polls, HOSTS[1]) == {}
    assert mode_of(polls).heard == [HOSTS[1]]
    assert kept(polls) == {f"from {HOSTS[1]}"}


def test_a_mode_entered_is_heard_from_the_next_report(polls: AgentPolls) -> None:
    mode = mode_of(polls)
    assert polls.config_for(G, HOSTS[0], 1) is None
    mode.mode = ModeState.COLLECTING
    # The store announces the mode's change at its commit: the cached INACTIVE version is forgotten.
    polls.caches.forget(Change(RESTORATION_CHANGED, G))
    assert report(polls, HOSTS[0]) == ASK
    polls.config_for(G, HOSTS[0], 1)  # a poll while the mode is on caches "not inactive"
    assert report(polls, HOSTS[2]) == ASK
    assert mode.heard == [HOSTS[0], HOSTS[2]]


def test_a_report_of_a_host_not_the_projects_is_heard_by_the_mode_but_not_kept(polls: AgentPolls) -> None:
    mode_of(polls).mode = ModeState.COLLECTING
    assert report(polls, "intruder.example") == ASK
    assert mode_of(polls).heard == ["intruder.example"]
    assert kept(polls) == set()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fresh_hands_out_only_a_fresh_value_and_promises_no_reload() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(1.0, clock=clock)
    assert cache.fresh("g") is None
    cache.get("g", lambda _k: 1)
    assert cache.fresh("g") == 1
    clock.now += 1.5
    assert cache.fresh("g") is None
    # fresh() did not take the reload on itself: the next poll is still told to load.
    assert cache.peek("g") is None
    cache.get("g", lambda _k: 2)
    cache.invalidate("g")
    assert cache.fresh("g") is None

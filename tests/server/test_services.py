"""Where automated restores go (``services.GoalConfigTargets``): the target's processes disabled or enabled
in the goal config by the caller's transaction, so that a restore job and its target's change commit together
or not at all; Restoration Mode's guard refuses before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmgr.automation.service import CONFIG_CHANGED, AutomationService
from opsmgr.automation.templates import replica_set_config
from opsmgr.errors import Conflict
from opsmgr.maintenance.rolling import validate_transition
from opsmgr.server.services import GoalConfigTargets
from opsmgr.store.engine import Change, Store

G = "g1"
NAMES = ["rs0_0", "rs0_1", "rs0_2"]


@pytest.fixture
def automation(tmp_path: Path) -> Iterator[AutomationService]:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}", name="application database")
    service = AutomationService(store, lambda s: s, lambda s: s, validate_transition=validate_transition)
    service.put_config(G, replica_set_config(["h0", "h1", "h2"]))
    try:
        yield service
    finally:
        store.close()


def disabled(automation: AutomationService) -> list[str]:
    return [p["name"] for p in automation.config(G)["processes"] if p.get("disabled")]


def test_the_targets_processes_are_those_of_the_replica_set(automation: AutomationService) -> None:
    targets = GoalConfigTargets(automation, lambda _g: None)
    assert [p["name"] for p in targets.processes(G, "rs0")] == NAMES
    assert targets.processes(G, "other") == []


def test_disabling_commits_with_the_callers_transaction(automation: AutomationService) -> None:
    changes: list[Change] = []
    automation.store.on_change(changes.append)
    targets = GoalConfigTargets(automation, lambda _g: None)
    with automation.store.tx() as t:
        t.insert("jobs", {"_id": "j1"})
        targets.set_disabled(t, G, NAMES[:2], True)
    assert disabled(automation) == NAMES[:2] and automation.version(G) == 2
    assert Change(CONFIG_CHANGED, G) in changes
    with automation.store.tx() as t:
        targets.set_disabled(t, G, NAMES, False)
    assert disabled(automation) == [] and automation.version(G) == 3


def test_a_failure_after_the_change_leaves_neither(automation: AutomationService) -> None:
    targets = GoalConfigTargets(automation, lambda _g: None)
    with pytest.raises(RuntimeError), automation.store.tx() as t:
        t.insert("jobs", {"_id": "j1"})
        targets.set_disabled(t, G, NAMES, True)
        raise RuntimeError("the process died here")
    assert automation.store.get("jobs", "j1") is None
    assert disabled(automation) == [] and automation.version(G) == 1


def test_the_guard_refuses_before_anything_is_written(automation: AutomationService) -> None:
    def guard(group_id: str) -> None:
        raise Conflict(f"{group_id} is in Restoration Mode")

    with pytest.raises(Conflict), automation.store.tx() as t:
        GoalConfigTargets(automation, guard).set_disabled(t, G, NAMES, True)
    assert disabled(automation) == [] and automation.version(G) == 1

"""The unique index build service's DONE write: the entry is added to the goal config as a compare-and-set on
the config's version, so an operator's PUT between the read and the write is never lost."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.automation.service import AutomationService, ConfigVersionConflict
from opsmgr.errors import Conflict
from opsmgr.maintenance.index_service import add_index_config, with_index_config
from opsmgr.maintenance.rolling import validate_transition
from opsmgr.store.engine import Store
from tests.maintenance.helpers import config

G = "g1"
ENTRY = {
    "dbName": "shop",
    "collectionName": "orders",
    "rsName": "rs0",
    "key": [["orderNo", 1]],
    "options": {"unique": True, "name": "orderNo_1"},
}


@pytest.fixture
def automation(tmp_path: Path) -> Iterator[AutomationService]:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}", name="application database")
    service = AutomationService(store, lambda s: s, lambda s: s, validate_transition=validate_transition)
    service.put_config(G, config(3))
    try:
        yield service
    finally:
        store.close()


def _write(automation: AutomationService) -> Any:
    def write(group_id: str, body: dict[str, Any], version: int) -> None:
        automation.put_config(group_id, body, allow_unique_indexes=True, expected_version=version)

    return write


def test_put_config_with_an_expected_version_is_a_compare_and_set(automation: AutomationService) -> None:
    current = automation.config(G)
    with pytest.raises(ConfigVersionConflict, match="at version 1, not 0") as info:
        automation.put_config(G, {**current, "options": {"downloadBase": "/x"}}, expected_version=0)
    assert info.value.http_status == 409 and automation.version(G) == 1
    changed = automation.put_config(G, {**current, "options": {"downloadBase": "/x"}}, expected_version=1)
    assert changed["version"] == 2


def test_an_operator_put_between_the_read_and_the_write_is_kept(automation: AutomationService) -> None:
    reads = 0

    def goal(group_id: str) -> dict[str, Any]:
        nonlocal reads
        reads += 1
        read = automation.config(group_id)
        if reads == 1:
            # The operator changes the config after the build read it and before it writes.
            edited = copy.deepcopy(read)
            edited["processes"][0]["args2_6"]["systemLog"] = {"destination": "file", "path": "/log/x"}
            automation.put_config(group_id, edited)
        return read

    add_index_config(G, ENTRY, goal=goal, write=_write(automation))
    final = automation.config(G)
    assert reads == 2, "the conflict made it read again"
    assert final["processes"][0]["args2_6"]["systemLog"]["path"] == "/log/x", "the operator's PUT survives"
    assert [e["options"]["name"] for e in final["indexConfigs"]] == ["orderNo_1"]
    assert final["version"] == 3


def test_an_entry_already_there_is_not_written_again(automation: AutomationService) -> None:
    add_index_config(G, ENTRY, goal=automation.config, write=_write(automation))
    version = automation.version(G)
    add_index_config(G, ENTRY, goal=automation.config, write=_write(automation))
    assert automation.version(G) == version
    assert with_index_config(automation.config(G), ENTRY) is None


def test_a_config_that_keeps_changing_leaves_the_entry_pending(automation: AutomationService) -> None:
    def always_stale(group_id: str, body: dict[str, Any], version: int) -> None:
        raise ConfigVersionConflict("changed meanwhile")

    with pytest.raises(Conflict, match="kept changing during 3 tries"):
        add_index_config(G, ENTRY, goal=automation.config, write=always_stale, attempts=3)
    assert automation.config(G).get("indexConfigs", []) == []

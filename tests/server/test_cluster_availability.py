"""A cluster's ``availability`` in ``GET /clusters`` follows Ops Manager's words from its members' states."""

from __future__ import annotations

import pytest

from opsmgr.server.backup_api import availability


def member(state: str | None, running: bool = True) -> dict[str, object]:
    return {"replicaStateName": state, "running": running}


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([], "dead"),
        ([member("DOWN", False)] * 3, "dead"),
        ([member("SECONDARY"), member("SECONDARY"), member("DOWN", False)], "unavailable"),
        ([member("PRIMARY"), member("SECONDARY"), member("DOWN", False)], "warning"),
        ([member("PRIMARY"), member("SECONDARY"), member("SECONDARY")], "available"),
    ],
)
def test_availability_from_the_members(members: list[dict[str, object]], expected: str) -> None:
    assert availability(members) == expected

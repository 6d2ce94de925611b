"""The maintenance window a rolling change opens (``mms.maintenance.alertWindowSeconds``): registered with
the change in the config PUT's transaction, extended when a later PUT recomputes the change, ended with the
change; none when the key is 0. Over a real application database, through ``maintenance.registration``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsmgr.maintenance.leases import LEASES
from opsmgr.maintenance.registration import Registrar
from opsmgr.store.engine import Store
from opsmgr.store.maintenance_windows import WINDOWS, iso
from tests.clock import Clock
from tests.maintenance.helpers import config
from tests.maintenance.service_world import G, upgraded

T0 = 1_800_000_000.0


def put(store: Store, registrar: Registrar, old: dict[str, Any], new: dict[str, Any], version: int) -> None:
    with store.tx() as t:
        registrar.register(t, G, old, new, version)


def windows(store: Store) -> list[dict[str, Any]]:
    return store.find(WINDOWS, groupId=G)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'app.db'}")


def test_a_rolling_change_opens_a_window_extended_and_ended_with_it(store: Store) -> None:
    clock = Clock(T0)
    registrar = Registrar(encrypt=str, decrypt=str, alert_window_s=900, clock=clock)
    base = config(3)
    put(store, registrar, base, upgraded(base), 2)
    (doc,) = store.find(LEASES, groupId=G)
    (opened,) = windows(store)
    assert opened["changeId"] == doc["changeId"]
    assert opened["alertTypeNames"] == ["HOST", "REPLICA_SET", "AGENT"]
    assert (opened["startDate"], opened["endDate"]) == (iso(T0), iso(T0 + 900))
    assert doc["changeId"] in opened["description"] and "rs0" in opened["description"]

    clock.now = T0 + 300  # a later PUT recomputes the change: the window lasts from then
    more = upgraded(base)
    more["processes"][1]["args2_6"]["net"]["maxIncomingConnections"] = 100
    put(store, registrar, upgraded(base), more, 3)
    (extended,) = windows(store)
    assert extended["_id"] == opened["_id"] and extended["endDate"] == iso(T0 + 1200)

    clock.now = T0 + 400  # back to the start config: nothing to roll, the change ends and so does its window
    put(store, registrar, more, base, 4)
    (ended,) = windows(store)
    assert ended["endDate"] == iso(T0 + 400) and ended["startDate"] == iso(T0)


def test_no_window_when_the_key_is_zero(store: Store) -> None:
    registrar = Registrar(encrypt=str, decrypt=str, clock=Clock(T0))
    base = config(3)
    put(store, registrar, base, upgraded(base), 2)
    assert store.find(LEASES, groupId=G) and windows(store) == []

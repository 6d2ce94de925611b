"""Maintenance windows on a real SQLite store with a controlled clock: the checks of a window's fields, when
one is open, which alerts it silences (the notification kept SUPPRESSED, never sent), and the window a
rolling change opens, extends and closes (the decision a pure function)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsmgr.alerts import AlertService, DeliveryState
from opsmgr.errors import InvalidInput, NotFound
from opsmgr.store.engine import Store
from opsmgr.store.maintenance_windows import (
    MAX_DESCRIPTION,
    WINDOWS,
    MaintenanceWindows,
    alert_type_of,
    close_for_change,
    extend_for_change,
    iso,
    open_for_change,
    validated,
    window_for_change,
)
from tests.clock import Clock

T0 = 1_800_000_000.0


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Store, MaintenanceWindows, AlertService, Clock]:
    clock = Clock(T0)
    store = Store(f"sqlite:///{tmp_path / 'app.db'}")
    return store, MaintenanceWindows(store, clock=clock), AlertService(store, clock=clock), clock


def body(start: float, end: float, *types: str, **more: Any) -> dict[str, Any]:
    return {"alertTypeNames": list(types or ["BACKUP"]), "startDate": iso(start), "endDate": iso(end), **more}


def test_a_window_has_ops_managers_fields_and_is_listed_until_it_ends(setup: Any) -> None:
    _store, windows, _alerts, clock = setup
    made = windows.create("g1", body(T0 + 60, T0 + 3600, "HOST", "HOST", "AGENT"))
    assert set(made) == {"id", "groupId", "created", "updated", "startDate", "endDate", "alertTypeNames"}
    assert made["alertTypeNames"] == ["HOST", "AGENT"]  # each type once, in the order given
    assert made["startDate"] == iso(T0 + 60) and made["endDate"].endswith("Z")
    assert windows.of_group("g1") == [made] and windows.of_group("g2") == []
    with pytest.raises(NotFound):
        windows.get("g2", made["id"])
    changed = windows.update("g1", made["id"], {"description": "patching", "endDate": iso(T0 + 7200)})
    assert changed["description"] == "patching" and changed["alertTypeNames"] == ["HOST", "AGENT"]
    assert changed["startDate"] == made["startDate"] and changed["endDate"] == iso(T0 + 7200)
    clock.now = T0 + 7200  # ended: as missing, as in Ops Manager
    assert windows.of_group("g1") == []
    with pytest.raises(NotFound):
        windows.get("g1", made["id"])
    with pytest.raises(NotFound):
        windows.delete("g1", made["id"])


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"startDate": iso(T0), "endDate": iso(T0 + 60)}, "alertTypeNames"),
        (body(T0, T0 + 60, "NODE"), "alertTypeNames"),
        ({**body(T0, T0 + 60), "alertTypeNames": []}, "alertTypeNames"),
        ({**body(T0, T0 + 60), "alertTypeNames": "HOST"}, "alertTypeNames"),
        ({**body(T0, T0 + 60), "alertTypeNames": [["HOST"]]}, "alertTypeNames"),
        ({**body(T0, T0 + 60), "alertTypeNames": ["HOST"] * 100}, "alertTypeNames"),
        ({**body(T0, T0 + 60), "startDate": "tomorrow"}, "startDate"),
        ({**body(T0, T0 + 60), "startDate": 1800000000}, "startDate"),
        ({**body(T0, T0 + 60), "endDate": "9" * 5000}, "endDate"),
        (body(T0 + 60, T0 + 60), "endDate"),
        (body(T0 + 60, T0 + 30), "endDate"),
        (body(T0 - 120, T0 - 60), "endDate"),
        (body(T0, T0 + 60, description="x" * (MAX_DESCRIPTION + 1)), "description"),
        (body(T0, T0 + 60, description=7), "description"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(sent: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validated(sent, None, T0)
    assert refused.value.parameters["field"] == field


def test_a_change_needs_one_field_and_keeps_the_others(setup: Any) -> None:
    _store, windows, _alerts, _clock = setup
    made = windows.create("g1", body(T0, T0 + 600, description="first"))
    with pytest.raises(InvalidInput):
        windows.update("g1", made["id"], {})
    with pytest.raises(InvalidInput):  # the new start is after the end kept
        windows.update("g1", made["id"], {"startDate": iso(T0 + 900)})
    cleared = windows.update("g1", made["id"], {"description": None})
    assert "description" not in cleared and windows.get("g1", made["id"]) == cleared


def test_an_alert_of_a_silenced_type_opens_but_is_not_sent(setup: Any) -> None:
    _store, windows, alerts, clock = setup
    windows.create("g1", body(T0 + 100, T0 + 200, "BACKUP"))
    before = alerts.raise_alert("g1", "BACKUP_SNAPSHOT_MISSED", "b:1", "missed")  # before it opens
    clock.now = T0 + 100
    inside = alerts.raise_alert("g1", "BACKUP_SNAPSHOT_MISSED", "b:2", "missed")
    other_type = alerts.raise_alert("g1", "BACKUP_AGENT_DOWN", "a:1", "agent down")  # AGENT
    other_group = alerts.raise_alert("g2", "OPLOG_BEHIND", "o:1", "behind")
    alerts.resolve("g1", "b:1")  # its closing falls in the window too
    clock.now = T0 + 200  # ended
    after = alerts.raise_alert("g1", "RESYNC_REQUIRED", "r:1", "resync")
    assert alerts.is_open("g1", "b:2")  # the alert itself opens as usual
    states = {(n["alertId"], n["payload"]["notification"]): n["state"] for n in alerts.notifications()}
    suppressed = DeliveryState.SUPPRESSED.value
    assert states == {
        (before["id"], "OPEN"): "PENDING",
        (inside["id"], "OPEN"): suppressed,
        (other_type["id"], "OPEN"): "PENDING",
        (other_group["id"], "OPEN"): "PENDING",
        (before["id"], "CLOSED"): suppressed,
        (after["id"], "OPEN"): "PENDING",
    }
    sent: list[str] = []
    assert alerts.deliver(lambda d: sent.append(d.payload["id"]), "http://127.0.0.1:9/hook") == 4
    assert inside["id"] not in sent


@pytest.mark.parametrize(
    ("event", "type_name", "kind"),
    [
        ("BACKUP_SNAPSHOT_MISSED", None, "BACKUP"),
        ("OPLOG_BEHIND", None, "BACKUP"),
        ("RESYNC_REQUIRED", None, "BACKUP"),
        ("BACKUP_AGENT_DOWN", None, "AGENT"),
        ("RESTORATION_MODE_AGENT_REFUSED", None, "AGENT"),
        ("HOST_DOWN", None, "HOST"),
        ("BACKUP_SECONDARY_UNREACHABLE", "BACKUP", "BACKUP"),
        ("SOMETHING", "REPLICA_SET", "REPLICA_SET"),
        ("MAINTENANCE_MEMBER_FAILED", None, None),
        ("T", None, None),
        ("T", "NOT_A_TYPE", None),
    ],
)
def test_the_alert_type_of_an_alert(event: str, type_name: str | None, kind: str | None) -> None:
    assert alert_type_of(event, type_name) == kind


def test_the_window_of_a_rolling_change_is_decided_without_a_store() -> None:
    assert window_for_change("rs0", "c1", 7, ["version"], T0, 0) is None
    spec = window_for_change("rs0", "c1", 7, ["mongod version", "args"], T0, 900)
    assert spec is not None
    assert (spec.start, spec.end, spec.alert_types) == (T0, T0 + 900, ("HOST", "REPLICA_SET", "AGENT"))
    assert spec.description is not None
    assert "c1" in spec.description and "rs0" in spec.description and "version 7" in spec.description
    long = window_for_change("rs0", "c1", 7, ["x" * 1000], T0, 900)
    assert long is not None and long.description is not None and len(long.description) == MAX_DESCRIPTION


def test_a_rolling_changes_window_is_extended_then_closed_with_it(setup: Any) -> None:
    store, windows, alerts, clock = setup
    spec = window_for_change("rs0", "c1", 3, ["version"], T0, 600)
    assert spec is not None
    with store.tx() as t:
        opened = open_for_change(t, "g1", "c1", spec, T0)
    assert windows.get("g1", opened["_id"])["description"] == spec.description
    clock.now = T0 + 60
    alerts.raise_alert("g1", "HOST_DOWN", "h:1", "down")
    with store.tx() as t:
        extend_for_change(t, "g1", "c1", T0 + 1200, clock.now)
        extend_for_change(t, "g1", "c1", T0 + 300, clock.now)  # never shortened
    assert windows.get("g1", opened["_id"])["endDate"] == iso(T0 + 1200)
    clock.now = T0 + 120
    with store.tx() as t:
        close_for_change(t, "g1", "c1", clock.now)
        extend_for_change(t, "g1", "c1", T0 + 2000, clock.now)  # nor reopened
    assert windows.of_group("g1") == []
    assert store.get(WINDOWS, opened["_id"])["endDate"] == iso(T0 + 120)
    alerts.raise_alert("g1", "HOST_DOWN", "h:2", "down")
    assert [n["state"] for n in sorted(alerts.notifications(), key=lambda n: n["nextAttemptAt"])] == [
        "SUPPRESSED",
        "PENDING",
    ]

"""Maintenance windows through the real server: ``/groups/{id}/maintenanceWindows`` in Ops Manager's shapes
and status codes (201, 200, 204), its roles (Project Owner writes, any project role reads, another
project's key is refused), bad and oversized bodies refused with a 400 naming the field, and an alert whose
webhook notification a window silences while one outside it is delivered; and the window a rolling change
opens (``mms.maintenance.alertWindowSeconds``) and ends with it. Alerts are raised by writing to the server's
application database, as its periodic loops do."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.alerts import AlertService, DeliveryState
from opsmgr.store.engine import Store
from tests.configs import replica_set_config
from tests.procs import ServerProcess, started_server, wait_for
from tests.refusals import malformed_bodies_are_4xx, refused_naming
from tests.server.test_alerts_api import Receiver

BASE = "/groups/{}/maintenanceWindows"


def _iso(seconds_from_now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


def window(*types: str, start: float = -60, end: float = 3600, **more: Any) -> dict[str, Any]:
    return {"alertTypeNames": list(types), "startDate": _iso(start), "endDate": _iso(end), **more}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=0)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[ServerProcess]:
    conf = {"mms.alerts.webhook.url": receiver.url, "mms.maintenance.alertWindowSeconds": "3600"}
    with started_server(tmp_path_factory.mktemp("windows") / "data", conf) as srv:
        yield srv


@pytest.fixture(scope="module")
def owner_key(hooked: ServerProcess) -> dict[str, Any]:
    return hooked.create_key("ORG_OWNER")


def test_windows_are_created_read_changed_and_deleted_in_ops_managers_shape(
    hooked: ServerProcess, owner_key: dict[str, Any]
) -> None:
    with hooked.client(owner_key) as api:
        group = api.post("/groups", json={"name": "mw-crud"}).json()["id"]
        path = BASE.format(group)
        assert api.get(path).json() == {
            "results": [],
            "totalCount": 0,
            "links": api.get(path).json()["links"],
        }
        r = api.post(path, json=window("HOST", "REPLICA_SET", start=600, end=4200))
        assert r.status_code == 201, r.text
        made = r.json()
        assert set(made) == {"id", "groupId", "created", "updated", "startDate", "endDate", "alertTypeNames"}
        assert made["groupId"] == group and made["alertTypeNames"] == ["HOST", "REPLICA_SET"]
        assert all(isinstance(made[f], str) and made[f].endswith("Z") for f in ("created", "startDate"))
        listed = api.get(path).json()
        assert listed["totalCount"] == 1 and listed["results"] == [made]
        assert listed["links"][0]["rel"] == "self"
        assert api.get(f"{path}/{made['id']}").json() == made

        r = api.patch(
            f"{path}/{made['id']}", json={"description": "kernel patching", "alertTypeNames": ["AGENT"]}
        )
        assert r.status_code == 200, r.text
        changed = r.json()
        assert changed["description"] == "kernel patching" and changed["alertTypeNames"] == ["AGENT"]
        assert (changed["startDate"], changed["endDate"]) == (made["startDate"], made["endDate"])
        assert api.get(f"{path}/{made['id']}").json() == changed

        gone = api.delete(f"{path}/{made['id']}")
        assert gone.status_code == 204 and gone.content == b""
        missing = api.get(f"{path}/{made['id']}")
        assert missing.status_code == 404 and missing.json()["errorCode"] == "MAINTENANCE_WINDOW_NOT_FOUND"
        assert api.delete(f"{path}/{made['id']}").status_code == 404
        assert api.get(path).json()["totalCount"] == 0


@pytest.fixture(scope="module")
def quiet_group(hooked: ServerProcess, owner_key: dict[str, Any]) -> str:
    """A project that refused bodies must leave without a window."""
    with hooked.client(owner_key) as api:
        return str(api.post("/groups", json={"name": "mw-refusals"}).json()["id"])


@pytest.mark.parametrize(
    ("sent", "field", "code"),
    [
        (window("NODE"), "alertTypeNames", "INVALID_ATTRIBUTE"),
        (window(), "alertTypeNames", "INVALID_ATTRIBUTE"),
        (
            {"startDate": _iso(0), "endDate": _iso(60)},
            "alertTypeNames",
            "MISSING_MAINTENANCE_WINDOW_ALERT_TYPE_NAME",
        ),
        (
            {"alertTypeNames": ["HOST"], "endDate": _iso(60)},
            "startDate",
            "MISSING_MAINTENANCE_WINDOW_START_DATE",
        ),
        (window("HOST", start=60, end=30), "endDate", "MAINTENANCE_WINDOW_START_DATE_AFTER_END_DATE"),
        (window("HOST", start=-120, end=-60), "endDate", "INVALID_ATTRIBUTE"),
        ({**window("HOST"), "startDate": "next tuesday"}, "startDate", "INVALID_ATTRIBUTE"),
        ({**window("HOST"), "endDate": "2" * 100_000}, "endDate", "INVALID_ATTRIBUTE"),
        ({**window("HOST"), "alertTypeNames": ["HOST"] * 10_000}, "alertTypeNames", "INVALID_ATTRIBUTE"),
        (window("HOST", description="d" * 10_000), "description", "INVALID_ATTRIBUTE"),
        ({**window("HOST"), "secretField": 1}, "secretField", "INVALID_ATTRIBUTE"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(
    hooked: ServerProcess,
    owner_key: dict[str, Any],
    quiet_group: str,
    sent: dict[str, Any],
    field: str,
    code: str,
) -> None:
    """Each refusal carries Ops Manager's error code for it where the reference has one."""
    with hooked.client(owner_key) as api:
        refused_naming(api, BASE.format(quiet_group), sent, field, code)


def test_forged_bodies_and_ids_are_4xx(hooked: ServerProcess, owner_key: dict[str, Any]) -> None:
    with hooked.client(owner_key) as api:
        group = api.post("/groups", json={"name": "mw-forged"}).json()["id"]
        path = BASE.format(group)
        malformed_bodies_are_4xx(api, path)
        made = api.post(path, json=window("BACKUP")).json()
        assert api.patch(f"{path}/{made['id']}", json={}).status_code == 400
        assert api.patch(f"{path}/{made['id']}", json={"id": "forged"}).status_code == 400
        assert api.patch(f"{path}/{'f' * 5000}", json={"description": "x"}).status_code == 404
        assert api.get(f"{path}/{made['id']}").json() == made


def test_owner_writes_reader_reads_stranger_is_refused(
    hooked: ServerProcess, owner_key: dict[str, Any]
) -> None:
    with hooked.client(owner_key) as api:
        group = api.post("/groups", json={"name": "mw-roles"}).json()["id"]
        other = api.post("/groups", json={"name": "mw-roles-other"}).json()["id"]
        made = api.post(BASE.format(group), json=window("HOST")).json()
        theirs = api.post(BASE.format(other), json=window("HOST")).json()
        # A window is the project's: another project's path does not reach it.
        assert api.get(f"{BASE.format(other)}/{made['id']}").status_code == 404
    reader = hooked.create_key("GROUP_READ_ONLY", group_id=group)
    with hooked.client(reader) as api:
        path = BASE.format(group)
        assert api.get(path).json()["results"] == [made]
        assert api.get(f"{path}/{made['id']}").status_code == 200
        for r in (
            api.post(path, json=window("AGENT")),
            api.patch(f"{path}/{made['id']}", json={"description": "mine now"}),
            api.delete(f"{path}/{made['id']}"),
        ):
            assert r.status_code == 403 and "GROUP_OWNER" in r.json()["detail"]
        stranger = api.get(BASE.format(other))
        assert stranger.status_code == 403 and stranger.json()["errorCode"]
        assert api.get(f"{BASE.format(other)}/{theirs['id']}").status_code == 403
        assert api.get(f"{path}/{made['id']}").json() == made


def raiser(srv: ServerProcess) -> AlertService:
    return AlertService(Store(f"sqlite:///{Path(srv.data_dir) / 'appdb.sqlite'}"))


def test_an_open_window_silences_its_alert_types_only(
    hooked: ServerProcess, owner_key: dict[str, Any], receiver: Receiver
) -> None:
    alerts = raiser(hooked)
    with hooked.client(owner_key) as api:
        group = api.post("/groups", json={"name": "mw-silence"}).json()["id"]
        made = api.post(BASE.format(group), json=window("BACKUP", start=-5)).json()
        muted = alerts.raise_alert(group, "BACKUP_SNAPSHOT_MISSED", "b:missed", "no snapshot")
        heard = alerts.raise_alert(group, "BACKUP_AGENT_DOWN", "b:agent", "agent down")  # AGENT: not silenced
        wait_for(lambda: heard["id"] in {p["id"] for p in receiver.received}, 30, what="the AGENT alert")
        # The silenced alert is open for everyone to see; its notification is kept, never sent.
        assert api.get(f"/groups/{group}/alerts/{muted['id']}").json()["status"] == "OPEN"
        kept = [n for n in alerts.notifications() if n["alertId"] == muted["id"]]
        assert [(n["state"], n["suppressedBy"]) for n in kept] == [
            (DeliveryState.SUPPRESSED.value, made["id"])
        ]

        assert api.delete(f"{BASE.format(group)}/{made['id']}").status_code == 204
        after = alerts.raise_alert(group, "BACKUP_SNAPSHOT_FAILED", "b:failed", "snapshot failed")
        wait_for(lambda: after["id"] in {p["id"] for p in receiver.received}, 30, what="the alert after it")
        assert muted["id"] not in {p["id"] for p in receiver.received}


def test_a_rolling_change_opens_a_window_that_ends_with_it(
    hooked: ServerProcess, owner_key: dict[str, Any], receiver: Receiver
) -> None:
    alerts = raiser(hooked)
    base = replica_set_config(["h0.example.net", "h1.example.net", "h2.example.net"])
    with hooked.client(owner_key) as api:
        group = api.post("/groups", json={"name": "mw-rolling"}).json()["id"]
        config_path = f"/groups/{group}/automationConfig"
        assert api.put(config_path, json=base).status_code == 200
        assert api.get(BASE.format(group)).json()["totalCount"] == 0  # a first config rolls nothing
        upgraded = copy.deepcopy(base)
        for process in upgraded["processes"]:
            process["version"] = "7.0.6"
        assert api.put(config_path, json=upgraded).status_code == 200, "a version change rolls"
        (change,) = api.get(f"/groups/{group}/maintenance").json()["results"]
        (opened,) = api.get(BASE.format(group)).json()["results"]
        assert opened["alertTypeNames"] == ["HOST", "REPLICA_SET", "AGENT"]
        assert change["id"] in opened["description"] and "rs0" in opened["description"]
        muted = alerts.raise_alert(group, "HOST_DOWN", "h0:down", "h0 restarting")
        (note,) = [n for n in alerts.notifications() if n["alertId"] == muted["id"]]
        assert note["state"] == DeliveryState.SUPPRESSED.value and note["suppressedBy"] == opened["id"]

        # Back to the first config: nothing to roll, the change ends and its window with it.
        assert api.put(config_path, json=base).status_code == 200
        assert api.get(BASE.format(group)).json()["totalCount"] == 0
        assert api.get(f"{BASE.format(group)}/{opened['id']}").status_code == 404
        heard = alerts.raise_alert(group, "HOST_DOWN", "h1:down", "h1 down")
        wait_for(lambda: heard["id"] in {p["id"] for p in receiver.received}, 30, what="the alert after it")
        assert muted["id"] not in {p["id"] for p in receiver.received}

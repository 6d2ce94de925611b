"""Acknowledging an alert through the real server's public API, in Ops Manager's shape: ``PATCH
/groups/{id}/alerts/{alertId}`` (Project Owner) and ``PATCH /globalAlerts/{alertId}`` (ORG_OWNER), the
fields ``acknowledgedUntil``, ``acknowledgementComment`` and ``acknowledgingUsername``, and the refusals (a
past or malformed date, a closed alert, another project's alert, a read-only key) that change nothing. The
alert is raised by writing to the server's application database, as its periodic loops do."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from opsmgr.alerts import AlertService
from opsmgr.backup.secondaries import GLOBAL_GROUP_ID
from opsmgr.store.engine import Store
from tests.procs import ServerProcess


def raiser(srv: ServerProcess) -> AlertService:
    return AlertService(Store(f"sqlite:///{Path(srv.data_dir) / 'appdb.sqlite'}"))


def _iso(seconds_from_now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


def test_a_project_owner_acknowledges_an_open_alert(server: ServerProcess, owner: dict[str, Any]) -> None:
    with server.client(owner) as api:
        group = api.post("/groups", json={"name": "acking"}).json()["id"]
        alert = raiser(server).raise_alert(group, "BACKUP_SNAPSHOT_MISSED", "s1:missed", "no snapshot in 7 h")
        until = _iso(3600)
        r = api.patch(
            f"/groups/{group}/alerts/{alert['id']}",
            json={"acknowledgedUntil": until, "acknowledgementComment": "looking into it"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["acknowledgedUntil"] == until
        assert body["acknowledgementComment"] == "looking into it"
        assert body["acknowledgingUsername"] == owner["publicKey"]
        assert body["status"] == "OPEN" and body["id"] == alert["id"]
        again = api.get(f"/groups/{group}/alerts/{alert['id']}").json()
        assert again["acknowledgedUntil"] == until
        # An offset is taken as written, and stored in UTC.
        r = api.patch(
            f"/groups/{group}/alerts/{alert['id']}", json={"acknowledgedUntil": "2999-01-01T02:00:00+02:00"}
        )
        assert r.status_code == 200 and r.json()["acknowledgedUntil"] == "2999-01-01T00:00:00Z"
        assert "acknowledgementComment" not in r.json()


def test_bad_dates_closed_alerts_and_strangers_change_nothing(
    server: ServerProcess, owner: dict[str, Any]
) -> None:
    alerts = raiser(server)
    with server.client(owner) as api:
        group = api.post("/groups", json={"name": "ack-refusals"}).json()["id"]
        other = api.post("/groups", json={"name": "ack-other"}).json()["id"]
        alert = alerts.raise_alert(group, "T", "k", "m")
        path = f"/groups/{group}/alerts/{alert['id']}"
        for body in (
            {"acknowledgedUntil": _iso(-60)},
            {"acknowledgedUntil": "tomorrow"},
            {"acknowledgedUntil": 12},
            {},
            {"acknowledgedUntil": _iso(60), "acknowledgementComment": "x" * 201},
        ):
            r = api.patch(path, json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["errorCode"] == "INVALID_ATTRIBUTE"
        assert "not in the future" in api.patch(path, json={"acknowledgedUntil": _iso(-60)}).json()["detail"]
        assert (
            api.patch(
                f"/groups/{other}/alerts/{alert['id']}", json={"acknowledgedUntil": _iso(60)}
            ).status_code
            == 404
        )
        assert (
            api.patch(f"/groups/{group}/alerts/nope", json={"acknowledgedUntil": _iso(60)}).status_code == 404
        )
        assert "acknowledgedUntil" not in api.get(path).json()

        alerts.resolve(group, "k")
        closed = api.patch(path, json={"acknowledgedUntil": _iso(60)})
        assert closed.status_code == 409 and "closed" in closed.json()["detail"]

        alive = alerts.raise_alert(group, "T", "k2", "m2")
    reader = server.create_key("GROUP_READ_ONLY", group_id=group)
    with server.client(reader) as api:
        r = api.patch(f"/groups/{group}/alerts/{alive['id']}", json={"acknowledgedUntil": _iso(60)})
        assert r.status_code == 403
        assert (
            r.json()["detail"] == f"API key {reader['publicKey']} lacks role GROUP_OWNER on project {group}"
        )
        assert "acknowledgedUntil" not in api.get(f"/groups/{group}/alerts/{alive['id']}").json()


def test_global_alerts_are_acknowledged_by_an_org_owner_only(
    server: ServerProcess, owner: dict[str, Any]
) -> None:
    alert = raiser(server).raise_alert(GLOBAL_GROUP_ID, "BACKUP_SECONDARY_UNREACHABLE", "g:ack", "gone")
    org_id = server.client(owner).get("/orgs").json()["results"][0]["id"]
    reader = server.create_key("ORG_READ_ONLY", org_id=org_id)
    with server.client(reader) as api:
        assert api.get(f"/globalAlerts/{alert['id']}").status_code == 200
        r = api.patch(f"/globalAlerts/{alert['id']}", json={"acknowledgedUntil": _iso(60)})
        assert r.status_code == 403 and "lacks ORG_OWNER" in r.json()["detail"]
    with server.client(owner) as api:
        r = api.patch(f"/globalAlerts/{alert['id']}", json={"acknowledgedUntil": _iso(600)})
        assert r.status_code == 200, r.text
        assert "groupId" not in r.json() and r.json()["acknowledgingUsername"] == owner["publicKey"]

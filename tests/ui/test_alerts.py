"""The alerts pages against a real server: a project's alerts and the installation's, open and closed, and
Acknowledge through the same service call as the API's PATCH, with the API's roles and messages. Alerts are
raised by writing to the server's application database, as its periodic loops do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.alerts import AlertService
from opsmgr.backup.secondaries import GLOBAL_GROUP_ID
from opsmgr.store.engine import Store
from tests.procs import ServerProcess
from tests.ui.uisupport import PASSWORD, UiSession, error_detail, login, screenshot


def _future(seconds: float = 3600) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + seconds))


@pytest.fixture(scope="module")
def raiser(server: ServerProcess) -> Iterator[AlertService]:
    store = Store(f"sqlite:///{Path(server.data_dir) / 'appdb.sqlite'}")
    yield AlertService(store)
    store.close()


@pytest.fixture(scope="module")
def group(server: ServerProcess, owner: dict[str, Any]) -> str:
    with server.client(owner) as api:
        return str(api.post("/groups", json={"name": "alerting"}).json()["id"])


@pytest.fixture(scope="module")
def reader(server: ServerProcess, group: str) -> Iterator[UiSession]:
    server.create_user("alert-reader", PASSWORD, "GROUP_READ_ONLY", group_id=group)
    session = UiSession(server.url, "alert-reader")
    yield session
    session.close()


def test_open_and_closed_alerts_are_listed_and_filtered(
    ui_owner: UiSession, raiser: AlertService, group: str
) -> None:
    open_ = raiser.raise_alert(
        group, "BACKUP_SNAPSHOT_MISSED", "f:open", "no snapshot <b>in</b> 7 h", source="s1"
    )
    closed = raiser.raise_alert(group, "MAINTENANCE_MEMBER_FAILED", "f:closed", "member did not return")
    raiser.resolve(group, "f:closed")
    page = ui_owner.get(f"/ui/projects/{group}/alerts")
    assert page.status_code == 200
    assert open_["id"] in page.text and closed["id"] in page.text
    assert "no snapshot &lt;b&gt;in&lt;/b&gt; 7 h" in page.text  # escaped, never markup
    only_open = ui_owner.get(f"/ui/projects/{group}/alerts?status=OPEN").text
    assert open_["id"] in only_open and closed["id"] not in only_open
    only_closed = ui_owner.get(f"/ui/projects/{group}/alerts?status=CLOSED").text
    assert closed["id"] in only_closed and open_["id"] not in only_closed
    assert ui_owner.get(f"/ui/projects/{group}/alerts?status=SOMETIMES").status_code == 400


def test_acknowledge_refusals_change_nothing(
    server: ServerProcess,
    owner: dict[str, Any],
    ui_owner: UiSession,
    reader: UiSession,
    raiser: AlertService,
    group: str,
) -> None:
    alert = raiser.raise_alert(group, "T", "r:1", "refusals")
    path = f"/ui/projects/{group}/alerts/{alert['id']}/acknowledge"
    form = {"acknowledged_until": _future()}
    seen = reader.get(f"/ui/projects/{group}/alerts")
    assert seen.status_code == 200 and "Acknowledge</button>" not in seen.text
    r = reader.post(path, form)
    assert r.status_code == 403
    assert error_detail(r.text) == f"User alert-reader lacks role GROUP_OWNER on project {group}"
    r = ui_owner.post(path, form, csrf=False)
    assert r.status_code == 403 and "CSRF" in error_detail(r.text)
    r = ui_owner.post(path, {"acknowledged_until": "2001-01-01T00:00"})
    assert r.status_code == 400 and "not in the future" in error_detail(r.text)
    r = ui_owner.post(path, {"acknowledged_until": "next week"})
    assert r.status_code == 400
    r = ui_owner.post(path, {**form, "comment": "x" * 5000})
    assert r.status_code == 400
    for forged in (
        f"/ui/projects/{group}/alerts/nope/acknowledge",
        f"/ui/projects/ffffffffffffffffffffffff/alerts/{alert['id']}/acknowledge",
        f"/ui/projects/not-an-id/alerts/{alert['id']}/acknowledge",
        f"/ui/alerts/{alert['id']}/acknowledge",  # a project's alert is no global alert
    ):
        r = ui_owner.post(forged, form)
        assert 400 <= r.status_code < 500, (forged, r.status_code)
    with server.client(owner) as api:
        assert "acknowledgedUntil" not in api.get(f"/groups/{group}/alerts/{alert['id']}").json()


def test_global_alerts_keep_the_api_roles(
    server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession, reader: UiSession, raiser: AlertService
) -> None:
    alert = raiser.raise_alert(GLOBAL_GROUP_ID, "BACKUP_SECONDARY_UNREACHABLE", "g:ui", "secondary gone")
    r = reader.get("/ui/alerts")
    assert r.status_code == 403
    assert error_detail(r.text) == "User alert-reader lacks ORG_OWNER or ORG_READ_ONLY for global alerts"
    org_id = server.client(owner).get("/orgs").json()["results"][0]["id"]
    server.create_user("org-reader", PASSWORD, "ORG_READ_ONLY", org_id=org_id)
    org_reader = UiSession(server.url, "org-reader")
    try:
        page = org_reader.get("/ui/alerts")
        assert (
            page.status_code == 200 and alert["id"] in page.text and "Acknowledge</button>" not in page.text
        )
        r = org_reader.post(f"/ui/alerts/{alert['id']}/acknowledge", {"acknowledged_until": _future()})
        assert r.status_code == 403 and "lacks ORG_OWNER" in error_detail(r.text)
    finally:
        org_reader.close()
    done = ui_owner.post(
        f"/ui/alerts/{alert['id']}/acknowledge", {"acknowledged_until": _future(), "comment": "ok"}
    )
    assert done.status_code == 303
    with server.client(owner) as api:
        acked = api.get(f"/globalAlerts/{alert['id']}").json()
    assert acked["acknowledgingUsername"] == "owner" and acked["acknowledgementComment"] == "ok"


@pytest.mark.e2e
def test_acknowledge_an_alert_in_a_browser(
    server: ServerProcess,
    owner: dict[str, Any],
    ui_owner: UiSession,
    raiser: AlertService,
    group: str,
    page: Any,
) -> None:
    from playwright.sync_api import expect

    alert = raiser.raise_alert(
        group, "BACKUP_SNAPSHOT_MISSED", "b:1", "no snapshot of rs0 in 7 h", source="rs0"
    )
    login(page, server.url, "owner")
    page.get_by_role("link", name="alerting").first.click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Alerts").click()
    row = page.locator(f"#alert-{alert['id']}")
    expect(row.locator(".alert-status")).to_have_text("OPEN")
    row.get_by_label("Acknowledge until (UTC)").fill(_future(7200))
    row.get_by_label("Comment").fill("on it")
    row.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(f"#alert-{alert['id']} .acknowledged")).to_contain_text("by owner")
    screenshot(page, "alerts")
    with server.client(owner) as api:
        acked = api.get(f"/groups/{group}/alerts/{alert['id']}").json()
    assert acked["acknowledgingUsername"] == "owner" and acked["acknowledgementComment"] == "on it"
    assert acked["acknowledgedUntil"].startswith(_future(7200)[:13])
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "alerts-narrow")
    page.get_by_role("link", name="Closed").click()
    expect(page.locator(f"#alert-{alert['id']}")).to_have_count(0)

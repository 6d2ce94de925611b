"""The Admin page against a real server: the backing stores (engine, URI without secrets, size, health as
``/health/ready`` checks it), the periodic jobs, the version, the secondary it reports to and the Restoration
Mode setting; only for users holding ORG_OWNER on some organization."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr import __version__
from opsmgr.backup.secondaries import record_secondary
from opsmgr.store.engine import Store
from opsmgr.ui.pages_admin import redacted_url
from tests.procs import ServerProcess
from tests.ui.uisupport import PASSWORD, UiSession, error_detail, login, screenshot


def test_a_store_uri_never_shows_a_secret() -> None:
    shown = redacted_url("postgresql://opsmgr:hunter2@db.example:5432/appdb?sslmode=require&password=hunter3")
    assert "hunter" not in shown
    assert "db.example:5432/appdb" in shown and "sslmode=require" in shown
    assert redacted_url("sqlite:////var/lib/opsmgr/appdb.sqlite") == "sqlite:////var/lib/opsmgr/appdb.sqlite"
    assert redacted_url("::not a uri::") == "(unparsable URI)"


def test_the_admin_page_shows_stores_jobs_version_secondary_and_settings(
    server: ServerProcess, ui_owner: UiSession
) -> None:
    store = Store(f"sqlite:///{Path(server.data_dir) / 'appdb.sqlite'}")
    try:
        record_secondary(store, "http://127.0.0.1:9/", "a" * 24, "b" * 24, int(time.time() * 1000))
    finally:
        store.close()
    page = ui_owner.get("/ui/admin")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    for name in ("appdb", "snapshotStore", "oplogStore"):
        assert f'id="store-{name}"' in html
    assert "takes writes" in html and "refuses writes" not in html
    assert f"opsmgr {__version__}" in html
    for job in ("restoration", "backup", "secondary-watch", "maintenance"):
        assert f'id="job-{job}"' in html
    assert "http://127.0.0.1:9" in html
    assert "mms.restorationMode.enabled" in html and "enabled" in html
    # Never a secret: neither the server's gen.key (raw or base64) nor its digest secret's material.
    key = (Path(server.data_dir) / "gen.key").read_bytes()
    assert base64.b64encode(key).decode() not in html and key.hex() not in html


def test_the_admin_page_is_for_organization_owners(server: ServerProcess, owner: dict[str, Any]) -> None:
    with server.client(owner) as api:
        group = api.post("/groups", json={"name": "admin-ro"}).json()["id"]
    server.create_user("project-reader", PASSWORD, "GROUP_READ_ONLY", group_id=group)
    reader = UiSession(server.url, "project-reader")
    try:
        r = reader.get("/ui/admin")
        assert r.status_code == 403
        assert error_detail(r.text) == (
            "User project-reader holds ORG_OWNER on no organization: "
            "the Admin page is for Organization Owners"
        )
        assert "appdb" not in r.text
    finally:
        reader.close()
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/ui/admin").status_code == 303


@pytest.mark.e2e
def test_admin_in_a_browser(server: ServerProcess, ui_owner: UiSession, page: Any) -> None:
    from playwright.sync_api import expect

    login(page, server.url, "owner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Backing databases")).to_be_visible()
    expect(page.locator("#store-appdb")).to_contain_text("takes writes")
    expect(page.locator("#job-backup")).to_be_visible()
    screenshot(page, "admin")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator("#jobs")).to_be_visible()
    screenshot(page, "admin-narrow")

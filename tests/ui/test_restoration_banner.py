"""The Restoration Mode banner during a staged restore of the application database (the seed's DR scenario:
a secondary backs up the primary's stores, the primary's application database is restored to T0 with
``opsmgr backup restore-stores --app-only``, its agents hold a newer config): the banner appears on the
project's pages and installation-wide, shows the trigger and the agents heard and missing, offers Retry and
Force exit to Project Owners only, and disappears live when reconciliation completes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import wait_for
from tests.secondary_support import SecondaryPair, now_ms, primary_with_secondary
from tests.ui.uisupport import PASSWORD, UiSession, error_detail, login, screenshot

pytestmark = pytest.mark.e2e

HOSTS = [f"banner{i}.e2e.sim" for i in range(3)]
INDEX = {
    "dbName": "shop",
    "collectionName": "orders",
    "key": [["customer", 1]],
    "rsName": "rs0",
    "options": {"name": "customer_1"},
}


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecondaryPair, Deployment]]:
    """A project in Restoration Mode: its primary's application database restored to T0 (version 1) while
    its agents hold version 2, and the agent of the last host stopped so that reconciliation waits for it."""
    root: Path = tmp_path_factory.mktemp("banner")
    with primary_with_secondary(root) as pair:
        d = Deployment(pair.primary, pair.primary_key, root, "banner")
        try:
            # Users made before T0: the restore keeps them.
            pair.primary.create_user("owner", PASSWORD, "ORG_OWNER")
            pair.primary.create_user("reader", PASSWORD, "GROUP_READ_ONLY", group_id=d.group_id)
            for host in HOSTS:
                d.agent(host)
            d.wait_goal(d.put(replica_set_config(HOSTS)), 3)
            pair.wait_caught_up()
            t0 = now_ms()
            config = d.api.get(f"/groups/{d.group_id}/automationConfig").json()
            config["indexConfigs"] = [INDEX]
            d.wait_goal(d.put(config), 3)
            d.agents[HOSTS[2]].stop()
            pair.stop_primary()
            pair.restore_to(t0, app_only=True)
            pair.primary.start()
            wait_for(
                lambda: d.api.get(f"/groups/{d.group_id}/restorationMode").json()["inRestorationMode"],
                60,
                what="Restoration Mode",
            )
            yield pair, d
        finally:
            d.close()


def test_banner_buttons_follow_the_role_and_the_api_rules(
    restored: tuple[SecondaryPair, Deployment],
) -> None:
    pair, d = restored
    url = pair.primary.url
    reader = UiSession(url, "reader")
    page = reader.get(f"/ui/projects/{d.group_id}/restoration/banner")
    assert page.status_code == 200 and "Restoration Mode" in page.text
    assert "Force exit" not in page.text and "Retry" not in page.text
    forged = reader.post(f"/ui/projects/{d.group_id}/restoration/retry")
    assert forged.status_code == 403
    assert error_detail(forged.text) == f"User reader lacks role GROUP_OWNER on project {d.group_id}"
    forged = reader.post(f"/ui/projects/{d.group_id}/restoration/exit", {"confirm": "yes"})
    assert forged.status_code == 403
    reader.close()

    owner = UiSession(url, "owner")
    banner = owner.get(f"/ui/projects/{d.group_id}/restoration/banner").text
    assert "Force exit" in banner and "Retry" in banner
    assert "without reconciling later agent configurations" in banner  # the seed's warning
    unconfirmed = owner.post(f"/ui/projects/{d.group_id}/restoration/exit")
    assert unconfirmed.status_code == 400 and "Tick the box" in error_detail(unconfirmed.text)
    no_csrf = owner.post(f"/ui/projects/{d.group_id}/restoration/exit", {"confirm": "yes"}, csrf=False)
    assert no_csrf.status_code == 403
    assert d.api.get(f"/groups/{d.group_id}/restorationMode").json()["inRestorationMode"], "nothing changed"
    assert "banner" in owner.get("/ui/restoration/banner").text  # the installation-wide banner lists it
    owner.close()


def test_banner_appears_then_disappears_live_when_reconciliation_completes(
    restored: tuple[SecondaryPair, Deployment], page: Any
) -> None:
    from playwright.sync_api import expect

    pair, d = restored
    login(page, pair.primary.url, "owner")
    page.goto(f"{pair.primary.url}/ui/projects/{d.group_id}/deployment")
    banner = page.locator("#restoration-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Restoration Mode")
    expect(page.locator("#restoration-trigger")).to_contain_text("2")
    expect(banner).to_contain_text(HOSTS[2])  # the agent not heard from
    expect(page.locator("#installation-restoration-banner")).to_contain_text("banner")
    expect(page.get_by_role("button", name="Force exit")).to_be_visible()
    screenshot(page, "restoration-banner")

    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(re.compile(rf".*/ui/projects/{d.group_id}/deployment"))
    expect(page.locator("#restoration-banner")).to_be_visible()

    d.agents[HOSTS[2]].start()  # the last agent is heard: reconciliation completes
    expect(page.locator("#restoration-banner")).to_have_count(0, timeout=90_000)
    expect(page.locator("#installation-restoration-banner")).to_have_count(0, timeout=10_000)
    view = d.api.get(f"/groups/{d.group_id}/restorationMode").json()
    assert view["state"] == "INACTIVE" and view["authoritativeConfigVersion"] >= 2

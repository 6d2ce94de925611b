"""The backing databases page against a real primary and its secondary (``opsmgr secondary attach`` and the
backing-database agent on the primary's stores): in real Chromium, the secondary's page reached from the
navigation with the three stores side by side, the point all three restore to together and the
``opsmgr backup restore-stores`` commands; over HTTP the restore history, the API's read rule (a user of
another project sees none of it), and the primary's page saying it is not a secondary."""

from __future__ import annotations

import html as htmllib
import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from opsmgr.cli.restore_targets import parse_instant
from tests.secondary_support import SecondaryPair, primary_with_secondary
from tests.ui.uisupport import PASSWORD, UiSession, login, screenshot

_COMMAND = re.compile(r'<pre class="command"><code>([^<]+)</code></pre>')


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondaryPair]:
    with primary_with_secondary(tmp_path_factory.mktemp("backing")) as pair:
        pair.secondary.create_user("owner", PASSWORD, "ORG_OWNER")
        pair.primary.create_user("owner", PASSWORD, "ORG_OWNER")
        pair.wait_snapshots()
        yield pair


def test_the_backing_databases_in_chromium(page: Any, pair: SecondaryPair) -> None:
    from playwright.sync_api import expect

    together = pair.backing()["restorableTogether"]
    assert together, pair.backing()
    login(page, pair.secondary.url, "owner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backing databases").click()
    expect(page.get_by_role("heading", name="Backing databases", exact=True)).to_be_visible()
    for name in ("app", "snapshot", "oplog"):
        expect(page.locator(f'[data-store-snapshots="{name}"]')).not_to_have_text("0")
    expect(page.locator("section.store")).to_have_count(3)
    expect(page.locator("[data-together]")).to_contain_text("the latest is")
    expect(page.locator("pre.command").first).to_contain_text("opsmgr backup restore-stores")
    expect(page.locator("section.backing .timeline .range").first).to_be_visible()
    screenshot(page, "backing")


def test_restore_commands_and_history(pair: SecondaryPair) -> None:
    session = UiSession(pair.secondary.url, "owner")
    try:
        html = session.get("/ui/backing").text
        commands = [shlex.split(htmllib.unescape(c)) for c in _COMMAND.findall(html)]
        assert commands and all(c[:3] == ["opsmgr", "backup", "restore-stores"] for c in commands)
        first = commands[0]
        assert first[first.index("--group") + 1] == pair.group_id
        assert first[first.index("--cluster") + 1] == pair.cluster_id
        at = parse_instant(first[first.index("--at") + 1], "--at")
        together = pair.backing()["restorableTogether"]
        assert any(r["startUTCMillis"] <= at <= r["endUTCMillis"] for r in together), (at, together)
        assert "--app-only" in commands[1]
        assert "No restores yet." in html

        with pair.secondary_api() as api:
            job = api.post(
                f"/groups/{pair.group_id}/backingDatabases/{pair.cluster_id}/restoreJobs",
                json={
                    "stores": {name: {"pointInTimeUTCMillis": at} for name in ("app", "snapshot", "oplog")}
                },
            )
            assert job.status_code == 200, job.text
        html = session.get("/ui/backing").text
        assert job.json()["id"] in html and "QUEUED" in html
    finally:
        session.close()


def test_read_rule_and_a_server_that_is_not_a_secondary(pair: SecondaryPair) -> None:
    with pair.secondary_api() as api:
        other = api.post("/groups", json={"name": "elsewhere"}).json()["id"]
    pair.secondary.create_user("outsider", PASSWORD, "GROUP_READ_ONLY", group_id=other)
    outsider = UiSession(pair.secondary.url, "outsider")
    primary = UiSession(pair.primary.url, "owner")
    try:
        html = outsider.get("/ui/backing").text
        assert "not shown" in html and pair.cluster_id not in html and "restore-stores" not in html
        page = primary.get("/ui/backing")
        assert page.status_code == 200 and 'id="not-secondary"' in page.text
        assert "This server is not a secondary" in page.text
        assert primary.get("/ui/backing?x=" + "y" * 5000).status_code < 500
    finally:
        outsider.close()
        primary.close()

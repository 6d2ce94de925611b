"""The backing databases page against a real primary and its secondary (``opsmgr secondary attach`` and the
backing-database agent on the primary's stores): in real Chromium, the secondary's page reached from the
navigation with the three stores side by side, the point all three restore to together and the
``opsmgr backup restore-stores`` commands; over HTTP the restore history, the API's read rule (a user of
another project sees none of it), and the primary's page saying it is not a secondary. Last, a restore the
backing agent carries out (its reports sent as the agent sends them, the agent stopped): its live progress
and its Cancel button in Chromium, the job then CANCELLED with its statement; the form's CSRF check, a
read-only user's refusal (no button, the POST 403) and forged ids over HTTP."""

from __future__ import annotations

import html as htmllib
import re
import shlex
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr.cli.restore_targets import parse_instant
from opsmgr.conf import read_properties_file
from tests.secondary_support import SecondaryPair, now_ms, primary_with_secondary
from tests.ui.uisupport import PASSWORD, UiSession, error_detail, login, read_only_session, screenshot

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


def _report(pair: SecondaryPair, job_id: str, progress: dict[str, Any]) -> None:
    """A progress report as the backing agent sends it, with its project's agent key."""
    config = read_properties_file(pair.agent_config)
    gid = config["mmsGroupId"]
    url = f"{pair.secondary.url}/agents/api/backup/v1/{gid}/backingRestores/{job_id}/progress"
    r = httpx.post(url, json={"progress": progress}, auth=httpx.BasicAuth(gid, config["mmsApiKey"]))
    assert r.status_code == 200, r.text


def test_an_agents_restore_shows_its_progress_live_and_is_cancelled_from_the_page(
    page: Any, pair: SecondaryPair
) -> None:
    from playwright.sync_api import expect

    pair.stop_agent()  # its reports are sent by the test; the primary is not touched
    at = now_ms() - 2000
    with pair.secondary_api() as api:
        path = f"/groups/{pair.group_id}/backingDatabases/{pair.cluster_id}/restoreJobs"
        stores = {name: {"pointInTimeUTCMillis": at} for name in ("app", "snapshot", "oplog")}
        r = api.post(path, json={"stores": stores, "delivery": "AGENT"})
        assert r.status_code == 200, r.text
        job_id = r.json()["id"]
    _report(pair, job_id, {"phase": "DOWNLOADING", "fraction": 0.25, "documents": 40, "message": "app: 40"})
    login(page, pair.secondary.url, "owner")
    page.goto(f"{pair.secondary.url}/ui/backing")
    row = page.locator(f'tr[data-job="{job_id}"]')
    expect(row.locator("[data-progress]")).to_contain_text("DOWNLOADING 25.0%, 40 documents: app: 40")
    # Live: the next report shows without a reload.
    _report(pair, job_id, {"phase": "FENCING", "fraction": 0.5, "documents": 80, "message": "fencing"})
    expect(row.locator("[data-progress]")).to_contain_text("FENCING 50.0%, 80 documents: fencing")
    screenshot(page, "backing-restore-progress")
    row.get_by_role("button", name="Cancel restore").click()
    page.wait_for_url(re.compile(r".*/ui/backing"))
    row = page.locator(f'tr[data-job="{job_id}"]')
    expect(row.locator("[data-cancellation]")).to_contain_text(
        "still hold their data from before the restore"
    )
    expect(row.get_by_role("button", name="Cancel restore")).to_have_count(0)
    with pair.secondary_api() as api:
        shown = api.get(f"{path}/{job_id}").json()
    assert (shown["phase"], shown["statusName"]) == ("CANCELLED", "KILLED"), shown
    _refusals(pair, path, at)


def _refusals(pair: SecondaryPair, path: str, at: int) -> None:
    with pair.secondary_api() as api:
        stores = {name: {"pointInTimeUTCMillis": at} for name in ("app", "snapshot", "oplog")}
        job_id = api.post(path, json={"stores": stores, "delivery": "AGENT"}).json()["id"]
    cancel = f"/ui/backing/{pair.group_id}/{pair.cluster_id}/restores/{job_id}/cancel"
    owner = UiSession(pair.secondary.url, "owner")
    try:
        forged = owner.post(cancel, csrf=False)
        assert forged.status_code == 403 and "CSRF" in error_detail(forged.text)
        for bad in (
            f"/ui/backing/{pair.group_id}/{pair.cluster_id}/restores/nope/cancel",
            f"/ui/backing/{pair.group_id}/{'x' * 5000}/restores/{job_id}/cancel",
            f"/ui/backing/nosuchgroup/{pair.cluster_id}/restores/{job_id}/cancel",
        ):
            assert 400 <= owner.post(bad).status_code < 500, bad
        assert 400 <= owner.get(f"/ui/backing/{pair.group_id}/nosuchcluster/jobs").status_code < 500
        with read_only_session(pair.secondary, "reader", pair.group_id) as reader:
            assert job_id in reader.get("/ui/backing").text
            assert (
                "Cancel restore" not in reader.get(f"/ui/backing/{pair.group_id}/{pair.cluster_id}/jobs").text
            )
            assert reader.post(cancel).status_code == 403
        with pair.secondary_api() as api:
            assert api.get(f"{path}/{job_id}").json()["phase"] == "QUEUED", "nothing was cancelled"
        assert owner.post(cancel).status_code == 303
        ended = owner.post(cancel)
        assert ended.status_code == 409 and "already CANCELLED" in error_detail(ended.text)
    finally:
        owner.close()

"""The deployment page and its edit -> review -> deploy path against a real server and a 3-member replica set
of real ``opsmgr agent`` processes on the sim: over HTTP for every refusal (role, CSRF, malformed JSON, the
validator's and the version check's messages, each the API's own, nothing changed), and in real Chromium for
the click path of a version change watched live."""

from __future__ import annotations

import html as htmllib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.deployments import QUICK_MAINTENANCE, Deployment, replica_set_at_goal
from tests.procs import ServerProcess, started_server, wait_for
from tests.ui.uisupport import UiSession, error_detail, login, read_only_session, screenshot

HOSTS = [f"ui{i}.deploy.sim" for i in range(3)]
_FIELD = re.compile(r'<(?:input|textarea|select)[^>]*\bname="([^"]+)"[^>]*>', re.S)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with started_server(tmp_path_factory.mktemp("server") / "data", QUICK_MAINTENANCE) as srv:
        yield srv


@pytest.fixture(scope="module")
def deployment(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with replica_set_at_goal(
        server, owner, tmp_path_factory.mktemp("deployment"), "ui-deployment", HOSTS
    ) as d:
        yield d


@pytest.fixture(scope="module")
def reader(server: ServerProcess, deployment: Deployment) -> Iterator[UiSession]:
    with read_only_session(server, "deploy-reader", deployment.group_id) as session:
        yield session


def _version(d: Deployment) -> int:
    return int(d.api.get(f"/groups/{d.group_id}/automationConfig").json()["version"])


def edit_form(session: UiSession, group_id: str) -> dict[str, str]:
    """The edit form's fields as the browser would post them (text values; checked boxes only)."""
    html = session.get(f"/ui/projects/{group_id}/deployment/edit").text
    fields: dict[str, str] = {}
    for tag in re.finditer(r"<(input|select|textarea)\b([^>]*)>", html):
        kind, attrs = tag.group(1), tag.group(2)
        name = re.search(r'\bname="([^"]+)"', attrs)
        if not name or name.group(1) == "csrf_token":
            continue
        key = htmllib.unescape(name.group(1))
        if kind == "textarea":
            body = html[tag.end() : html.index("</textarea>", tag.end())]
            fields[key] = htmllib.unescape(body)
        elif kind == "select":
            block = html[tag.end() : html.index("</select>", tag.end())]
            chosen = re.search(r'<option value="([^"]*)" selected', block)
            fields[key] = htmllib.unescape(chosen.group(1)) if chosen else ""
        else:
            value = re.search(r'\bvalue="([^"]*)"', attrs)
            if 'type="checkbox"' in attrs and " checked" not in attrs:
                continue
            fields[key] = htmllib.unescape(value.group(1)) if value else ""
    return fields


def _review_fields(html: str) -> dict[str, str]:
    config = re.search(r'name="config" value="([^"]*)"', html)
    base = re.search(r'name="base_version" value="([^"]*)"', html)
    assert config and base, html[:500]
    return {"config": htmllib.unescape(config.group(1)), "base_version": base.group(1)}


def test_the_page_shows_every_member_at_goal_and_the_live_fragment_the_same_table(
    deployment: Deployment, ui_owner: UiSession
) -> None:
    gid = deployment.group_id
    page = ui_owner.get(f"/ui/projects/{gid}/deployment")
    assert page.status_code == 200
    html = page.text
    assert html.count('class="state state-PRIMARY"') == 1
    assert html.count('class="state state-SECONDARY"') == 2
    assert html.count("goal reached (v") == 3
    assert html.count('class="sim"') == 3 and "7.0.5" in html
    assert f'data-live="/ui/projects/{gid}/deployment/live"' in html and 'aria-live="polite"' in html
    assert 'id="edit-deployment"' in html
    live = ui_owner.get(f"/ui/projects/{gid}/deployment/live")
    assert live.status_code == 200 and live.text.count("<tr data-process=") == 3
    assert "goal reached" in live.text and "<html" not in live.text


def test_review_shows_the_diff_and_what_rolls_and_deploy_puts_the_config(
    deployment: Deployment, ui_owner: UiSession
) -> None:
    gid = deployment.group_id
    before = _version(deployment)
    form = edit_form(ui_owner, gid)
    assert form["version"] == "7.0.5" and form["base_version"] == str(before)
    form["p0.priority"] = "2"
    review = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form)
    assert review.status_code == 200, review.text[:2000]
    assert "Applies without restart" in review.text and "priority of rs0_0: 1 -&gt; 2" in review.text
    assert "Rolls:" not in review.text
    shown = htmllib.unescape(review.text)
    assert re.search(r'class="diff-del">-\s+"priority": 1,?<', shown), shown[shown.find("config-diff") :]
    assert re.search(r'class="diff-add">\+\s+"priority": 2,?<', shown)
    assert _version(deployment) == before, "a review changes nothing"
    done = ui_owner.post(f"/ui/projects/{gid}/deployment/deploy", _review_fields(review.text))
    assert done.status_code == 303, done.text[:2000]
    assert done.headers["location"] == f"/ui/projects/{gid}/deployment?deployed={before + 1}"
    config = deployment.api.get(f"/groups/{gid}/automationConfig").json()
    assert config["version"] == before + 1 and config["replicaSets"][0]["members"][0]["priority"] == 2
    deployment.wait_goal(before + 1, 3)


def test_refusals_carry_the_api_message_and_change_nothing(
    deployment: Deployment, ui_owner: UiSession
) -> None:
    gid = deployment.group_id
    before = _version(deployment)
    # A replica set renamed without accepted downtime: the transition check's message, as the API says it.
    form = edit_form(ui_owner, gid)
    form["rs0.name"] = "renamed"
    refused = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form)
    api_body = deployment.api.get(f"/groups/{gid}/automationConfig").json()
    api_body["replicaSets"][0]["_id"] = "renamed"
    for p in api_body["processes"]:
        p["args2_6"]["replication"]["replSetName"] = "renamed"
    api = deployment.api.put(f"/groups/{gid}/automationConfig", json=api_body)
    assert api.status_code == 400 and "acceptDowntime" in api.json()["detail"]
    assert refused.status_code == 400 and error_detail(refused.text) == api.json()["detail"]
    # The same config posted straight to deploy (a forged review): the PUT's own refusal, shown on the page.
    forged = ui_owner.post(
        f"/ui/projects/{gid}/deployment/deploy", {"config": json.dumps(api_body), "base_version": str(before)}
    )
    assert forged.status_code == 400 and error_detail(forged.text) == api.json()["detail"]
    # Malformed raw JSON: a 400 naming the field and the problem, the form kept.
    form = edit_form(ui_owner, gid)
    form["p1.args"] = '{"systemLog": '
    bad = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form)
    assert bad.status_code == 400
    assert error_detail(bad.text).startswith("Other options of rs0_1 (raw JSON) is not valid JSON")
    assert '{"systemLog": ' in htmllib.unescape(bad.text)
    broken = ui_owner.post(
        f"/ui/projects/{gid}/deployment/deploy", {"config": "[1,", "base_version": str(before)}
    )
    assert broken.status_code == 400 and "The config to deploy is not valid JSON" in error_detail(broken.text)
    # A review based on an older version: the version check's message.
    form = edit_form(ui_owner, gid)
    review = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form)
    stale = _review_fields(review.text) | {"base_version": str(before - 1)}
    old = ui_owner.post(f"/ui/projects/{gid}/deployment/deploy", stale)
    assert old.status_code == 409
    assert error_detail(old.text) == (
        f"the automation config of {gid} is at version {before}, not {before - 1}: it changed meanwhile"
    )
    assert _version(deployment) == before


def test_the_review_tells_what_rolls_from_what_applies_in_place(
    deployment: Deployment, ui_owner: UiSession
) -> None:
    gid = deployment.group_id
    before = _version(deployment)
    untouched = ui_owner.post(f"/ui/projects/{gid}/deployment/review", edit_form(ui_owner, gid))
    assert untouched.status_code == 200 and 'id="no-change"' in untouched.text
    assert "diff-add" not in untouched.text.split('id="config-diff"')[1]
    form = edit_form(ui_owner, gid)
    form |= {
        "args.setParameter.logLevel": "1",  # a runtime parameter: no restart
        "p1.priority": "0.5",
        "p2.priority": "0",
        "p2.hidden": "1",  # replSetReconfig only
        "add.hostname": "ui3.deploy.sim",  # initial sync, no restart
    }
    review = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form)
    assert review.status_code == 200, error_detail(review.text)
    shown = htmllib.unescape(review.text)
    assert "Rolls:" not in shown
    assert "setParameter logLevel=1 on rs0_0 (at runtime)" in shown
    assert "hidden of rs0_2: False -> True" in shown and "add rs0_3" in shown
    assert "priority of rs0_1: 1 -> 0.5" in shown
    assert '"hostname": "ui3.deploy.sim"' in shown and '"dbPath": "/data/rs0_3"' in shown
    # The oplog size and a member removed roll, each member named with its task.
    form = edit_form(ui_owner, gid) | {"args.replication.oplogSizeMB": "2048", "p1.remove": "1"}
    review = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form)
    assert review.status_code == 200, error_detail(review.text)
    rolls = htmllib.unescape(review.text.split('id="rolls-rs0"')[1].split("</div>")[0])
    assert (
        "rs0_0</strong>: changeOplogSize" in rolls
        and "rs0_1</strong>: decommissionHost, removeProcess" in rolls
    )
    assert "rs0_1 is removed from rs0" in rolls
    # A value of the wrong kind reaches the validator, whose message the form shows.
    form = edit_form(ui_owner, gid) | {"p0.net.port": "99999"}
    bad = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form)
    assert bad.status_code == 400 and "net.port must be an integer 1..65535" in error_detail(bad.text)
    assert _version(deployment) == before


def test_read_only_users_see_no_edit_and_forged_posts_are_refused(
    deployment: Deployment, reader: UiSession, ui_owner: UiSession
) -> None:
    gid = deployment.group_id
    before = _version(deployment)
    page = reader.get(f"/ui/projects/{gid}/deployment").text
    assert 'id="edit-deployment"' not in page and "needs the GROUP_AUTOMATION_ADMIN role" in page
    edit = reader.get(f"/ui/projects/{gid}/deployment/edit").text
    assert 'id="review-button"' not in edit and " disabled" in edit
    owner_form = edit_form(ui_owner, gid) | {"version": "9.9.9"}
    review = reader.post(f"/ui/projects/{gid}/deployment/review", owner_form)
    assert review.status_code == 403
    assert error_detail(review.text).endswith(f"lacks role GROUP_AUTOMATION_ADMIN on project {gid}")
    owner_review = ui_owner.post(f"/ui/projects/{gid}/deployment/review", owner_form)
    deploy = reader.post(f"/ui/projects/{gid}/deployment/deploy", _review_fields(owner_review.text))
    assert deploy.status_code == 403 and "lacks role GROUP_AUTOMATION_ADMIN" in error_detail(deploy.text)
    # Without the CSRF token even the owner is refused.
    for path in ("review", "deploy"):
        data = owner_form if path == "review" else _review_fields(owner_review.text)
        forged = ui_owner.post(f"/ui/projects/{gid}/deployment/{path}", data, csrf=False)
        assert forged.status_code == 403 and "CSRF" in error_detail(forged.text)
    # Ids that are no project, oversized input: 4xx pages.
    assert ui_owner.get("/ui/projects/nope/deployment").status_code in (400, 404)
    huge = ui_owner.post(
        f"/ui/projects/{gid}/deployment/deploy", {"config": "x" * 1_100_000, "base_version": "1"}
    )
    assert 400 <= huge.status_code < 500
    assert _version(deployment) == before


def test_a_version_change_clicked_through_and_watched_live(
    deployment: Deployment, ui_owner: UiSession, server: ServerProcess, page: Any
) -> None:
    from playwright.sync_api import expect

    gid = deployment.group_id
    login(page, server.url, "owner")
    page.goto(f"{server.url}/ui/projects/{gid}/deployment")
    live = page.locator("#deployment-live")
    expect(live.locator(".state-PRIMARY")).to_have_count(1, timeout=10_000)
    expect(live.locator(".state-SECONDARY")).to_have_count(2)
    expect(live.locator(".pgoal", has_text="goal reached")).to_have_count(3)
    screenshot(page, "deployment")

    page.get_by_role("link", name="Edit deployment").click()
    page.get_by_label("MongoDB version").fill("7.0.6")
    screenshot(page, "deployment-edit")
    page.get_by_role("button", name="Review changes").click()
    expect(page.locator("#config-diff .diff-add", has_text='"version": "7.0.6"')).to_have_count(3)
    expect(page.locator("#config-diff .diff-del", has_text='"version": "7.0.5"')).to_have_count(3)
    expect(page.locator("#rolls-rs0")).to_contain_text("changeVersion")
    screenshot(page, "deployment-review")

    page.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r".*/deployment\?deployed=\d+"))
    # From here on the page is never reloaded: the live region must show the steps and the new version.
    page.evaluate(
        """() => { window.__loaded = true; window.__steps = [];
        document.addEventListener('live-update', () => document.querySelectorAll('#deployment-live .step')
          .forEach(s => window.__steps.push(s.textContent))); }"""
    )
    expect(live.locator(".pversion", has_text="7.0.6")).to_have_count(3, timeout=90_000)
    expect(live.locator(".pgoal", has_text="goal reached")).to_have_count(3, timeout=60_000)
    expect(live.locator(".state-PRIMARY")).to_have_count(1, timeout=30_000)
    assert page.evaluate("window.__loaded") is True
    steps = page.evaluate("window.__steps")
    assert steps, "no plan step was ever shown while the members rolled"

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "deployment-mobile")
    wait_for(lambda: deployment.at_goal(_version(deployment), 3), 30, what="goal after the version change")


def test_no_report_yet_then_restoration_mode_disables_edit_and_deploy_with_the_api_message(
    server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession, tmp_path: Path
) -> None:
    quiet = Deployment(server, owner, tmp_path, "ui-no-agents")
    try:
        gid = quiet.group_id
        version = quiet.put(replica_set_config(["q0.deploy.sim", "q1.deploy.sim"], "rsq"))
        html = ui_owner.get(f"/ui/projects/{gid}/deployment").text
        assert html.count('class="state state-no-report-yet">no report yet') == 2
        form = edit_form(ui_owner, gid)
        review = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form | {"version": "7.0.6"})
        assert review.status_code == 200
        # An agent of the project holding a newer config than the server's: Restoration Mode begins.
        poll = httpx.get(
            f"{server.url}/agents/api/automation/conf/v1/{gid}",
            params={"hostname": "q0.deploy.sim", "cv": version + 5},
            auth=httpx.BasicAuth(gid, quiet.agent_key),
            verify=server.verify,
        )
        assert poll.status_code in (200, 304), poll.text
        refused = quiet.api.put(
            f"/groups/{gid}/automationConfig", json=replica_set_config(["q0.deploy.sim"], "rsq")
        )
        assert refused.status_code == 409
        message = refused.json()["detail"]
        page = ui_owner.get(f"/ui/projects/{gid}/deployment").text
        assert 'id="edit-deployment"' not in page
        assert re.search(r"<button[^>]*disabled[^>]*>Edit deployment</button>", page)
        assert message in htmllib.unescape(page)
        again = ui_owner.get(f"/ui/projects/{gid}/deployment/edit").text
        assert 'id="review-button"' not in again and message in htmllib.unescape(again)
        review_now = ui_owner.post(f"/ui/projects/{gid}/deployment/review", form | {"version": "7.0.6"})
        assert review_now.status_code == 409 and error_detail(review_now.text) == message
        deploy = ui_owner.post(f"/ui/projects/{gid}/deployment/deploy", _review_fields(review.text))
        assert deploy.status_code == 409 and error_detail(deploy.text) == message
        assert _version(quiet) == version
    finally:
        quiet.close()

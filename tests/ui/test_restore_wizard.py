"""The restore wizard in the seed's words against a real server and a backed-up 3-member sim replica set of
real ``opsmgr agent`` processes: in real Chromium, Continuous Backup, the menu, Restore, Point in Time (a date
and time inside the window), Choose Cluster to Restore to (the deployment itself), confirm naming what will be
replaced, and the job page's progress finishing live; a running restore cancelled with the job page's
button; over HTTP a point outside the window refused at step 1 and at the POST with the API's message and no
job created, and every other refusal (read-only role, CSRF, forged ids, oversized input: 4xx, never 5xx),
and Restoration Mode's refusal, the API's own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deployments import Deployment
from tests.e2e.simbackup import cluster_id, listing
from tests.e2e.test_restore_cancel import pending
from tests.procs import ServerProcess, wait_for
from tests.ui.test_backup import backed_up
from tests.ui.uisupport import UiSession, error_detail, login, read_only_session, screenshot

HOSTS = [f"ui{i}.restore.sim" for i in range(3)]


@pytest.fixture(scope="module")
def deployment(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    d = backed_up(server, owner, tmp_path_factory.mktemp("restore"), "ui-restore", HOSTS)
    yield d
    d.close()


@pytest.fixture(scope="module")
def reader(server: ServerProcess, deployment: Deployment) -> Iterator[UiSession]:
    with read_only_session(server, "restore-reader", deployment.group_id) as session:
        yield session


def _base(d: Deployment) -> str:
    return f"/groups/{d.group_id}/clusters/{cluster_id(d)}"


def _wizard(d: Deployment) -> str:
    return f"/ui/projects/{d.group_id}/backup/{cluster_id(d)}/restore"


def _jobs(d: Deployment) -> int:
    return int(d.api.get(f"{_base(d)}/restoreJobs").json()["totalCount"])


def inside_the_window(d: Deployment) -> tuple[str, str]:
    """A whole second inside the window's last range, as the form's date and time (UTC)."""
    last = listing(d, _base(d))["pitrWindow"][-1]
    lo, hi = last["startUTCMillis"], last["endUTCMillis"]
    at = ((lo + hi) // 2000) * 1000
    assert lo <= at <= hi, last
    moment = time.gmtime(at // 1000)
    return time.strftime("%Y-%m-%d", moment), time.strftime("%H:%M:%S", moment)


def test_restore_to_a_point_in_time_in_chromium(
    page: Any, server: ServerProcess, deployment: Deployment, ui_owner: UiSession
) -> None:
    from playwright.sync_api import expect

    cid = cluster_id(deployment)
    login(page, server.url, "owner")
    page.goto(f"{server.url}/ui/projects/{deployment.group_id}/deployment")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Continuous Backup").click()
    section = page.locator(f"#cluster-{cid}")
    section.locator("details.menu summary").click()
    section.get_by_role("link", name="Restore").click()

    date, clock = inside_the_window(deployment)
    page.get_by_label("Point in Time").check()
    page.get_by_label("Date").fill(date)
    page.get_by_label("Time (UTC)").fill(clock)
    screenshot(page, "restore-wizard-point-in-time")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "restore-wizard-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Next").click()

    expect(page.locator("[data-restore-point]")).to_contain_text(date)
    page.locator("fieldset", has_text="Choose Cluster to Restore to").get_by_label(
        "rs0 in ui-restore"
    ).check()
    page.get_by_role("button", name="Restore", exact=True).click()
    replaced = page.locator("[data-replaced]")
    expect(replaced).to_contain_text("This replaces all data of rs0 in project ui-restore")
    expect(replaced).to_contain_text(HOSTS[0])
    screenshot(page, "restore-wizard")
    page.get_by_role("button", name="Confirm restore").click()

    page.wait_for_url(f"**/backup/{cid}/restores/*")
    live = page.locator("#restore-job-live")
    expect(live.locator("progress")).to_be_visible()
    expect(live.locator("[data-job-status]")).to_have_text("FINISHED", timeout=60_000)
    expect(live.locator("[data-percent]")).to_have_text("100%")
    screenshot(page, "restore-job")

    page.get_by_role("link", name="Back to Continuous Backup").click()
    expect(page.locator(f"#cluster-{cid} table.restore-jobs")).to_contain_text("FINISHED")


def test_a_point_outside_the_window_is_refused_with_the_apis_message(
    deployment: Deployment, ui_owner: UiSession
) -> None:
    jobs = _jobs(deployment)
    api = deployment.api.post(
        f"{_base(deployment)}/restoreJobs",
        json={"pointInTimeUTCMillis": 1_000_000_000_000, "delivery": {"methodName": "HTTP"}},
    )
    assert api.status_code == 400, api.text
    outside = {"method": "pit", "date": "2001-09-09", "time": "01:46:40"}
    step = ui_owner.get(_wizard(deployment), params=outside)
    assert step.status_code == 400
    assert api.json()["detail"] in step.text.replace("&#39;", "'")
    posted = ui_owner.post(_wizard(deployment), {**outside, "delivery": "download"})
    assert posted.status_code == 400
    assert error_detail(posted.text) == api.json()["detail"]
    assert _jobs(deployment) == jobs


def test_download_through_the_wizard(deployment: Deployment, ui_owner: UiSession) -> None:
    snap = listing(deployment, _base(deployment))["results"][0]["id"]
    form = {"method": "snapshot", "snapshotId": snap, "delivery": "download", "expirationHours": "2"}
    confirm = ui_owner.get(_wizard(deployment), params=form)
    assert confirm.status_code == 200 and "Nothing is replaced" in confirm.text
    done = ui_owner.post(_wizard(deployment), form)
    assert done.status_code == 303, done.text
    job_page = ui_owner.get(done.headers["location"])
    assert "Download the restored documents" in job_page.text and "FINISHED" in job_page.text


def test_read_only_user_and_refusals(deployment: Deployment, reader: UiSession, ui_owner: UiSession) -> None:
    jobs = _jobs(deployment)
    html = reader.get(f"/ui/projects/{deployment.group_id}/backup").text
    assert '/restore"' not in html and ">Restore<" not in html
    wizard = reader.get(_wizard(deployment))
    assert wizard.status_code == 403 and "lacks role GROUP_BACKUP_ADMIN" in error_detail(wizard.text)
    snap = listing(deployment, _base(deployment))["results"][0]["id"]
    form = {"method": "snapshot", "snapshotId": snap, "delivery": "download"}
    forged = reader.post(_wizard(deployment), form)
    assert forged.status_code == 403 and "lacks role GROUP_BACKUP_ADMIN" in error_detail(forged.text)
    no_csrf = ui_owner.post(_wizard(deployment), form, csrf=False)
    assert no_csrf.status_code == 403 and "CSRF" in error_detail(no_csrf.text)
    assert _jobs(deployment) == jobs

    base = f"/ui/projects/{deployment.group_id}/backup/{cluster_id(deployment)}"
    bad = [
        ui_owner.get(f"{base}/restores/0123456789abcdef01234567"),
        ui_owner.get(f"{base}/restores/{'x' * 300}"),
        ui_owner.get(f"{base}/restores/nosuch/live"),
        ui_owner.get(f"/ui/projects/{deployment.group_id}/backup/nosuchcluster/restore"),
        ui_owner.get(_wizard(deployment), params={"method": "pit", "date": "yesterday", "time": "noon"}),
        ui_owner.get(_wizard(deployment), params={"method": "oplog", "oplogTs": "9" * 60}),
        ui_owner.get(_wizard(deployment), params={"method": "snapshot", "snapshotId": "s" * 5000}),
        ui_owner.get(
            _wizard(deployment),
            params={
                "method": "snapshot",
                "snapshotId": snap,
                "delivery": "automated",
                "target": "nosuch:group",
            },
        ),
        ui_owner.post(
            _wizard(deployment),
            {"method": "snapshot", "snapshotId": snap, "delivery": "automated", "target": "a" * 129 + ":b"},
        ),
        ui_owner.post(
            _wizard(deployment),
            {"method": "snapshot", "snapshotId": snap, "delivery": "download", "maxDownloads": "lots"},
        ),
        ui_owner.post(_wizard(deployment), {"method": "teleport", "delivery": "download"}),
    ]
    for r in bad:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
    assert _jobs(deployment) == jobs


def test_cancel_a_running_restore_in_chromium(
    page: Any, server: ServerProcess, deployment: Deployment, ui_owner: UiSession, reader: UiSession
) -> None:
    """One member's agent stopped, the restore stays RUNNING once the other two are loaded: the job page's
    Cancel button ends it CANCELLED stating what each member holds; a reader and a form without CSRF are
    refused, and a second cancel is the API's 409. The agent back, the set is whole again."""
    from playwright.sync_api import expect

    d, cid = deployment, cluster_id(deployment)
    d.agents[HOSTS[2]].stop()
    snap = listing(d, _base(d))["results"][0]["id"]
    into = {"methodName": "AUTOMATED_RESTORE", "targetGroupId": d.group_id, "targetClusterId": cid}
    made = d.api.post(f"{_base(d)}/restoreJobs", json={"snapshotId": snap, "delivery": into})
    assert made.status_code == 200, made.text
    job_id = made.json()["results"][0]["id"]
    wait_for(lambda: pending(server, job_id) == ["rs0_2"], 40, what="rs0_0 and rs0_1 loaded")
    job_page = f"/ui/projects/{d.group_id}/backup/{cid}/restores/{job_id}"
    assert "Cancel restore" not in reader.get(job_page).text
    for refused in (reader.post(f"{job_page}/cancel"), ui_owner.post(f"{job_page}/cancel", csrf=False)):
        assert refused.status_code == 403, refused.text[:300]

    login(page, server.url, "owner")
    page.goto(server.url + job_page)
    expect(page.locator("#restore-job-live [data-job-status]")).to_have_text("RUNNING")
    page.get_by_role("button", name="Cancel restore").click()
    page.wait_for_url(f"**{job_page}")
    live = page.locator("#restore-job-live")
    expect(live.locator("[data-job-status]")).to_have_text("CANCELLED")
    expect(live.locator("[data-cancellation]")).to_contain_text("rs0_0, rs0_1 were restored to")
    expect(live.locator("[data-cancellation]")).to_contain_text(
        "rs0_2 still holds its data from before the restore"
    )
    expect(live).to_contain_text("rs0_2: not loaded: its data from before")
    expect(live.locator("[data-percent]")).to_have_text("67%")  # two of three members loaded
    expect(page.get_by_role("button", name="Cancel restore")).to_have_count(0)
    screenshot(page, "restore-job-cancelled")

    again = ui_owner.post(f"{job_page}/cancel")
    api = d.api.delete(f"{_base(d)}/restoreJobs/{job_id}")
    assert again.status_code == api.status_code == 409
    assert error_detail(again.text) == api.json()["detail"]
    d.agents[HOSTS[2]].start()
    d.wait_goal(int(d.status()["goalVersion"]), 3, timeout=40)


def test_restoration_mode_refuses_with_the_apis_message(deployment: Deployment, ui_owner: UiSession) -> None:
    """Last: it leaves the project in Restoration Mode. An agent of the project reporting a newer config
    puts it there, and a restore into it is refused at the confirmation and at the POST, nothing created.
    The project's agents are stopped first: running, they report their real version within a poll and the
    mode reconciles and exits before the refusals are tried; stopped, the mode waits for them."""
    for agent in deployment.agents.values():
        agent.stop()
    poll = httpx.get(
        f"{deployment.server.url}/agents/api/automation/conf/v1/{deployment.group_id}",
        params={"hostname": HOSTS[0], "cv": 10_000},
        auth=(deployment.group_id, deployment.agent_key),
    )
    assert poll.status_code in (200, 304), poll.text
    mode = f"/groups/{deployment.group_id}/restorationMode"
    wait_for(lambda: deployment.api.get(mode).json()["state"] != "INACTIVE", 30, what="Restoration Mode")
    jobs = _jobs(deployment)
    snap = listing(deployment, _base(deployment))["results"][0]["id"]
    target = f"{deployment.group_id}:{cluster_id(deployment)}"
    form = {"method": "snapshot", "snapshotId": snap, "delivery": "automated", "target": target}
    api = deployment.api.post(
        f"{_base(deployment)}/restoreJobs",
        json={
            "snapshotId": snap,
            "delivery": {
                "methodName": "AUTOMATED_RESTORE",
                "targetGroupId": deployment.group_id,
                "targetClusterId": cluster_id(deployment),
            },
        },
    )
    assert api.status_code == 409, api.text
    posted = ui_owner.post(_wizard(deployment), form)
    assert posted.status_code == 409 and error_detail(posted.text) == api.json()["detail"]
    assert "Restores into this project are refused now" in ui_owner.get(_wizard(deployment), params=form).text
    assert _jobs(deployment) == jobs

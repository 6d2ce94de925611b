"""Continuous Backup and the restore wizard of a sharded cluster against a real server, the agents' part
played by posting what they post (``tests.backup.test_sharded_http.Sharded``: an initial sync and oplog
slices of each part): the page lists the cluster as one deployment with its parts inside (each with its own
window), starts its backup, shows its window (the parts' intersection) and its snapshots; the wizard
restores it to a point in that window into itself, one job whose page shows each part's progress live (in
real Chromium too); a cancelled job states what each process holds; and every refusal (read-only role,
CSRF, forged ids, a replica set as the target and the reverse, oversized input) is 4xx, never 5xx."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr.ui.timeline import utc
from tests.agent_protocol import AgentProject
from tests.backup.test_sharded_http import HOSTS, PARTS, T0, Sharded, wait_for
from tests.configs import replica_set_config
from tests.procs import ServerProcess
from tests.ui.uisupport import UiSession, error_detail, login, read_only_session, screenshot

NAME = "sharded-ui"


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as c:
        yield c


@pytest.fixture(scope="module")
def cluster(server: ServerProcess, api: httpx.Client, ui_owner: UiSession) -> Iterator[Sharded]:
    """The cluster backed up from the page's Start backup: each part synced at its own second (0, 2, 4),
    writes to each, every part's oplog shipped up to second 20."""
    c = Sharded(server, api, NAME)
    started = ui_owner.post(f"{_page(c)}/{c.cid}/status", {"statusName": "STARTED"})
    assert started.status_code == 303, started.text[:300]
    sources = c.sync_each_part()
    for second, part, doc in ((10, "sh0", "u1"), (11, "sh1", "u2"), (12, "csrs", "moved")):
        c.ship(sources[part], second, [doc])
    for part in PARTS:
        c.ship(sources[part], 20, [])
    wait_for(lambda: c.snapshots()["totalCount"] >= 1 and c.snapshots()["results"][0]["complete"])
    yield c
    c.agent.close()


class Lone(AgentProject):
    """A project whose config is one replica set ``lone``, its agents' part played as ``Sharded`` plays it."""

    backup = Sharded.backup
    sources = Sharded.sources
    sync = Sharded.sync

    def __init__(self, server: ServerProcess, api: httpx.Client, name: str) -> None:
        super().__init__(server.url, api, name, replica_set_config(HOSTS, rs="lone"))
        self.cid = str(api.get(f"/groups/{self.gid}/clusters").json()["results"][0]["id"])
        self.acked: dict[str, int] = {}


@pytest.fixture(scope="module")
def other(server: ServerProcess, api: httpx.Client, cluster: Sharded) -> Iterator[Lone]:
    """Another project of the same organization: its replica set ``lone`` backed up with a first snapshot,
    no target for a sharded cluster's backup, nor the cluster for its."""
    p = Lone(server, api, f"{NAME}-other")
    r = api.patch(f"/groups/{p.gid}/backupConfigs/{p.cid}", json={"statusName": "STARTED"})
    assert r.status_code == 200, r.text
    p.sync(p.sources()["lone"], 0, [["app.users", {"_id": "lone-initial"}]])
    snapshots = f"/groups/{p.gid}/clusters/{p.cid}/snapshots"
    wait_for(lambda: api.get(snapshots).json()["totalCount"] >= 1)
    yield p
    p.agent.close()


@pytest.fixture(scope="module")
def reader(server: ServerProcess, cluster: Sharded) -> Iterator[UiSession]:
    with read_only_session(server, "sharded-reader", cluster.gid) as session:
        yield session


def _page(c: Sharded) -> str:
    return f"/ui/projects/{c.gid}/backup"


def _wizard(c: Sharded, cluster_id: str | None = None) -> str:
    return f"{_page(c)}/{cluster_id or c.cid}/restore"


def _jobs(c: Sharded) -> list[dict[str, Any]]:
    listed = c.api.get(f"/groups/{c.gid}/clusters/{c.cid}/restoreJobs").json()
    return list(listed["results"])


def _status(c: Sharded) -> str:
    return str(c.api.get(f"/groups/{c.gid}/backupConfigs/{c.cid}").json()["statusName"])


def _at(second: int) -> dict[str, str]:
    moment = time.gmtime(T0 + second)
    return {"date": time.strftime("%Y-%m-%d", moment), "time": time.strftime("%H:%M:%S", moment)}


def _report(c: Sharded, job_id: str, names: list[str], state: str = "DONE") -> None:
    """What the target's agents post as they load the restored data."""
    done = c.agent.post(
        c.backup(f"/restores/{job_id}/progress"),
        params={"hostname": HOSTS[0]},
        json={"processes": names, "state": state},
    )
    assert done.status_code == 200, done.text


def _members(job: dict[str, Any]) -> dict[str, list[str]]:
    return {p["replicaSetName"]: list(p["processes"]) for p in job["parts"]}


def _section(page: str, c: Sharded) -> str:
    start = page.index(f'id="cluster-{c.cid}"')
    return page[start : page.index("</section>", start)]


def test_the_page_lists_the_cluster_with_its_parts_and_its_window(
    cluster: Sharded, ui_owner: UiSession
) -> None:
    page = ui_owner.get(_page(cluster))
    assert page.status_code == 200
    # One deployment: the parts are inside it, never entries of their own.
    for part_id in cluster.part_ids.values():
        assert f'id="cluster-{part_id}"' not in page.text and f"/backup/{part_id}/" not in page.text
    section = _section(page.text, cluster)
    assert "Sharded cluster" in page.text and "Stop backup" in section and "state-STARTED" in section
    listed = cluster.snapshots()
    (window,) = listed["pitrWindow"]
    assert window["start"]["time"] == T0 + 4  # the intersection: sh1 is restorable from its sync at 4 on
    assert f"Restorable until</dt><dd>{utc(window['endUTCMillis'])}" in section
    assert utc(window["startUTCMillis"]) in section
    assert listed["results"][0]["id"] in section
    for part in PARTS:
        assert f'data-part="{part}"' in section
    # Each part's own window, for information: the config servers' starts at their sync, before the cluster's.
    csrs = section[section.index('data-part="csrs"') :].split("</tr>")[0]
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0)) in csrs
    live = ui_owner.get(f"{_page(cluster)}/{cluster.cid}/live")
    assert live.status_code == 200 and 'data-part="sh1"' in live.text
    assert listed["results"][0]["id"] in live.text
    assert _status(cluster) == "STARTED"


def test_the_wizard_restores_the_cluster_to_a_point_as_one_job_with_each_parts_progress(
    cluster: Sharded, other: Lone, ui_owner: UiSession
) -> None:
    before = len(_jobs(cluster))
    step2 = ui_owner.get(_wizard(cluster), params={"method": "pit", **_at(11)})
    assert step2.status_code == 200, step2.text[:300]
    for part in PARTS:
        assert f'data-part-plan="{part}"' in step2.text
    # Only sharded clusters are offered as targets: not the other project's replica set, nor a part.
    assert f"c1 in {NAME} (" in step2.text and "lone in" not in step2.text and "sh0 in" not in step2.text
    for method in ({"method": "oplog", "oplogTs": str(T0 + 13), "oplogInc": "1"},):
        assert ui_owner.get(_wizard(cluster), params=method).status_code == 200
    snap = cluster.snapshots()["results"][0]["id"]
    assert (
        ui_owner.get(_wizard(cluster), params={"method": "snapshot", "snapshotId": snap}).status_code == 200
    )

    form = {"method": "pit", **_at(11), "delivery": "automated", "target": f"{cluster.gid}:{cluster.cid}"}
    confirm = ui_owner.get(_wizard(cluster), params=form)
    assert confirm.status_code == 200 and f"sharded cluster c1 in project {NAME}" in confirm.text
    for part in PARTS:
        assert f'data-replaced-part="{part}"' in confirm.text
    done = ui_owner.post(_wizard(cluster), form)
    assert done.status_code == 303, done.text[:300]
    jobs = _jobs(cluster)
    assert len(jobs) == before + 1
    job = jobs[0]
    assert done.headers["location"].endswith(f"/restores/{job['id']}")
    assert job["timestamp"]["time"] == T0 + 11 and [p["replicaSetName"] for p in job["parts"]] == list(PARTS)

    members = _members(job)
    _report(cluster, job["id"], members["csrs"])
    shown = ui_owner.get(done.headers["location"]).text
    for part, state in (("csrs", "FINISHED"), ("sh0", "QUEUED"), ("sh1", "QUEUED")):
        row = shown[shown.index(f'data-part="{part}"') :].split("</ul>")[0]
        assert f"data-part-status>{state}<" in row and members[part][0] in row, row
    assert "1 of 3 parts restored" in shown
    _report(cluster, job["id"], members["sh0"] + members["sh1"])
    live = ui_owner.get(f"{done.headers['location']}/live").text
    assert "data-job-status>FINISHED<" in live and "data-percent>100%<" in live


def test_a_download_of_the_cluster_through_the_wizard(cluster: Sharded, ui_owner: UiSession) -> None:
    snap = cluster.snapshots()["results"][0]["id"]
    form = {"method": "snapshot", "snapshotId": snap, "delivery": "download"}
    confirm = ui_owner.get(_wizard(cluster), params=form)
    assert confirm.status_code == 200 and "Nothing is replaced" in confirm.text
    done = ui_owner.post(_wizard(cluster), form)
    assert done.status_code == 303, done.text[:300]
    page = ui_owner.get(done.headers["location"]).text
    for part in PARTS:
        row = page[page.index(f'data-part="{part}"') :].split("</li>")[0]
        assert "data-part-status>FINISHED<" in row, row
    link = re.search(r'href="([^"]+)" download>Download the restored documents', page)
    assert link, page[-2000:]
    got = httpx.get(html.unescape(link.group(1)), timeout=30)
    assert got.status_code == 200, got.text[:300]
    lines = [json.loads(line) for line in got.text.splitlines()]
    assert {(d["replicaSetName"], d["doc"]["_id"]) for d in lines} == {(p, f"{p}-initial") for p in PARTS}


def test_a_point_outside_the_clusters_window_is_refused_with_the_apis_message(
    cluster: Sharded, ui_owner: UiSession
) -> None:
    before = len(_jobs(cluster))
    api = cluster.api.post(
        f"/groups/{cluster.gid}/clusters/{cluster.cid}/restoreJobs",
        json={"pointInTimeUTCMillis": (T0 + 2) * 1000, "delivery": {"methodName": "HTTP"}},
    )
    assert api.status_code == 400, api.text
    step = ui_owner.get(_wizard(cluster), params={"method": "pit", **_at(2)})
    assert step.status_code == 400 and api.json()["detail"] in html.unescape(step.text)
    posted = ui_owner.post(_wizard(cluster), {"method": "pit", **_at(2), "delivery": "download"})
    assert posted.status_code == 400 and error_detail(posted.text) == api.json()["detail"]
    assert len(_jobs(cluster)) == before


def test_refusals_are_4xx(cluster: Sharded, other: Lone, reader: UiSession, ui_owner: UiSession) -> None:
    before = len(_jobs(cluster))
    page = reader.get(_page(cluster))
    assert page.status_code == 200 and f'id="cluster-{cluster.cid}"' in page.text
    assert "Stop backup" not in page.text and '/restore"' not in page.text
    status = f"{_page(cluster)}/{cluster.cid}/status"
    form = {"method": "pit", **_at(11), "delivery": "download"}
    for refused in (
        reader.post(status, {"statusName": "STOPPED"}),
        reader.post(_wizard(cluster), form),
        reader.get(_wizard(cluster), params=form),
    ):
        assert refused.status_code == 403 and "lacks role GROUP_BACKUP_ADMIN" in error_detail(refused.text)
    for no_csrf in (
        ui_owner.post(status, {"statusName": "STOPPED"}, csrf=False),
        ui_owner.post(_wizard(cluster), form, csrf=False),
    ):
        assert no_csrf.status_code == 403 and "CSRF" in error_detail(no_csrf.text)

    # A part alone: the API's refusal to back it up by itself; no wizard, no live entry for it.
    part = cluster.part_ids["sh0"]
    api = cluster.api.patch(f"/groups/{cluster.gid}/backupConfigs/{part}", json={"statusName": "STARTED"})
    alone = ui_owner.post(f"{_page(cluster)}/{part}/status", {"statusName": "STARTED"})
    assert alone.status_code == api.status_code == 409 and error_detail(alone.text) == api.json()["detail"]
    # A replica set is no target for a sharded cluster's backup: the API's refusal at the POST.
    lone = other.cid
    into = {"method": "pit", **_at(11), "delivery": "automated", "target": f"{other.gid}:{lone}"}
    api = cluster.api.post(
        f"/groups/{cluster.gid}/clusters/{cluster.cid}/restoreJobs",
        json={
            "pointInTimeUTCMillis": (T0 + 11) * 1000,
            "delivery": {
                "methodName": "AUTOMATED_RESTORE",
                "targetGroupId": other.gid,
                "targetClusterId": lone,
            },
        },
    )
    posted = ui_owner.post(_wizard(cluster), into)
    assert posted.status_code == api.status_code == 400 and error_detail(posted.text) == api.json()["detail"]
    assert ui_owner.get(_wizard(cluster), params=into).status_code == 400
    bad = [
        ui_owner.get(_wizard(cluster, part)),
        ui_owner.get(f"{_page(cluster)}/{part}/live"),
        ui_owner.get(_wizard(cluster, lone)),  # another project's cluster under this project
        ui_owner.get(f"{_page(cluster)}/{lone}/live"),
        ui_owner.post(f"{_page(cluster)}/{lone}/status", {"statusName": "STOPPED"}),
        ui_owner.get(f"{_page(cluster)}/{cluster.cid}/restores/{'0' * 24}"),
        ui_owner.get(f"{_page(cluster)}/{'x' * 300}/live"),
        ui_owner.post(status, {"statusName": "INACTIVE"}),
        ui_owner.post(status, {"statusName": "S" * 5000}),
        ui_owner.get(_wizard(cluster), params={"method": "snapshot", "snapshotId": "s" * 5000}),
        ui_owner.get(_wizard(cluster), params={"method": "snapshot", "snapshotId": "0" * 24}),
        ui_owner.get(_wizard(cluster), params={"method": "oplog", "oplogTs": "9" * 60}),
        ui_owner.get(_wizard(cluster), params={**into, "target": f"{cluster.gid}:{part}"}),
        ui_owner.post(_wizard(cluster), {**into, "target": "a" * 129 + ":b"}),
    ]
    for r in bad:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
    assert len(_jobs(cluster)) == before
    assert _status(cluster) == "STARTED"


def test_a_replica_sets_backup_is_not_restored_into_a_sharded_cluster(
    cluster: Sharded, other: Lone, ui_owner: UiSession
) -> None:
    wizard = f"/ui/projects/{other.gid}/backup/{other.cid}/restore"
    snap = other.api.get(f"/groups/{other.gid}/clusters/{other.cid}/snapshots").json()["results"][0]["id"]
    step2 = ui_owner.get(wizard, params={"method": "snapshot", "snapshotId": snap})
    assert step2.status_code == 200 and f"lone in {NAME}-other (" in step2.text and "c1 in" not in step2.text
    into = {
        "method": "snapshot",
        "snapshotId": snap,
        "delivery": "automated",
        "target": f"{cluster.gid}:{cluster.cid}",
    }
    step3 = ui_owner.get(wizard, params=into)
    assert step3.status_code == 400 and "c1 is a sharded cluster" in html.unescape(step3.text)
    delivery = {
        "methodName": "AUTOMATED_RESTORE",
        "targetGroupId": cluster.gid,
        "targetClusterId": cluster.cid,
    }
    jobs = f"/groups/{other.gid}/clusters/{other.cid}/restoreJobs"
    api = other.api.post(jobs, json={"snapshotId": snap, "delivery": delivery})
    posted = ui_owner.post(wizard, into)
    assert 400 <= api.status_code < 500 and posted.status_code == api.status_code, api.text
    assert error_detail(posted.text) == api.json()["detail"]
    assert other.api.get(jobs).json()["totalCount"] == 0


def test_a_cancelled_restore_states_what_each_process_holds(
    cluster: Sharded, reader: UiSession, ui_owner: UiSession
) -> None:
    _, job = cluster.automated_restore(T0 + 12)
    members = _members(job)
    _report(cluster, job["id"], members["csrs"])
    _report(cluster, job["id"], members["sh0"][:1], "LOADING")
    job_page = f"{_page(cluster)}/{cluster.cid}/restores/{job['id']}"
    assert (
        "Cancel restore" in ui_owner.get(job_page).text and "Cancel restore" not in reader.get(job_page).text
    )
    assert reader.post(f"{job_page}/cancel").status_code == 403
    cancelled = ui_owner.post(f"{job_page}/cancel")
    assert cancelled.status_code == 303, cancelled.text[:300]
    shown = cluster.api.get(f"/groups/{cluster.gid}/clusters/{cluster.cid}/restoreJobs/{job['id']}").json()
    assert shown["statusName"] == "KILLED"
    page = html.unescape(ui_owner.get(job_page).text)
    assert shown["cancellation"]["statement"] in page and "Cancel restore" not in page
    assert f'{members["csrs"][0]}: <span class="state state-ok">loaded' in page
    assert f'{members["sh0"][0]}: <span class="state state-warn">partly loaded' in page
    assert f'{members["sh1"][0]}: <span class="state state-warn">not loaded: its data from before' in page
    again = ui_owner.post(f"{job_page}/cancel")
    assert again.status_code == 409 and error_detail(again.text)


def test_restore_to_a_point_in_time_in_chromium(
    page: Any, server: ServerProcess, cluster: Sharded, ui_owner: UiSession
) -> None:
    from playwright.sync_api import expect

    login(page, server.url, "owner")
    page.goto(f"{server.url}/ui/projects/{cluster.gid}/deployment")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Continuous Backup").click()
    section = page.locator(f"#cluster-{cluster.cid}")
    expect(section.locator("table.parts tbody tr")).to_have_count(len(PARTS))
    screenshot(page, "sharded-backup")
    section.locator("details.menu summary").click()
    section.get_by_role("link", name="Restore").click()

    at = _at(13)
    page.get_by_label("Point in Time").check()
    page.get_by_label("Date").fill(at["date"])
    page.get_by_label("Time (UTC)").fill(at["time"])
    page.get_by_role("button", name="Next").click()
    expect(page.locator("[data-part-plan]")).to_have_count(len(PARTS))
    page.locator("fieldset", has_text="Choose Cluster to Restore to").get_by_label(f"c1 in {NAME}").check()
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.locator("[data-replaced]")).to_contain_text(f"sharded cluster c1 in project {NAME}")
    expect(page.locator("[data-replaced-part]")).to_have_count(len(PARTS))
    screenshot(page, "sharded-restore-confirm")
    page.get_by_role("button", name="Confirm restore").click()

    page.wait_for_url(f"**/backup/{cluster.cid}/restores/*")
    job_id = page.url.rsplit("/", 1)[1]
    live = page.locator("#restore-job-live")
    for part in PARTS:
        expect(live.locator(f'[data-part="{part}"] [data-part-status]')).to_have_text("QUEUED")
    job = cluster.api.get(f"/groups/{cluster.gid}/clusters/{cluster.cid}/restoreJobs/{job_id}").json()
    members = _members(job)
    _report(cluster, job_id, members["sh1"])
    expect(live.locator('[data-part="sh1"] [data-part-status]')).to_have_text("FINISHED")  # live, no reload
    expect(live.locator('[data-part="csrs"] [data-part-status]')).to_have_text("QUEUED")
    screenshot(page, "sharded-restore-job")
    _report(cluster, job_id, members["csrs"] + members["sh0"])
    expect(live.locator("[data-job-status]")).to_have_text("FINISHED")
    expect(live.locator("[data-percent]")).to_have_text("100%")


def test_schedule_snapshot_stop_and_start_of_the_cluster(cluster: Sharded, ui_owner: UiSession) -> None:
    """Last: it requests a snapshot and stops the backup for a moment. Each is the API's call for the
    cluster: the schedule of every part, a snapshot of every part."""
    base = f"{_page(cluster)}/{cluster.cid}"
    assert ui_owner.post(f"{base}/schedule", {"snapshotIntervalHours": "12"}).status_code == 303
    schedule = f"/groups/{cluster.gid}/backupConfigs/{cluster.cid}/snapshotSchedule"
    assert cluster.api.get(schedule).json()["snapshotIntervalHours"] == 12
    queued = ui_owner.post(f"{base}/snapshots")
    assert queued.status_code == 303 and len(queued.headers["location"].split("queued=")[1].split(",")) == 3
    status = f"{base}/status"
    assert ui_owner.post(status, {"statusName": "STOPPED"}).status_code == 303
    assert _status(cluster) == "STOPPED"
    assert "Start backup" in _section(ui_owner.get(_page(cluster)).text, cluster)
    assert ui_owner.post(status, {"statusName": "STARTED"}).status_code == 303
    assert _status(cluster) == "STARTED"

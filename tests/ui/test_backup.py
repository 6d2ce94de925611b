"""Continuous Backup against a real server and a 3-member sim replica set of real ``opsmgr agent`` processes
under a write load, backed up: in real Chromium, the page reached from the project's navigation, the window
drawn as a timeline and "Take snapshot now" whose snapshot appears live; over HTTP the schedule's edit (and
its refusal with the API's message), start and stop, and every refusal (read-only role, CSRF, forged ids,
oversized input: 4xx, never 5xx).

:func:`backed_up` is the deployment the restore wizard's tests use too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from opsmgr.ui.timeline import ranges_of, timeline
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import cluster_id, listing, set_load, start_backup
from tests.procs import ServerProcess, wait_for
from tests.ui.uisupport import UiSession, error_detail, login, read_only_session, screenshot

HOSTS = [f"ui{i}.backup.sim" for i in range(3)]


def backed_up(
    server: ServerProcess, owner: dict[str, Any], root: Path, name: str, hosts: list[str]
) -> Deployment:
    """A project whose 3-member replica set ``rs0`` runs under a write load and is backed up, with a first
    snapshot and a window that has advanced past it."""
    d = Deployment(server, owner, root, name)
    try:
        for host in hosts:
            d.agent(host)
        d.wait_goal(d.put(replica_set_config(hosts, rs="rs0")), 3)
        world = SimWorld.open(root / "world.sqlite")
        try:
            set_load(world, hosts, "rs0", WriteLoad(rate=20, keys=50, payload_bytes=16))
        finally:
            world.close()
        base = start_backup(d)
        wait_for(
            lambda: listing(d, base)["totalCount"] >= 1 and listing(d, base)["pitrWindow"],
            60,
            what="a snapshot",
        )
        first_end = listing(d, base)["pitrWindow"][-1]["end"]["time"]

        def advanced() -> bool:
            last = listing(d, base)["pitrWindow"][-1]
            return last["end"]["time"] >= first_end + 3 and last["startUTCMillis"] is not None

        wait_for(advanced, 30, what="the window advancing")
        return d
    except BaseException:
        d.close()
        raise


@pytest.fixture(scope="module")
def deployment(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    d = backed_up(server, owner, tmp_path_factory.mktemp("backup"), "ui-backup", HOSTS)
    yield d
    d.close()


@pytest.fixture(scope="module")
def reader(server: ServerProcess, deployment: Deployment) -> Iterator[UiSession]:
    with read_only_session(server, "backup-reader", deployment.group_id) as session:
        yield session


def _page(d: Deployment) -> str:
    return f"/ui/projects/{d.group_id}/backup"


def test_take_snapshot_now_in_chromium(
    page: Any, server: ServerProcess, deployment: Deployment, ui_owner: UiSession
) -> None:
    from playwright.sync_api import expect

    cid = cluster_id(deployment)
    before = listing(deployment, f"/groups/{deployment.group_id}/clusters/{cid}")["totalCount"]
    login(page, server.url, "owner")
    page.goto(f"{server.url}/ui/")
    page.locator("tr", has_text="ui-backup").get_by_role("link", name="Continuous Backup").click()
    expect(page.get_by_role("heading", name="Continuous Backup")).to_be_visible()
    section = page.locator(f"#cluster-{cid}")
    expect(section.locator("[data-backup-state]")).to_have_text("STARTED")
    expect(section.locator(".timeline .range").first).to_be_visible()
    expect(section.locator("tr[data-snapshot-id]")).to_have_count(before)

    section.locator("details.menu summary").click()
    section.get_by_role("button", name="Take snapshot now").click()
    expect(page.get_by_role("status").first).to_contain_text("Snapshot requested")
    section = page.locator(f"#cluster-{cid}")
    # The live region shows the new snapshot without a reload.
    expect(section.locator("tr[data-snapshot-id]")).to_have_count(before + 1, timeout=30_000)
    expect(section.locator("tr[data-snapshot-id]").first).to_contain_text("ON_DEMAND")
    screenshot(page, "backup")

    page.set_viewport_size({"width": 390, "height": 844})
    expect(section.locator(".timeline")).to_be_visible()
    screenshot(page, "backup-narrow")


def test_schedule_edit_and_its_refusal(deployment: Deployment, ui_owner: UiSession) -> None:
    cid = cluster_id(deployment)
    action = f"{_page(deployment)}/{cid}/schedule"
    done = ui_owner.post(action, {"snapshotRetentionDays": "3", "pointInTimeWindowHours": "12"})
    assert done.status_code == 303, done.text
    schedule = deployment.api.get(
        f"/groups/{deployment.group_id}/backupConfigs/{cid}/snapshotSchedule"
    ).json()
    assert schedule["snapshotRetentionDays"] == 3 and schedule["pointInTimeWindowHours"] == 12
    assert 'data-field="snapshotRetentionDays">3<' in ui_owner.get(_page(deployment)).text

    refused = ui_owner.post(action, {"snapshotRetentionDays": "999"})
    api = deployment.api.patch(
        f"/groups/{deployment.group_id}/backupConfigs/{cid}/snapshotSchedule",
        json={"snapshotRetentionDays": 999},
    )
    assert refused.status_code == api.status_code == 400, refused.text
    assert error_detail(refused.text) == api.json()["detail"]


def test_read_only_user_sees_no_buttons_and_forged_posts_are_refused(
    deployment: Deployment, reader: UiSession
) -> None:
    cid = cluster_id(deployment)
    html = reader.get(_page(deployment)).text
    assert "STARTED" in html
    for button in ("Take snapshot now", "Stop backup", "Start backup", "Restore<", "Save schedule"):
        assert button not in html, button
    for path, form in (
        (f"{_page(deployment)}/{cid}/snapshots", {}),
        (f"{_page(deployment)}/{cid}/status", {"statusName": "STOPPED"}),
        (f"{_page(deployment)}/{cid}/schedule", {"snapshotRetentionDays": "4"}),
    ):
        r = reader.post(path, form)
        assert r.status_code == 403, (path, r.text)
        assert "lacks role GROUP_BACKUP_ADMIN on project" in error_detail(r.text), path
    assert (
        deployment.api.get(f"/groups/{deployment.group_id}/backupConfigs/{cid}").json()["statusName"]
        == "STARTED"
    )


def test_csrf_forged_ids_and_oversized_input(deployment: Deployment, ui_owner: UiSession) -> None:
    cid = cluster_id(deployment)
    r = ui_owner.post(f"{_page(deployment)}/{cid}/snapshots", csrf=False)
    assert r.status_code == 403 and "CSRF" in error_detail(r.text)
    bad = [
        ui_owner.get("/ui/projects/0123456789abcdef01234567/backup"),
        ui_owner.get("/ui/projects/" + "x" * 5000 + "/backup"),
        ui_owner.get(f"{_page(deployment)}/nosuchcluster/live"),
        ui_owner.get(f"{_page(deployment)}/{'../' * 3}etc/live"),
        ui_owner.post(f"{_page(deployment)}/nosuchcluster/snapshots"),
        ui_owner.post(f"{_page(deployment)}/{cid}/status", {"statusName": "PAUSED"}),
        ui_owner.post(f"{_page(deployment)}/{cid}/status", {"statusName": "S" * 10_000}),
        ui_owner.post(f"{_page(deployment)}/{cid}/schedule", {"snapshotIntervalHours": "soon"}),
        ui_owner.post(f"{_page(deployment)}/{cid}/schedule", {"snapshotIntervalHours": "1" * 100}),
    ]
    for r in bad:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text[:300])


def test_stop_and_start_backup(deployment: Deployment, ui_owner: UiSession) -> None:
    cid = cluster_id(deployment)
    config = f"/groups/{deployment.group_id}/backupConfigs/{cid}"
    assert ui_owner.post(f"{_page(deployment)}/{cid}/status", {"statusName": "STOPPED"}).status_code == 303
    assert deployment.api.get(config).json()["statusName"] == "STOPPED"
    assert "Start backup" in ui_owner.get(_page(deployment)).text
    assert ui_owner.post(f"{_page(deployment)}/{cid}/status", {"statusName": "STARTED"}).status_code == 303
    assert deployment.api.get(config).json()["statusName"] == "STARTED"


def test_the_timeline_places_ranges_and_holes() -> None:
    t = timeline([(1000, 2000), (3000, 5000)], [(1500, "s1"), (9000, "outside")])
    assert [(s.kind, s.left, s.width) for s in t.segments] == [
        ("range", 0.0, 25.0),
        ("hole", 25.0, 25.0),
        ("range", 50.0, 50.0),
    ]
    assert [(m.label, m.left) for m in t.marks] == [("s1", 12.5)]
    assert t.segments[1].style == "left: 25.000%; width: 25.000%" and len(t.holes) == 1
    assert timeline([]).empty
    assert ranges_of(
        [{"startUTCMillis": None, "endUTCMillis": None}, {"startUTCMillis": 5, "endUTCMillis": 9}]
    ) == [(5, 9)]

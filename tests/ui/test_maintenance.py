"""The rolling maintenance page against a real server and a 3-member replica set driven by real ``opsmgr
agent`` processes on the sim: the board follows a version change live (each member's step, then the
finished change's figures), a stuck lease is released behind a confirmation, and every refusal is the API's.

The server runs with a short maintenance policy, as tests/e2e/test_maintenance.py does, so a change takes
seconds."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.maintenance.changes import doc_id
from opsmgr.maintenance.leases import LEASES, Lease, LeaseState, lease_fields
from opsmgr.store.engine import Store
from tests.configs import replica_set_config
from tests.deployments import QUICK_MAINTENANCE, Deployment, replica_set_at_goal
from tests.procs import ServerProcess, started_server, wait_for
from tests.ui.uisupport import UiSession, error_detail, login, read_only_session, screenshot

HOSTS = [f"m{i}.uimaint.sim" for i in range(3)]
MEMBERS = [f"rs0_{i}" for i in range(3)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with started_server(tmp_path_factory.mktemp("server") / "data", QUICK_MAINTENANCE) as srv:
        yield srv


@pytest.fixture(scope="module")
def rs(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with replica_set_at_goal(server, owner, tmp_path_factory.mktemp("fleet"), "maintained", HOSTS) as d:
        yield d


@pytest.fixture(scope="module")
def reader(server: ServerProcess, rs: Deployment) -> Iterator[UiSession]:
    with read_only_session(server, "maint-reader", rs.group_id) as session:
        yield session


def _changes(d: Deployment) -> list[dict[str, Any]]:
    return list(d.api.get(f"/groups/{d.group_id}/maintenance").json()["results"])


def _stick_a_lease(server: ServerProcess, group_id: str, holder: str) -> None:
    """A lease its holder never gives back (its host gone), written where the lease desk keeps it."""
    store = Store(f"sqlite:///{Path(server.data_dir) / 'appdb.sqlite'}")
    try:
        now = time.time()
        lease = Lease(holder=holder, granted_at=now, expires_at=now + 600)
        assert store.update(LEASES, doc_id(group_id, "rs0"), lease_fields(LeaseState(lease, holder)))
    finally:
        store.close()


def _lease(d: Deployment) -> dict[str, Any]:
    section = d.status()["maintenance"]
    return dict(next(s for s in section if s["replicaSet"] == "rs0")["lease"])


@pytest.mark.e2e
def test_a_version_change_rolls_live_in_the_browser(
    server: ServerProcess, rs: Deployment, ui_owner: UiSession, page: Any
) -> None:
    from playwright.sync_api import expect

    login(page, server.url, "owner")
    page.goto(f"{server.url}/ui/projects/{rs.group_id}/maintenance")
    expect(page.locator("#no-changes")).to_be_visible()
    # Every step text the board shows, as the browser receives it (the page is never reloaded).
    page.evaluate(
        """() => { window.seenSteps = []; const board = document.getElementById('maintenance-board');
        new MutationObserver(() => board.querySelectorAll('.member-step').forEach(
          (c) => window.seenSteps.push(c.closest('tr').id + ': ' + c.textContent.trim()))
        ).observe(board, {childList: true, subtree: true}); }"""
    )
    config = replica_set_config(HOSTS, "rs0", "7.0.5")
    for p in config["processes"]:
        p["version"] = "7.0.6"
    version = rs.put(copy.deepcopy(config))

    expect(page.locator("#rs-rs0 .change-state")).to_have_text("RUNNING", timeout=15_000)
    expect(page.locator("#rs-rs0 .phase-inProgress").first).to_be_visible(timeout=15_000)
    screenshot(page, "maintenance-running")
    for member in MEMBERS:
        expect(page.locator(f"#member-{member} .member-step")).to_contain_text("caught up", timeout=60_000)
    change = wait_for(lambda: next((c for c in _changes(rs) if c["state"] == "DONE"), None), 30, what="DONE")
    row = page.locator(f"#finished-{change['id']}")
    expect(row).to_be_visible(timeout=15_000)
    for member in MEMBERS:
        expect(row.locator(".time-out")).to_contain_text(f"{member}:")
    expect(row.locator(".step-downs")).to_contain_text("connections dropped")
    expect(row.locator(".step-downs")).to_contain_text("without a writable primary")
    expect(row.locator(".elections")).not_to_have_text("—")
    seen = page.evaluate("window.seenSteps")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
    for member in MEMBERS:  # each member's progress arrived through the live stream
        assert any(s.startswith(f"member-{member}: ") and "caught up" in s for s in seen), seen
    steps = {s.split(": ", 1)[1] for s in seen}
    assert any("standalone" in s or "coming back" in s or "catching up" in s for s in steps), steps
    assert page.locator("#maintenance-board").get_attribute("aria-live") == "polite"
    screenshot(page, "maintenance")
    rs.wait_goal(version, 3)

    # A lease whose holder never comes back: the Automation Admin releases it behind the checkbox.
    _stick_a_lease(server, rs.group_id, "rs0_1")
    expect(page.locator("#lease-rs0 .lease-holder")).to_contain_text("Held by rs0_1", timeout=10_000)
    page.get_by_role("button", name="Release the lease").click()
    assert _lease(rs)["holder"] == "rs0_1"  # the unticked box stopped the browser
    page.get_by_label("I confirm that rs0_1 will not give the lease back").check()
    page.get_by_role("button", name="Release the lease").click()
    expect(page.locator("#lease-rs0 .lease-holder")).to_contain_text("Free", timeout=10_000)
    assert _lease(rs)["holder"] is None
    screenshot(page, "maintenance-lease-released")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator(f"#finished-{change['id']}")).to_be_visible()
    screenshot(page, "maintenance-narrow")


def test_refusals_are_the_apis_and_change_nothing(
    server: ServerProcess, rs: Deployment, ui_owner: UiSession, reader: UiSession
) -> None:
    gid = rs.group_id
    page = reader.get(f"/ui/projects/{gid}/maintenance")
    assert page.status_code == 200 and "Release the lease</button>" not in page.text
    assert f'data-live="/ui/projects/{gid}/maintenance/live"' in page.text
    fragment = reader.get(f"/ui/projects/{gid}/maintenance/live")
    assert (
        fragment.status_code == 200 and "<html" not in fragment.text and "Finished changes" in fragment.text
    )

    _stick_a_lease(server, gid, "rs0_2")
    path = f"/ui/projects/{gid}/maintenance/replicaSets/rs0/lease/release"
    r = reader.post(path, {"confirm": "yes"})
    assert r.status_code == 403
    assert error_detail(r.text) == f"User maint-reader lacks role GROUP_AUTOMATION_ADMIN on project {gid}"
    r = ui_owner.post(path, {"confirm": "yes"}, csrf=False)
    assert r.status_code == 403 and "CSRF" in error_detail(r.text)
    r = ui_owner.post(path, {})
    assert r.status_code == 400 and "Tick the box" in error_detail(r.text)
    r = ui_owner.post(path, {"confirm": "yes" * 100})
    assert r.status_code == 400
    assert _lease(rs)["holder"] == "rs0_2"
    for forged, status in (
        (f"/ui/projects/{gid}/maintenance/replicaSets/nope/lease/release", 409),
        (f"/ui/projects/{gid}/maintenance/replicaSets/{'x' * 300}/lease/release", 400),
        ("/ui/projects/ffffffffffffffffffffffff/maintenance/replicaSets/rs0/lease/release", 404),
        ("/ui/projects/not-an-id/maintenance/replicaSets/rs0/lease/release", 400),
    ):
        r = ui_owner.post(forged, {"confirm": "yes"})
        assert r.status_code == status, (forged, r.status_code, r.text[:300])
    assert "nobody holds the maintenance lease of nope" in error_detail(
        ui_owner.post(
            f"/ui/projects/{gid}/maintenance/replicaSets/nope/lease/release", {"confirm": "yes"}
        ).text
    )
    for forged in ("/ui/projects/ffffffffffffffffffffffff/maintenance", "/ui/projects/zz/maintenance/live"):
        assert 400 <= ui_owner.get(forged).status_code < 500
    assert _lease(rs)["holder"] == "rs0_2"
    done = ui_owner.post(path, {"confirm": "yes"})
    assert done.status_code == 303 and _lease(rs)["holder"] is None
    again = ui_owner.post(path, {"confirm": "yes"})
    assert again.status_code == 409 and "nobody holds the maintenance lease of rs0" in error_detail(
        again.text
    )

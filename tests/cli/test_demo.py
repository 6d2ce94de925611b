"""``opsmgr demo``, the main job, as a user runs it: it brings a simulated replica set to goal state, writes
demo.json, answers with the credentials it printed, stops cleanly on Ctrl-C, and can be run again. Its secrets
(demo.json, the agent configs) are readable by their owner only, and no key shows on a child's command line.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import OPSMGR, free_port, wait_for
from tests.ui.uisupport import UiSession, launch, login

pytestmark = pytest.mark.e2e


def run_demo(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*OPSMGR, "demo", "--data-dir", str(data_dir), "--port", str(port), "--poll-interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_demo_ready(
    proc: subprocess.Popen[str], data_dir: Path, previous: str | None = None
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        if proc.poll() is not None:
            raise AssertionError(
                f"demo exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
            )
        path = data_dir / "demo.json"
        demo = json.loads(path.read_text()) if path.exists() else None
        return demo if demo and demo["groupId"] != previous else None

    return dict(wait_for(ready, timeout=150, interval=0.3, what="demo.json"))


def stop_demo(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    return output


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def child_cmdlines(parent: int) -> list[bytes]:
    """The command lines of ``parent``'s children, as ``ps`` shows them to any user."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent:
                found.append((proc / "cmdline").read_bytes())
        except (OSError, ValueError, IndexError):
            continue  # not a process, or it ended meanwhile
    return found


def assert_secrets_private(data_dir: Path, demo: dict[str, Any], demo_pid: int) -> None:
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "demo.json") == 0o600
    configs = [
        *(data_dir / "fleet").glob("*/automation-agent.config"),
        data_dir / "backing-agent" / "automation-agent.config",
    ]
    assert len(configs) == 4
    for config in configs:
        assert mode(config) == 0o600, f"{config} is readable by others"
    cmdlines = child_cmdlines(demo_pid)
    assert any(b"fleet" in c for c in cmdlines), cmdlines
    secrets = [
        demo["agentApiKey"],
        demo["privateKey"],
        demo["secondary"]["privateKey"],
        demo["ui"]["password"],
    ]
    for cmdline in cmdlines:
        assert not any(s.encode() in cmdline for s in secrets), cmdline


def see_demo_in_a_browser(demo: dict[str, Any]) -> None:
    """What a new user does with the printed URL and user: log in, open the project, see it at goal."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(demo["url"])
            login(page, demo["url"], demo["ui"]["username"], demo["ui"]["password"])
            page.get_by_role("link", name="demo").first.click()
            expect(page.locator("#deployment-summary")).to_contain_text("3 of 3 processes at goal")
            expect(page.locator("tr[data-process] .sim")).to_have_count(3)  # shown as simulated
        finally:
            browser.close()


def test_demo_reaches_goal_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    port = free_port()
    proc = run_demo(data_dir, port)
    try:
        demo = wait_demo_ready(proc, data_dir)
        assert set(demo) >= {"url", "groupId", "publicKey", "privateKey", "agentApiKey"}
        assert demo["url"] == f"http://127.0.0.1:{port}"
        auth = httpx.DigestAuth(demo["publicKey"], demo["privateKey"])
        base = f"{demo['url']}/api/public/v1.0/groups/{demo['groupId']}"
        status = httpx.get(f"{base}/automationStatus", auth=auth).json()
        assert len(status["processes"]) == 3
        assert all(p["lastGoalVersionAchieved"] == status["goalVersion"] for p in status["processes"])
        hosts = httpx.get(f"{base}/hosts", auth=auth).json()["results"]
        assert sorted(h["replicaStateName"] for h in hosts) == ["PRIMARY", "SECONDARY", "SECONDARY"]
        # The secondary backs up the primary's three backing databases, with a first snapshot of each.
        sec = demo["secondary"]
        assert (
            set(sec) >= {"url", "groupId", "publicKey", "privateKey", "clusterId"}
            and sec["url"] != demo["url"]
        )
        backing = httpx.get(
            f"{sec['url']}/api/public/v1.0/groups/{sec['groupId']}/backingDatabases/{sec['clusterId']}",
            auth=httpx.DigestAuth(sec["publicKey"], sec["privateKey"]),
        ).json()
        assert sorted(s["name"] for s in backing["stores"]) == ["app", "oplog", "snapshot"]
        assert all(s["snapshots"] for s in backing["stores"])
        assert_secrets_private(data_dir, demo, proc.pid)
        # The printed URL opens the web UI's login page; the demo's user logs in and sees the project.
        front = httpx.get(demo["url"], follow_redirects=True)
        assert front.status_code == 200 and str(front.url).startswith(f"{demo['url']}/ui/login")
        assert demo["ui"]["url"] == f"{demo['url']}/ui/"
        user = UiSession(demo["url"], demo["ui"]["username"], demo["ui"]["password"])
        assert f"/ui/projects/{demo['groupId']}/deployment" in user.get("/ui/").text
        user.close()
        see_demo_in_a_browser(demo)
    finally:
        output = stop_demo(proc) if proc.poll() is None else ""
    assert demo["privateKey"] in output, "the credentials are printed for the user"
    assert demo["ui"]["password"] in output and demo["ui"]["url"] in output
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{demo['url']}/health/live", timeout=2)

    # Running it again replaces the previous demo cleanly.
    again = run_demo(data_dir, port)
    try:
        second = wait_demo_ready(again, data_dir, previous=demo["groupId"])
        assert httpx.get(f"{second['url']}/health/ready").status_code == 200
    finally:
        stop_demo(again)


def test_demo_refuses_a_data_dir_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = subprocess.run(
        [*OPSMGR, "demo", "--data-dir", str(tmp_path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "not an opsmgr demo directory" in done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"

"""The seed's restore walked on ``opsmgr demo`` exactly as README.md gives it ("Walking a restore with the
demo"): the block is read from README.md and run by bash against a running demo, so README stays true.
Choose a point, upgrade MongoDB after it, stop the primary, restore its three backing databases from the
secondary to the point, start it, and see Restoration Mode enter and exit on the agents' newer configuration
with the deployment at goal on the upgraded version; the demo itself runs on throughout.

Also the commands' answers without a running demo, and the pure parts of the control protocol.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from opsmgr.cli.demo import demo_automation_config
from opsmgr.cli.demo_commands import next_patch, restorable_together
from opsmgr.cli.demo_control import pending_request, send_request, shell_exports
from opsmgr.timestamps import epoch_ms
from tests.cli.test_demo import stop_demo, wait_demo_ready
from tests.procs import OPSMGR, free_port, run_cli

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## Walking a restore with the demo"


def walk_from_readme() -> str:
    """The first ``sh`` block under the walk's heading, as written."""
    text = README.read_text()
    section = text[text.index(HEADING) :]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found is not None, "README.md's walk has no sh block"
    return found.group(1)


def as_script(walk: str) -> str:
    """The block with ``.venv/bin/opsmgr`` as this checkout's command, each step echoed, any failure fatal."""
    opsmgr = " ".join(shlex.quote(part) for part in OPSMGR)
    return "set -euxo pipefail\n" + walk.replace(".venv/bin/opsmgr", opsmgr)


def demo_cli(cwd: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*OPSMGR, "demo", *args, "--json"], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def restoration_mode(demo: dict[str, Any]) -> dict[str, Any]:
    keys = {"OPSMGR_URL": demo["url"], "OPSMGR_PUBLIC_KEY": demo["publicKey"]}
    keys["OPSMGR_PRIVATE_KEY"] = demo["privateKey"]
    done = run_cli("restoration-mode", "show", "--group", demo["groupId"], "--json", env=keys)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.e2e
def test_the_readme_walk_restores_the_primary_and_restoration_mode_keeps_the_upgrade(tmp_path: Path) -> None:
    demo_proc = subprocess.Popen(
        [*OPSMGR, "demo", "--data-dir", "opsmgr-demo", "--port", str(free_port()), "--poll-interval", "0.3"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        demo = wait_demo_ready(demo_proc, tmp_path / "opsmgr-demo")
        started = time.time()
        walk = subprocess.run(
            ["bash", "-c", as_script(walk_from_readme())],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert walk.returncode == 0, f"{walk.stdout}\n{walk.stderr}"
        assert demo_proc.poll() is None, "the demo ran on through the walk"
        after = demo_cli(tmp_path, "status")
        upgraded = next_patch(demo_automation_config()["processes"][0]["version"])
        assert after["mongodbVersions"] == [upgraded], after
        assert after["goalVersion"] > 1 and after["atGoal"] == after["processes"] == 3, after
        assert after["snapshots"] >= 1, after
        assert after["restorationMode"] == "INACTIVE" and after["primary"]["state"] == "running", after
        mode = restoration_mode(demo)
        assert mode["armedBy"]["restoreJobId"], mode  # the restore armed the mode
        (entered,) = [h for h in mode["history"] if epoch_ms(h["triggeredAt"]) >= started * 1000]
        assert entered["exitReason"].startswith("reconciled"), mode
        assert entered["authoritativeVersion"] == after["goalVersion"], (entered, after)
        # What restoration-mode show printed, at whichever moment it ran: armed by this restore and awaiting
        # the agents' first poll, or entered on an agent's newer config (in it or out).
        armed_by_the_restore = f"by restore job {mode['armedBy']['restoreJobId']}"
        assert any(
            seen in walk.stdout for seen in (armed_by_the_restore, "higher than the restored version 1")
        ), walk.stdout
        fleet_log = (tmp_path / "opsmgr-demo" / "fleet" / "fleet.log").read_text()
        assert "server unreachable, retrying" in fleet_log, "the agents backed off while the primary was down"
    finally:
        if demo_proc.poll() is None:
            stop_demo(demo_proc)


def test_the_commands_need_a_running_demo(tmp_path: Path) -> None:
    missing = run_cli("demo", "primary", "stop", "--data-dir", str(tmp_path))
    assert missing.returncode != 0 and "no demo in" in missing.stderr
    (tmp_path / "demo.json").write_text(json.dumps({"pid": 2**22 + 7}))  # above pid_max: never running
    ended = run_cli("demo", "status", "--data-dir", str(tmp_path))
    assert ended.returncode != 0 and "is not running" in ended.stderr
    # A demo that runs keeps its data dir: a second `opsmgr demo` on it is refused, nothing removed.
    (tmp_path / "demo.json").write_text(json.dumps({"pid": os.getpid()}))
    second = run_cli("demo", "--data-dir", str(tmp_path), "--port", str(free_port()))
    assert second.returncode != 0 and f"a demo runs in {tmp_path}" in second.stderr
    assert json.loads((tmp_path / "demo.json").read_text()) == {"pid": os.getpid()}


def test_the_control_file_is_read_once_and_a_torn_one_is_ignored(tmp_path: Path) -> None:
    assert pending_request(tmp_path, None) is None
    (tmp_path / "control.json").write_text('{"id": "ab", "act')
    assert pending_request(tmp_path, None) is None
    (tmp_path / "control.json").write_text('["primary stop"]')
    assert pending_request(tmp_path, None) is None
    request_id = send_request(tmp_path, "primary stop")
    assert pending_request(tmp_path, None) == {"id": request_id, "action": "primary stop"}
    assert pending_request(tmp_path, request_id) is None
    assert (tmp_path / "control.json").stat().st_mode & 0o077 == 0


def test_exports_quote_values_and_name_both_servers() -> None:
    side = {"url": "http://127.0.0.1:1", "publicKey": "pub", "privateKey": "it's; rm -rf /", "groupId": "g"}
    record = {
        **side,
        "clusterId": "c",
        "primary": {"dataDir": "/tmp/a dir"},
        "secondary": {**side, "url": "http://127.0.0.1:2", "groupId": "sg", "clusterId": "bc"},
    }
    for secondary in (False, True):
        script = shell_exports(record, secondary=secondary) + 'printf "%s|%s|%s" "$OPSMGR_URL" '
        script += '"$OPSMGR_PRIVATE_KEY" "$DEMO_PRIMARY_DATA_DIR"'
        shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
        port = 2 if secondary else 1
        assert shown == f"http://127.0.0.1:{port}|it's; rm -rf /|/tmp/a dir"


def test_a_point_is_restorable_only_inside_the_three_stores_common_window() -> None:
    backing = {"restorableTogether": [{"startUTCMillis": 100, "endUTCMillis": 200}]}
    assert restorable_together(backing, 150) and restorable_together(backing, 200)
    assert not restorable_together(backing, 201) and not restorable_together({}, 150)
    assert next_patch("7.0.14") == "7.0.15" and next_patch("8.0.0-rc1") == "8.0.1"

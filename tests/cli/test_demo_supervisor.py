"""The demo's supervisor and its primary, without a server: the primary's exit is not fatal to the demo (an
essential child's is), a stop request stops it, an exit nobody asked for shows in its view, and a request
the demo does not know is answered with an error instead of ending the demo."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmgr.cli.demo import PRIMARY, Children, PrimaryServer, act
from opsmgr.errors import OpsmgrError
from tests.procs import wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    yield kids
    kids.stop()


def primary_of(children: Children, tmp_path: Path) -> PrimaryServer:
    """A primary whose process is a sleeper (what the supervisor sees of it is all these tests need)."""
    children.start(PRIMARY, SLEEPER, tmp_path / "server.log", essential=False)
    return PrimaryServer(children, tmp_path / "primary", 1, tmp_path / "server.log")


def test_the_primary_may_exit_an_essential_child_may_not(children: Children, tmp_path: Path) -> None:
    primary = primary_of(children, tmp_path)
    fleet = children.start("fleet", SLEEPER, tmp_path / "fleet.log")
    assert primary.view()["state"] == "running" and primary.view()["pid"]
    proc = children.get(PRIMARY)
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    wait_for(lambda: primary.view()["state"] == "stopped", 10, what="the primary's exit seen")
    children.check()  # not fatal
    assert primary.view()["exitStatus"] == -signal.SIGKILL and primary.view()["pid"] is None
    fleet.send_signal(signal.SIGKILL)
    fleet.wait(10)
    with pytest.raises(OpsmgrError, match="the fleet exited"):
        children.check()


def test_requests_stop_the_primary_and_unknown_ones_are_refused(children: Children, tmp_path: Path) -> None:
    primary = primary_of(children, tmp_path)
    refused = act(primary, "primary reboot")
    assert "does not know the request" in refused["error"] and refused["state"] == "running"
    stopped = act(primary, "primary stop")
    assert stopped["state"] == "stopped" and stopped["error"] is None
    assert stopped["exitStatus"] == -signal.SIGTERM  # a clean stop: SIGTERM, waited for
    again = act(primary, "primary stop")  # already stopped: nothing to do, no error
    assert again["state"] == "stopped" and again["error"] is None

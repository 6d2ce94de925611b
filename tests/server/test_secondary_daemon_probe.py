"""The primary's probe of a secondary checks the secondary's Backup Daemon too: a secondary that is ready but
says its daemon is unhealthy fails the probe with the daemon's problems as the reason, and past the threshold
the global alert opens (through the real probe over loopback HTTP and the real AlertService); healthy again,
it closes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.alerts import AlertService, AlertStatus
from opsmgr.backup.alerts import AlertPolicy
from opsmgr.backup.secondaries import GLOBAL_GROUP_ID, UNREACHABLE, SecondaryWatch, record_secondary
from opsmgr.server.secondary_watch import daemon_problem, http_probe
from opsmgr.store import Store

T0 = 1_700_000_000_000
UNHEALTHY = {"healthy": False, "problems": ["backup of appdb (s1) failing: No space left on device"]}


class Secondary:
    """A loopback HTTP server answering ``/health/ready`` with ``self.body``."""

    def __init__(self) -> None:
        self.body: dict[str, Any] = {"status": "OK", "jobs": [], "daemon": {"healthy": True, "problems": []}}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = json.dumps(owner.body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def secondary() -> Iterator[Secondary]:
    s = Secondary()
    yield s
    s.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'app.db'}")
    yield s
    s.close()


def _response(body: object) -> httpx.Response:
    return httpx.Response(200, json=body)


def test_the_daemon_section_decides() -> None:
    assert daemon_problem(_response({"status": "OK", "daemon": {"healthy": True}})) is None
    assert daemon_problem(_response({"status": "OK"})) is None  # a secondary too old to say
    said = daemon_problem(_response({"daemon": UNHEALTHY}))
    assert said is not None and "Backup Daemon is unhealthy" in said and "No space left" in said
    assert "no reason given" in (daemon_problem(_response({"daemon": {"healthy": False}})) or "")
    assert "JSON object" in (daemon_problem(httpx.Response(200, text="<html>")) or "")
    assert "JSON object" in (daemon_problem(_response([1, 2])) or "")


def test_an_unhealthy_daemon_opens_the_alert_and_a_healthy_one_closes_it(
    secondary: Secondary, store: Store
) -> None:
    alerts = AlertService(store)
    watch = SecondaryWatch(alerts, http_probe(2.0), AlertPolicy(secondary_unreachable_ms=10_000))
    recorded = [record_secondary(store, secondary.url, "g1", "c1", T0)]
    watch.run(recorded, T0)
    assert watch.states[secondary.url].error is None
    secondary.body["daemon"] = UNHEALTHY
    for t in range(T0 + 5_000, T0 + 20_001, 5_000):
        watch.run(recorded, t)
    [alert] = alerts.of_group(GLOBAL_GROUP_ID, AlertStatus.OPEN)
    assert alert["eventTypeName"] == UNREACHABLE and "No space left on device" in alert["message"]
    secondary.body["daemon"] = {"healthy": True, "problems": []}
    watch.run(recorded, T0 + 25_000)
    assert alerts.of_group(GLOBAL_GROUP_ID, AlertStatus.OPEN) == []

"""Alerts through the real server: the public endpoints and their roles, and webhook delivery with retries
to a receiver on loopback that fails at first. The alert is raised by writing to the server's application
database as the server's own periodic loops do (they share the store, not an HTTP route)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsmgr.alerts import AlertService
from opsmgr.store.engine import Store
from tests.procs import ServerProcess, free_port, wait_for


class Receiver:
    """A webhook receiver that answers 503 to the first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        self.signed: list[tuple[dict[str, str], bytes]] = []  # each received request's headers and body
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.failures:
                    receiver.failures -= 1
                    self.send_response(503)
                else:
                    receiver.signed.append((dict(self.headers.items()), raw))
                    receiver.received.append(json.loads(raw))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def hooked_server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("alerts") / "data", free_port()).start()
    try:
        srv.stop()
        srv.set_conf({"mms.alerts.webhook.url": receiver.url})
        srv.start()
        yield srv
    finally:
        srv.stop()


def raiser(srv: ServerProcess) -> AlertService:
    return AlertService(Store(f"sqlite:///{Path(srv.data_dir) / 'appdb.sqlite'}"))


def test_alert_is_listed_by_status_and_delivered_despite_failures(
    hooked_server: ServerProcess, receiver: Receiver
) -> None:
    key = hooked_server.create_key("ORG_OWNER")
    with hooked_server.client(key) as api:
        group = api.post("/groups", json={"name": "alerting"}).json()["id"]
        assert api.get(f"/groups/{group}/alerts").json()["results"] == []
        alerts = raiser(hooked_server)
        opened = alerts.raise_alert(group, "BACKUP_SNAPSHOT_MISSED", "s1:missed", "no snapshot in 7 h")

        listed = api.get(f"/groups/{group}/alerts", params={"status": "OPEN"}).json()
        assert [a["id"] for a in listed["results"]] == [opened["id"]]
        one = api.get(f"/groups/{group}/alerts/{opened['id']}").json()
        assert one["eventTypeName"] == "BACKUP_SNAPSHOT_MISSED" and one["status"] == "OPEN"
        assert "key" not in one

        # Two 503s, then delivered: the retries back off 2 s then 4 s.
        wait_for(lambda: receiver.received, 30, what="webhook delivery")
        assert receiver.attempts == 3
        assert receiver.received[0]["id"] == opened["id"]
        assert receiver.received[0]["notification"] == "OPEN"

        alerts.resolve(group, "s1:missed")
        assert api.get(f"/groups/{group}/alerts", params={"status": "OPEN"}).json()["results"] == []
        closed = api.get(f"/groups/{group}/alerts", params={"status": "CLOSED"}).json()["results"]
        assert [a["id"] for a in closed] == [opened["id"]] and closed[0]["resolved"]
        wait_for(lambda: len(receiver.received) == 2, 30, what="webhook delivery of the closing")
        assert receiver.received[1]["notification"] == "CLOSED"


def test_alert_errors_and_roles(hooked_server: ServerProcess) -> None:
    owner = hooked_server.create_key("ORG_OWNER")
    with hooked_server.client(owner) as api:
        group = api.post("/groups", json={"name": "roles"}).json()["id"]
        other = api.post("/groups", json={"name": "other"}).json()["id"]
        opened = raiser(hooked_server).raise_alert(group, "T", "k", "m")
        bad = api.get(f"/groups/{group}/alerts", params={"status": "SOMETIMES"})
        assert bad.status_code == 400 and "status" in bad.json()["detail"]
        missing = api.get(f"/groups/{other}/alerts/{opened['id']}")
        assert missing.status_code == 404 and missing.json()["errorCode"]
    reader = hooked_server.create_key("GROUP_READ_ONLY", group_id=group)
    with hooked_server.client(reader) as api:
        assert api.get(f"/groups/{group}/alerts").status_code == 200
        assert api.get(f"/groups/{other}/alerts").status_code == 403

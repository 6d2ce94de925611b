"""Webhook deliveries from three real servers on one real PostgreSQL set (issue 18): the alert outbox is one
job (``alert-webhook``), run by whichever server holds its lease, each notification claimed before its POST.

Without a kill, every alert's notifications (its opening and its closing) reach a loopback receiver exactly
once, even when the receiver is slow enough that one delivery pass outlasts two lease periods.

Killed (SIGKILL) mid-POST, the server holding the job has posted a notification the receiver got, and died
before recording it. The honest guarantee there is at-least-once: the notification stays claimed in the
outbox, under the killed holder's fencing token, and the server that takes the job over (a higher token)
posts it again on its first pass; nothing tells the new holder whether the receiver got it. Every other
notification arrives exactly once, the rest of them sent by the new holder within two lease periods. A
receiver de-duplicates by what every delivery carries, as Ops Manager's webhook does: the alert's ``id``
and the ``X-MMS-Event`` header (``alert.open`` or ``alert.close``), which name one notification of one
alert: an alert opens once and closes once, and a new occurrence is a new alert with a new id.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsmgr.alerts import CLAIM_S, NOTIFICATIONS, AlertService
from opsmgr.store.engine import Store
from tests.pgserver import PgServer
from tests.procs import STORE_KEYS, ServerProcess, free_port, servers_sharing, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

LEASE_S = 2.0
SLACK_S = 1.0  # metrics read every 0.1 s, the job turns every 0.5 s
JOB = "alert-webhook"


class Receiver:
    """A webhook on loopback: what it got, by (alert id, X-MMS-Event); each answer after ``delay_s``; while
    ``hold`` is set, the next request waits (received, not answered) until it is cleared."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.got: list[tuple[str, str]] = []
        self.in_flight: tuple[str, str] | None = None  # the request held
        self.hold = threading.Event()
        self.held = threading.Event()  # a request is being held
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                got = (body["id"], self.headers["X-MMS-Event"])
                receiver.got.append(got)
                if receiver.hold.is_set():
                    receiver.hold.clear()
                    receiver.in_flight = got
                    receiver.held.set()
                    receiver.release.wait(60)
                time.sleep(receiver.delay_s)  # a slow receiver, so that a delivery pass lasts
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Fleet:
    def __init__(self, servers: list[ServerProcess], app_uri: str, receiver: Receiver) -> None:
        self.servers = servers
        self.receiver = receiver
        self.store = Store(app_uri)  # where the servers' own loops raise alerts
        self.alerts = AlertService(self.store)


@pytest.fixture
def fleet(tmp_path: Path, pg_server: PgServer) -> Iterator[Fleet]:
    stores = {label: pg_server.create_database() for label in STORE_KEYS}
    receiver = Receiver(delay_s=0.3)
    extra = {
        "mms.agent.pollIntervalSeconds": "1",
        "mms.server.jobLeaseSeconds": str(LEASE_S),
        "mms.alerts.webhook.url": receiver.url,
    }
    servers = servers_sharing(tmp_path, stores, ["s0", "s1", "s2"], extra)
    fleet: Fleet | None = None
    try:
        for server in servers:
            server.start()
        fleet = Fleet(servers, stores["application database"], receiver)
        yield fleet
    finally:
        if fleet is not None:
            fleet.store.close()
        receiver.close()
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()




def _raise(fleet: Fleet, n: int, closed: int) -> set[tuple[str, str]]:
    """Opens ``n`` alerts of a new project and closes the first ``closed``; the notifications expected."""
    key = fleet.servers[0].create_key("ORG_OWNER")
    with fleet.servers[0].client(key) as api:
        group = api.post("/groups", json={"name": f"hooks{n}"}).json()["id"]
    opened = [fleet.alerts.raise_alert(group, "T", f"k{i}", f"condition {i}")["id"] for i in range(n)]
    for i in range(closed):
        assert fleet.alerts.resolve(group, f"k{i}")
    return {(a, "alert.open") for a in opened} | {(a, "alert.close") for a in opened[:closed]}


def _states(fleet: Fleet) -> Counter[str]:
    return Counter(n["state"] for n in fleet.store.find(NOTIFICATIONS))


def test_three_servers_deliver_each_notification_exactly_once(fleet: Fleet) -> None:
    expected = _raise(fleet, 12, closed=4)
    # 16 posts of 0.3 s: one pass outlasts two lease periods, its lease renewed meanwhile.
    wait_for(lambda: _states(fleet) == {"DELIVERED": 16}, 30, 0.2, what="every notification delivered")
    # DELIVERED is final: nothing can be posted again.
    assert sorted(fleet.receiver.got) == sorted(expected)
    assert sum(JOB in s.held_jobs() for s in fleet.servers) == 1


def test_the_holder_killed_mid_post_resends_at_most_the_one_in_flight(fleet: Fleet) -> None:
    receiver = fleet.receiver
    receiver.hold.set()
    expected = _raise(fleet, 10, closed=0)
    assert receiver.held.wait(30), "no delivery reached the receiver"
    in_flight = receiver.in_flight
    (holder,) = [s for s in fleet.servers if JOB in s.held_jobs()]
    holder.kill()
    killed_at = time.monotonic()
    receiver.release.set()
    survivors = [s for s in fleet.servers if s is not holder]
    wait_for(
        lambda: any(JOB in s.held_jobs() for s in survivors),
        2 * LEASE_S + SLACK_S,
        0.1,
        what="the webhook job owned by another server within two lease periods",
    )
    # Well within the killed holder's claim (alerts.CLAIM_S): the new holder takes its claim over at once.
    delivered = {"DELIVERED": 10}
    wait_for(lambda: _states(fleet) == delivered, CLAIM_S / 3, 0.2, what="every notification delivered")
    print(f"every notification delivered {time.monotonic() - killed_at:.2f} s after the kill")
    counts = Counter(receiver.got)
    assert set(counts) == expected
    assert all(n == 1 for got, n in counts.items() if got != in_flight), counts
    assert counts[in_flight] == 2, "the one in flight at the kill is posted again by the new holder"

"""An agent as a plain HTTP client of the agent API (HTTP Basic with the project id and agent API key): poll
with the held version, report status, upload the held config, so each step of the protocol can be checked
in turn against a real server."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx

from opsmgr.automation.config import config_hash, processes_on_host, redact


class FakeAgent:
    def __init__(self, url: str, group_id: str, key: str, hostname: str) -> None:
        auth = base64.b64encode(f"{group_id}:{key}".encode()).decode()
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Basic {auth}"}, timeout=10)
        self.group_id = group_id
        self.key = key
        self.hostname = hostname
        self.held: dict[str, Any] = {}
        self.held_at = 0

    @property
    def cv(self) -> int:
        return int(self.held.get("version", -1))

    def poll(self) -> int:
        r = self.http.get(
            f"/agents/api/automation/conf/v1/{self.group_id}",
            params={"hostname": self.hostname, "cv": self.cv},
        )
        if r.status_code == 200:
            self.held = r.json()
            self.held_at = int(time.time() * 1000)
        return r.status_code

    def status(self) -> dict[str, Any]:
        """What a real agent at goal with its held config reports: its processes running, and its claim."""
        mine = processes_on_host(self.held, self.hostname) if self.held else []
        return {
            "hostname": self.hostname,
            "cv": self.cv,
            "cvTimestamp": self.held_at,
            "cvHash": config_hash(self.held) if self.held else None,
            "lastGoalVersionAchieved": self.cv,
            "processes": [
                {"name": p["name"], "lastGoalVersionAchieved": self.cv, "observed": {"running": True}}
                for p in mine
            ],
        }

    def post_status(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            f"/agents/api/automation/status/v1/{self.group_id}", params={"hostname": self.hostname}, json=body
        )

    def report(self) -> list[dict[str, Any]]:
        r = self.post_status(self.status())
        assert r.status_code == 200, r.text
        return list(r.json().get("requests", []))

    def upload(self, config: dict[str, Any] | None = None) -> httpx.Response:
        """Upload the held config (or ``config``), secrets redacted, as a real agent does."""
        return self.http.post(
            f"/agents/api/automation/restoration/v1/{self.group_id}/config",
            params={"hostname": self.hostname},
            json=redact(self.held if config is None else config),
        )

"""An agent as a plain HTTP client of the agent API (HTTP Basic with the project id and agent API key): poll
with the held version, report status, upload the held config, so each step of the protocol can be checked
in turn against a real server."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx


class FakeAgent:
    def __init__(self, url: str, group_id: str, key: str, hostname: str) -> None:
        auth = base64.b64encode(f"{group_id}:{key}".encode()).decode()
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Basic {auth}"}, timeout=10)
        self.group_id = group_id
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

    def report(self) -> list[dict[str, Any]]:
        body = {"hostname": self.hostname, "cv": self.cv, "cvTimestamp": self.held_at, "processes": []}
        r = self.http.post(
            f"/agents/api/automation/status/v1/{self.group_id}", params={"hostname": self.hostname}, json=body
        )
        assert r.status_code == 200, r.text
        return list(r.json().get("requests", []))

    def upload(self) -> httpx.Response:
        return self.http.post(
            f"/agents/api/automation/restoration/v1/{self.group_id}/config",
            params={"hostname": self.hostname},
            json=self.held,
        )

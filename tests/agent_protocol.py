"""The agent API as plain HTTP clients (HTTP Basic with the project id and agent API key): a project made
through the public API with its agent key and an agent-API client, and an agent that polls with the held
version, reports status and uploads the held config, so each step of the protocol can be checked in turn
against a real server."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx

from opsmgr.automation.config import config_hash, processes_on_host, redact


def agent_http(url: str, group_id: str, key: str, timeout: float = 10) -> httpx.Client:
    """A client of the agent API, authenticated as ``automation-agent.config`` would have it."""
    auth = base64.b64encode(f"{group_id}:{key}".encode()).decode()
    return httpx.Client(base_url=url, headers={"Authorization": f"Basic {auth}"}, timeout=timeout)


class AgentProject:
    """A project created through the public API with an agent API key, ``config`` as its goal (when given),
    and ``agent``, a client of the agent API for it."""

    def __init__(
        self, url: str, api: httpx.Client, name: str, config: dict[str, Any] | None = None
    ) -> None:
        self.api = api
        self.gid: str = api.post("/groups", json={"name": name}).json()["id"]
        made = api.post(f"/groups/{self.gid}/agentapikeys", json={"desc": "agents"})
        self.agent_key: str = made.json()["key"]
        self.agent = agent_http(url, self.gid, self.agent_key, timeout=30)
        self.config: dict[str, Any] = config or {}
        self.version = self.put(config) if config is not None else 0

    def put(self, config: dict[str, Any]) -> int:
        r = self.api.put(f"/groups/{self.gid}/automationConfig", json=config)
        assert r.status_code == 200, r.text
        return int(r.json()["version"])


class FakeAgent:
    def __init__(self, url: str, group_id: str, key: str, hostname: str) -> None:
        self.http = agent_http(url, group_id, key)
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

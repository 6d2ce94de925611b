"""A project driven end to end: a real server, real ``opsmgr agent`` processes on a shared sim world file,
and the public API to change and watch it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.configs import replica_set_config
from tests.procs import AgentProcess, ServerProcess, wait_for

# Rolling maintenance's timings shortened for tests (``ServerProcess(..., conf_keys=QUICK_MAINTENANCE)``).
QUICK_MAINTENANCE = {
    "mms.maintenance.memberTimeoutSeconds": "6",
    "mms.maintenance.electionTimeoutSeconds": "30",
    "mms.maintenance.defaultOutSeconds": "5",
    "mms.maintenance.leaseTtlSeconds": "30",
    "mms.maintenance.stepDownSeconds": "10",
    "mms.maintenance.secondaryCatchUpPeriodSeconds": "5",
}


class Deployment:
    def __init__(self, server: ServerProcess, owner: dict[str, Any], root: Path, name: str) -> None:
        self.server = server
        self.api_owner = owner
        self.api = server.client(owner)
        self.group_id = self.api.post("/groups", json={"name": name}).json()["id"]
        self.agent_key = self.api.post(f"/groups/{self.group_id}/agentapikeys", json={"desc": "e2e"}).json()[
            "key"
        ]
        self.root = root
        self.agents: dict[str, AgentProcess] = {}

    def agent(
        self,
        hostname: str,
        api_key: str | None = None,
        extra: dict[str, str] | None = None,
        poll_interval: float = 0.2,
    ) -> AgentProcess:
        """Starts the agent of ``hostname``; it trusts the server's CA (HTTPS), ``extra`` adds config keys."""
        trust = {"sslTrustedMMSServerCertificate": str(self.server.ca_file)} if self.server.ca_file else {}
        agent = AgentProcess(
            root=self.root,
            hostname=hostname,
            base_url=self.server.url,
            group_id=self.group_id,
            api_key=api_key or self.agent_key,
            world=self.root / "world.sqlite",
            poll_interval=poll_interval,
            extra=trust | (extra or {}),
        )
        self.agents[hostname] = agent
        return agent.start()

    def put(self, config: dict[str, Any]) -> int:
        r = self.api.put(f"/groups/{self.group_id}/automationConfig", json=config)
        assert r.status_code == 200, r.text
        return int(r.json()["version"])

    def status(self) -> dict[str, Any]:
        return dict(self.api.get(f"/groups/{self.group_id}/automationStatus").json())

    def hosts(self) -> list[dict[str, Any]]:
        return list(self.api.get(f"/groups/{self.group_id}/hosts").json()["results"])

    def at_goal(self, version: int, members: int) -> bool:
        status = self.status()
        if status["goalVersion"] != version or not status["processes"]:
            return False
        if any(p["lastGoalVersionAchieved"] != version for p in status["processes"]):
            return False
        states = sorted(h["replicaStateName"] for h in self.hosts() if h["running"])
        return states.count("PRIMARY") == 1 and states.count("SECONDARY") == members - 1

    def wait_goal(self, version: int, members: int, timeout: float = 90) -> None:
        try:
            wait_for(lambda: self.at_goal(version, members), timeout, interval=0.2, what=f"goal v{version}")
        except AssertionError:
            logs = "\n".join(f"--- {h}\n{a.log()[-3000:]}" for h, a in self.agents.items())
            raise AssertionError(f"no goal: {self.status()}\n{self.hosts()}\n{logs}") from None

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        self.api.close()


@contextmanager
def replica_set_at_goal(
    server: ServerProcess,
    owner: dict[str, Any],
    root: Path,
    name: str,
    hosts: list[str],
    config: dict[str, Any] | None = None,
) -> Iterator[Deployment]:
    """Project ``name`` with an agent per host, at goal with ``config`` (default: one replica set ``rs0`` of
    ``hosts``); its agents stop when the context ends."""
    d = Deployment(server, owner, root, name)
    try:
        for host in hosts:
            d.agent(host)
        d.wait_goal(d.put(config or replica_set_config(hosts)), len(hosts))
        yield d
    finally:
        d.close()

"""The seed's risk table as scenarios, with real agent processes on simulated hosts: the application
database is rolled back to T0 (before a new member and a new index), the primary starts on it, and the
agents must neither stop nor change anything while the project reconciles on their latest config. The
counterfactual with Restoration Mode turned off shows the harm it prevents: the new member is removed.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import ServerProcess, free_port, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"rm{i}.e2e.sim" for i in range(4)]
APPDB = ("appdb.sqlite", "appdb.sqlite-wal", "appdb.sqlite-shm")
INDEX = {
    "dbName": "shop",
    "collectionName": "orders",
    "key": [["customer", 1]],
    "rsName": "rs0",
    "options": {"name": "customer_1"},
}


def copy_appdb(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in APPDB:
        (dst / name).unlink(missing_ok=True)
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)


def set_restoration_mode(data_dir: Path, enabled: bool) -> None:
    conf = data_dir / "conf-mms.properties"
    lines = [
        line for line in conf.read_text().splitlines() if not line.startswith("mms.restorationMode.enabled")
    ]
    conf.write_text(
        "\n".join([*lines, f"mms.restorationMode.enabled={'true' if enabled else 'false'}"]) + "\n"
    )


@pytest.fixture
def rolled_back(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Deployment, dict[str, Any]]]:
    """Agents at config v3 (4 members, an index) on a server whose application database is back at T0 (v1)."""
    enabled = bool(request.param)
    server = ServerProcess(tmp_path / "data", free_port()).start()
    server.stop()
    set_restoration_mode(server.data_dir, enabled)
    server.start()
    d = Deployment(server, server.create_key(), tmp_path, "rollback")
    try:
        for host in HOSTS:
            d.agent(host)
        t0 = replica_set_config(HOSTS[:3])
        d.wait_goal(d.put(t0), 3)
        server.stop()
        copy_appdb(server.data_dir, tmp_path / "t0")
        server.start()
        latest = replica_set_config(HOSTS)
        d.wait_goal(d.put(latest), 4)
        latest["indexConfigs"] = [INDEX]
        version = d.put(latest)
        d.wait_goal(version, 4)
        server.stop()
        copy_appdb(tmp_path / "t0", server.data_dir)
        # What each agent logs from now on is about the rolled-back server.
        marks = {host: len(agent.log()) for host, agent in d.agents.items()}
        restarted_ms = int(time.time() * 1000)
        server.start()
        yield d, {"latest": latest, "version": version, "marks": marks, "restarted_ms": restarted_ms}
    finally:
        d.close()
        server.stop()


def fresh_hosts(d: Deployment, since_ms: int) -> list[dict[str, Any]]:
    """Processes as reported after the rollback (the restored database still holds reports from T0)."""
    return [h for h in d.hosts() if (h["lastPing"] or 0) >= since_ms]


def log_since(d: Deployment, host: str, facts: dict[str, Any]) -> str:
    return d.agents[host].log()[facts["marks"][host] :]


@pytest.mark.parametrize("rolled_back", [True], indirect=True)
def test_restoration_mode_reconciles_without_touching_processes(
    rolled_back: tuple[Deployment, dict[str, Any]],
) -> None:
    d, facts = rolled_back
    entered = wait_for(
        lambda: (v := d.api.get(f"/groups/{d.group_id}/restorationMode").json())["state"] != "INACTIVE" and v,
        30,
        what="Restoration Mode",
    )
    assert entered["triggerReason"]["agentConfigVersion"] == facts["version"]
    assert entered["triggerReason"]["restoredConfigVersion"] == 1

    def reconciled() -> dict[str, Any] | None:
        fresh = fresh_hosts(d, facts["restarted_ms"])
        assert all(h["running"] for h in fresh), f"no agent may stop a process in Restoration Mode: {fresh}"
        view = d.api.get(f"/groups/{d.group_id}/restorationMode").json()
        return view if view["state"] == "INACTIVE" else None

    view = wait_for(reconciled, 60, interval=0.2, what="reconciliation")
    assert view["authoritativeConfigVersion"] >= facts["version"]
    assert view["history"][-1]["exitReason"].startswith("reconciled")
    config = d.api.get(f"/groups/{d.group_id}/automationConfig").json()
    assert [p["hostname"] for p in config["processes"]] == HOSTS, "the new member is kept"
    assert config["indexConfigs"] == [INDEX], "the new index is kept"
    d.wait_goal(config["version"], 4)
    assert {h["hostname"] for h in fresh_hosts(d, facts["restarted_ms"]) if h["running"]} == set(HOSTS)
    for host in HOSTS:
        assert "adopting automation config version 1 " not in log_since(d, host, facts), "no rollback"
        assert "Stop (" not in log_since(d, host, facts), "no process was stopped"


@pytest.mark.parametrize("rolled_back", [False], indirect=True)
def test_without_restoration_mode_the_new_member_is_removed(
    rolled_back: tuple[Deployment, dict[str, Any]],
) -> None:
    d, facts = rolled_back
    wait_for(
        lambda: "Stop (" in log_since(d, HOSTS[3], facts) and "on rs0_3" in log_since(d, HOSTS[3], facts),
        60,
        what="the agent of the member added after T0 stopping it: the harm the mode prevents",
    )
    assert "adopting automation config version 1 " in log_since(d, HOSTS[3], facts)
    d.wait_goal(1, 3)
    assert d.api.get(f"/groups/{d.group_id}/restorationMode").json()["state"] == "INACTIVE"
    assert "RESTORATION MODE DISABLED: agent" in d.server.log()
    kept = copy.deepcopy(d.api.get(f"/groups/{d.group_id}/automationConfig").json())
    assert "indexConfigs" not in kept or kept["indexConfigs"] == []


def test_cutover_to_a_new_url_reattaches_agents_without_re_registration(tmp_path: Path) -> None:
    """The seed's cutover: the restored primary answers at a new URL; agents whose mmsGroupId/mmsApiKey match
    the restored records re-attach once their mmsBaseUrl points at it, with no new keys."""
    old = ServerProcess(tmp_path / "data", free_port()).start()
    d = Deployment(old, old.create_key(), tmp_path, "cutover")
    try:
        for host in HOSTS[:3]:
            d.agent(host)
        version = d.put(replica_set_config(HOSTS[:3]))
        d.wait_goal(version, 3)
        keys_before = d.api.get(f"/groups/{d.group_id}/agentapikeys").json()
        old.stop()

        new = ServerProcess(old.data_dir, free_port())
        conf = new.data_dir / "conf-mms.properties"
        conf.write_text(conf.read_text() + f"\nmms.centralUrl=http://127.0.0.1:{new.port}\n")
        new.start()
        d.server = new
        d.api.close()
        d.api = new.client(d.api_owner)
        cut_ms = int(time.time() * 1000)
        for agent in d.agents.values():
            agent.base_url = new.url
            agent.write_config()
        wait_for(
            lambda: len([h for h in fresh_hosts(d, cut_ms) if h["running"]]) == 3,
            60,
            what="every agent reporting to the new URL",
        )
        d.wait_goal(version, 3)
        assert d.api.get(f"/groups/{d.group_id}/agentapikeys").json() == keys_before, "no re-registration"
        assert f"URL to Access Ops Manager: http://127.0.0.1:{new.port}" in new.log()
    finally:
        d.close()
        d.server.stop()

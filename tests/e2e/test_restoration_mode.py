"""The seed's risk table as scenarios, with real agent processes on simulated hosts: backups run, a
secondary server backs up the primary's backing databases, and the application database is restored from
it to T0 with ``opsmgr backup restore-stores``; T0 is before a new member, a MongoDB version change (a
rolling restart) and a new index. The primary starts on it, and the agents must neither stop nor change
anything while the project reconciles on their latest config; on exit an on-demand snapshot is queued and
backups go on. The counterfactual with Restoration Mode turned off shows the harm it prevents: the new
member is removed. Also the three endpoints with each role, in and out of the mode.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from opsmgr.timestamps import epoch_ms
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import OPSMGR, ServerProcess, free_port, run_cli, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"rm{i}.e2e.sim" for i in range(4)]
OLD_VERSION, NEW_VERSION = "7.0.5", "7.0.6"
INDEX = {
    "dbName": "shop",
    "collectionName": "orders",
    "key": [["customer", 1]],
    "rsName": "rs0",
    "options": {"name": "customer_1"},
}


def set_restoration_mode(data_dir: Path, enabled: bool) -> None:
    conf = data_dir / "conf-mms.properties"
    lines = [
        line for line in conf.read_text().splitlines() if not line.startswith("mms.restorationMode.enabled")
    ]
    conf.write_text(
        "\n".join([*lines, f"mms.restorationMode.enabled={'true' if enabled else 'false'}"]) + "\n"
    )


def snapshots(d: Deployment) -> dict[str, Any]:
    (cluster,) = d.api.get(f"/groups/{d.group_id}/clusters").json()["results"]
    return dict(d.api.get(f"/groups/{d.group_id}/clusters/{cluster['id']}/snapshots").json())


def start_backup(d: Deployment) -> None:
    """Backup of rs0 started, with an application writing to it, up to a first snapshot."""
    world = SimWorld.open(d.root / "world.sqlite")
    try:
        set_id = world.set_id_of(HOSTS[0], "rs0_0")
        assert set_id is not None
        world.set_write_load(set_id, WriteLoad(rate=20, keys=50, payload_bytes=32))
    finally:
        world.close()
    (cluster,) = d.api.get(f"/groups/{d.group_id}/clusters").json()["results"]
    r = d.api.patch(f"/groups/{d.group_id}/backupConfigs/{cluster['id']}", json={"statusName": "STARTED"})
    assert r.status_code == 200, r.text
    wait_for(lambda: snapshots(d)["totalCount"] >= 1 and snapshots(d)["pitrWindow"], 60, what="a snapshot")


def with_version(config: dict[str, Any], version: str) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    for process in changed["processes"]:
        process["version"] = version
    return changed


class Secondary:
    """A second ``opsmgr server`` made the primary's secondary with the real CLI: ``opsmgr secondary attach``
    and an ``opsmgr agent`` on the primary's host backing up its three backing databases; the application
    database restored from it with ``opsmgr backup restore-stores --app-only`` (the primary stopped)."""

    def __init__(self, root: Path, primary: ServerProcess) -> None:
        self.root = root
        self.primary = primary
        self.server = ServerProcess(root / "secondary-data", free_port())
        self.agent: subprocess.Popen[bytes] | None = None

    def start(self) -> Secondary:
        self.server.start()
        key = self.server.create_key()
        self.auth = ["--url", self.server.url, "--public-key", key["publicKey"]]
        self.auth += ["--private-key", key["privateKey"]]
        self.api = self.server.client(key)
        done = run_cli(
            "secondary", "attach", *self.auth, "--primary-data-dir", str(self.primary.data_dir),
            "--hostname", "primary.e2e", "--agent-dir", str(self.root / "backing-agent"),
            "--slice-seconds", "0.2", "--poll-interval", "0.5", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        attached = json.loads(done.stdout)
        self.group_id, self.cluster_id = attached["groupId"], attached["clusterId"]
        self.agent = subprocess.Popen(
            [*OPSMGR, "agent", "--config", attached["agentConfig"]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def app_db_restorable_until(self) -> int:
        """The latest millisecond to which the application database can be restored."""
        backing = self.api.get(f"/groups/{self.group_id}/backingDatabases/{self.cluster_id}").json()
        (app,) = [s for s in backing["stores"] if s["name"] == "app"]
        return max((r["endUTCMillis"] or 0 for r in app["pitrWindow"]), default=0)

    def restore_app_db(self, at_ms: int) -> dict[str, Any]:
        done = run_cli(
            "backup", "restore-stores", *self.auth, "--group", self.group_id, "--cluster", self.cluster_id,
            "--primary-data-dir", str(self.primary.data_dir), "--point-in-time-ms", str(at_ms),
            "--app-only", "--yes", "--json", timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def close(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(20)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait(10)
        if hasattr(self, "api"):
            self.api.close()
        self.server.stop()


@pytest.fixture
def rolled_back(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Deployment, dict[str, Any]]]:
    """Agents at the latest config (4 members on a new MongoDB version, an index) on a primary whose
    application database was restored from its secondary to T0 (3 members, v1, backup of rs0 running)."""
    enabled = bool(request.param)
    server = ServerProcess(tmp_path / "data", free_port()).start()
    server.stop()
    set_restoration_mode(server.data_dir, enabled)
    server.start()
    d = Deployment(server, server.create_key(), tmp_path, "rollback")
    secondary = Secondary(tmp_path, server)
    try:
        secondary.start()
        for host in HOSTS:
            d.agent(host)
        d.wait_goal(d.put(replica_set_config(HOSTS[:3])), 3)
        start_backup(d)
        t0 = int(time.time() * 1000)
        wait_for(
            lambda: secondary.app_db_restorable_until() >= t0, 90, what="the secondary's window reaching T0"
        )
        latest = replica_set_config(HOSTS)
        d.wait_goal(d.put(latest), 4)
        latest = with_version(latest, NEW_VERSION)
        d.wait_goal(d.put(latest), 4, timeout=180)
        latest["indexConfigs"] = [INDEX]
        version = d.put(latest)
        d.wait_goal(version, 4)
        server.stop()
        restored = secondary.restore_app_db(t0)
        assert restored["stores"]["app"]["documents"] > 0, restored
        # What each agent logs from now on is about the rolled-back server.
        marks = {host: len(agent.log()) for host, agent in d.agents.items()}
        restarted_ms = int(time.time() * 1000)
        server.start()
        assert d.api.get(f"/groups/{d.group_id}/automationConfig").json()["version"] == 1, "back at T0"
        yield d, {"latest": latest, "version": version, "marks": marks, "restarted_ms": restarted_ms}
    finally:
        secondary.close()
        d.close()
        server.stop()


def fresh_hosts(d: Deployment, since_ms: int) -> list[dict[str, Any]]:
    """Processes as reported after the rollback (the restored database still holds reports from T0)."""
    return [h for h in d.hosts() if epoch_ms(h["lastPing"]) >= since_ms]


def log_since(d: Deployment, host: str, facts: dict[str, Any]) -> str:
    return d.agents[host].log()[facts["marks"][host] :]


@pytest.mark.parametrize("rolled_back", [True], indirect=True)
def test_restoration_mode_reconciles_without_touching_processes(
    rolled_back: tuple[Deployment, dict[str, Any]],
) -> None:
    d, facts = rolled_back
    # Armed at start (a restore wrote the database), then in the mode once an agent with v3 polls.
    entered = wait_for(
        lambda: (v := d.api.get(f"/groups/{d.group_id}/restorationMode").json())["inRestorationMode"] and v,
        30,
        what="Restoration Mode",
    )
    assert entered["triggerReason"]["agentConfigVersion"] == facts["version"]
    assert entered["triggerReason"]["restoredConfigVersion"] == 1
    assert entered["armedAt"] and entered["armedBy"]["restoreJobId"], "the restore record armed it first"

    def reconciled() -> dict[str, Any] | None:
        fresh = fresh_hosts(d, facts["restarted_ms"])
        assert all(h["running"] for h in fresh), f"no agent may stop a process in Restoration Mode: {fresh}"
        view = d.api.get(f"/groups/{d.group_id}/restorationMode").json()
        return view if view["state"] == "INACTIVE" else None

    view = wait_for(reconciled, 60, interval=0.2, what="reconciliation")
    window_at_exit = snapshots(d)["pitrWindow"][-1]["end"]["time"]
    assert view["authoritativeConfigVersion"] >= facts["version"]
    assert view["history"][-1]["exitReason"].startswith("reconciled")
    config = d.api.get(f"/groups/{d.group_id}/automationConfig").json()
    assert [p["hostname"] for p in config["processes"]] == HOSTS, "the new member is kept"
    assert {p["version"] for p in config["processes"]} == {NEW_VERSION}, "the version change is kept"
    assert config["indexConfigs"] == [INDEX], "the new index is kept"
    # The mode's entry opened an alert and its exit closed it, saying how it ended.
    alerts = d.api.get(f"/groups/{d.group_id}/alerts").json()["results"]
    (spell,) = [a for a in alerts if a["eventTypeName"] == "RESTORATION_MODE_ENTERED"]
    assert spell["status"] == "CLOSED" and spell["resolved"] and "reconciled" in spell["message"], spell

    # An on-demand snapshot of the one backed-up deployment was queued on exit, and the daemon takes it.
    (queued,) = view["snapshotsQueued"]
    taken = wait_for(
        lambda: [s for s in snapshots(d)["results"] if s["id"] == queued], 30, what="the queued snapshot"
    )
    assert taken[0]["snapshotType"] == "ON_DEMAND", taken
    # Backups resume by themselves: the point-in-time window keeps advancing after the exit.
    wait_for(
        lambda: snapshots(d)["pitrWindow"][-1]["end"]["time"] > window_at_exit,
        30,
        what="the PITR window advancing after the exit",
    )
    d.wait_goal(config["version"], 4)
    assert {h["hostname"] for h in fresh_hosts(d, facts["restarted_ms"]) if h["running"]} == set(HOSTS)
    for host in HOSTS:
        assert "adopting automation config version 1 " not in log_since(d, host, facts), "no rollback"
        assert "Stop (" not in log_since(d, host, facts), "no process was stopped"
        assert f"-> {OLD_VERSION}" not in log_since(d, host, facts), "no process was downgraded"


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
    # The members kept are told to go back to the old MongoDB version: a downgrade is planned everywhere.
    wait_for(
        lambda: all(f"-> {OLD_VERSION}" in log_since(d, h, facts) for h in HOSTS[:3]),
        60,
        what="the other agents planning a downgrade to the restored version",
    )
    assert d.status()["goalVersion"] == 1
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


ROLES = ("GROUP_READ_ONLY", "GROUP_AUTOMATION_ADMIN", "GROUP_BACKUP_ADMIN", "GROUP_OWNER")


def role_keys(api: httpx.Client, group_id: str) -> dict[str, dict[str, Any]]:
    return {
        role: api.post(f"/groups/{group_id}/apiKeys", json={"desc": role, "roles": [role]}).json()
        for role in ROLES
    }


def project_with_config(api: httpx.Client, name: str) -> tuple[str, str]:
    group_id = api.post("/groups", json={"name": name}).json()["id"]
    agent_key = api.post(f"/groups/{group_id}/agentapikeys", json={"desc": "e2e"}).json()["key"]
    r = api.put(f"/groups/{group_id}/automationConfig", json=replica_set_config(HOSTS[:3]))
    assert r.status_code == 200, r.text
    return group_id, agent_key


def test_the_three_endpoints_with_each_role(server: ServerProcess, owner: dict[str, Any]) -> None:
    """GET for Project Read Only and above; retry and DELETE for Project Owner only (403 otherwise); a
    project not in the mode answers GET with its INACTIVE record and retry/DELETE with a named 409."""
    with server.client(owner) as api:
        calm, _ = project_with_config(api, "rm-roles-calm")
        busy, agent_key = project_with_config(api, "rm-roles-busy")
        # An agent holding a config version above the project's: the project enters the mode.
        r = httpx.get(
            f"{server.url}/agents/api/automation/conf/v1/{busy}",
            params={"hostname": HOSTS[0], "cv": 7},
            auth=(busy, agent_key),
        )
        assert r.status_code == 304, r.text
        keys = {group: role_keys(api, group) for group in (calm, busy)}

    for role in ROLES:
        with server.client(keys[calm][role]) as c:
            view = c.get(f"/groups/{calm}/restorationMode")
            assert view.status_code == 200, (role, view.text)
            assert view.json()["state"] == "INACTIVE" and view.json()["inRestorationMode"] is False
            assert view.json()["failureCount"] == 0 and view.json()["triggerReason"] is None
            for method, path in (("POST", "restorationMode/retry"), ("DELETE", "restorationMode")):
                r = c.request(method, f"/groups/{calm}/{path}")
                if role == "GROUP_OWNER":
                    assert r.status_code == 409, r.text
                    assert r.json()["errorCode"] == "NOT_IN_RESTORATION_MODE"
                    assert "not in Restoration Mode" in r.json()["detail"]
                else:
                    assert r.status_code == 403, (role, method, r.text)

        with server.client(keys[busy][role]) as c:
            view = c.get(f"/groups/{busy}/restorationMode")
            assert view.status_code == 200, (role, view.text)
            assert view.json()["inRestorationMode"], view.json()
            assert view.json()["triggerReason"]["agentConfigVersion"] == 7
            if role != "GROUP_OWNER":
                for method, path in (("POST", "restorationMode/retry"), ("DELETE", "restorationMode")):
                    assert c.request(method, f"/groups/{busy}/{path}").status_code == 403, (role, method)
                continue
            retried = c.post(f"/groups/{busy}/restorationMode/retry")
            assert retried.status_code == 200, retried.text
            assert retried.json()["inRestorationMode"] and retried.json()["failureCount"] == 0
            forced = c.delete(f"/groups/{busy}/restorationMode")
            assert forced.status_code == 200, forced.text
            assert forced.json()["state"] == "FORCED_EXIT_CONVERGING"
            assert not forced.json()["inRestorationMode"]
    assert httpx.get(f"{server.url}/api/public/v1.0/groups/{busy}/restorationMode").status_code == 401

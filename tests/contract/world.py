"""One of every public resource on one real server, made through the public API (and, where a resource only
comes from the server's own loops, the way the other tests make it: alerts written to the application
database, agents' reports sent on the agent API), with the answers of the POST/PATCH/PUT calls that made
them kept for the contract checks.

Projects of the world:

- ``main``: a one-member replica set ``rs0`` under a real ``opsmgr agent`` at goal, backed up, with a
  snapshot, an on-demand snapshot, an HTTP restore job and an automated one (into ``target``, where no agent
  runs, so it stays queued), an open alert (acknowledged), a closed one and a project API key;
- ``roll``: a three-member set of names no agent runs, whose version upgrade opens a rolling change and
  whose agent, polling with a newer config version, puts the project in Restoration Mode;
- ``exit``: another project put in Restoration Mode, then made to leave it;
- ``index``: a three-member set whose agents report a primary, with a unique index build;
- ``target``: a one-member set no agent runs, the target of the automated restore;
- ``backing``: a primary's backing databases.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from opsmgr.alerts import AlertService
from opsmgr.backup.secondaries import GLOBAL_GROUP_ID
from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from opsmgr.store.engine import Store
from tests.agent_protocol import AgentProject
from tests.configs import replica_set_config
from tests.deployments import Deployment, replica_set_at_goal
from tests.e2e.simbackup import cluster_id, listing, set_load, start_backup
from tests.procs import ServerProcess, wait_for

MAIN_HOSTS = ["m0.contract.sim"]
ROLL_HOSTS = ["r0.contract.test", "r1.contract.test", "r2.contract.test"]
INDEX_HOSTS = ["i0.contract.test", "i1.contract.test", "i2.contract.test"]
TARGET_HOSTS = ["t0.contract.test"]


@dataclass
class World:
    api: httpx.Client
    ids: dict[str, str] = field(default_factory=dict)
    # The answers of the calls that made the resources, by (method, route template).
    answers: dict[tuple[str, str], httpx.Response] = field(default_factory=dict)

    def call(self, method: str, template: str, **kw: Any) -> httpx.Response:
        """``method`` on ``template`` filled from :attr:`ids` (and ``kw['path']`` overrides); the answer kept
        under the template unless one is kept already (the first answer is the one checked)."""
        names = {**self.ids, **kw.pop("path", {})}
        r = self.api.request(method, template.format(**names), **kw)
        assert r.status_code < 300, (method, template, r.status_code, r.text)
        self.answers.setdefault((method.lower(), template), r)
        return r


def iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


@contextmanager
def built_world(server: ServerProcess, owner: dict[str, Any], root: Path) -> Iterator[World]:
    with ExitStack() as stack:
        api = stack.enter_context(server.client(owner))
        w = World(api)
        w.ids["group_name"] = "contract-plain"
        w.ids["plain_group_id"] = w.call("POST", "/groups", json={"name": "contract-plain"}).json()["id"]
        main = stack.enter_context(replica_set_at_goal(server, owner, root, "contract-main", MAIN_HOSTS))
        sim = SimWorld.open(root / "world.sqlite")
        stack.callback(sim.close)
        appdb = Store(f"sqlite:///{server.data_dir / 'appdb.sqlite'}")
        stack.callback(appdb.close)
        _main_project(w, main, sim)
        _alerts(w, AlertService(appdb))
        _rolling_project(w, server)
        _forced_exit(w, server)
        _maintenance_window(w)
        _alert_config(w)
        _index_project(w, server)
        _backing(w)
        _organization(w)  # last: the owner's key then owns two organizations, and a new project must name one
        yield w


def _organization(w: World) -> None:
    w.ids["org_id"] = w.call("POST", "/orgs", json={"name": "contract-org"}).json()["id"]
    key = w.call("POST", "/orgs/{org_id}/apiKeys", json={"desc": "contract", "roles": ["ORG_READ_ONLY"]})
    w.ids["org_key_id"] = key.json()["id"]


def _main_project(w: World, main: Deployment, sim: SimWorld) -> None:
    gid = w.ids["group_id"] = main.group_id
    w.call("POST", "/groups/{group_id}/agentapikeys", json={"desc": "contract"})
    made = w.call("POST", "/groups/{group_id}/apiKeys", json={"desc": "reader", "roles": ["GROUP_READ_ONLY"]})
    w.ids["group_key_id"] = made.json()["id"]
    w.call("PATCH", "/groups/{group_id}/apiKeys/{group_key_id}", json={"roles": ["GROUP_BACKUP_ADMIN"]})
    config = w.api.get(f"/groups/{gid}/automationConfig").json()
    w.call("PUT", "/groups/{group_id}/automationConfig", json=config)
    hosts = w.api.get(f"/groups/{gid}/hosts").json()["results"]
    w.ids["host_id"] = hosts[0]["id"]
    w.ids["host_name_port"] = f"{hosts[0]['hostname']}:{hosts[0]['port']}"
    w.ids["agent_type"] = "AUTOMATION"
    w.ids["default_org_id"] = w.api.get(f"/groups/{gid}").json()["orgId"]

    set_load(sim, MAIN_HOSTS, "rs0", WriteLoad(rate=30, keys=20, payload_bytes=16))
    cid = w.ids["cluster_id"] = cluster_id(main)
    base = start_backup(main)
    w.answers[("patch", "/groups/{group_id}/backupConfigs/{cluster_id}")] = w.api.patch(
        f"/groups/{gid}/backupConfigs/{cid}", json={"statusName": "STARTED"}
    )
    wait_for(lambda: listing(main, base)["totalCount"] >= 1, 60, what="a first snapshot")
    _storage(w, gid)
    w.ids["snapshot_id"] = listing(main, base)["results"][0]["id"]
    schedule = w.api.get(f"/groups/{gid}/backupConfigs/{cid}/snapshotSchedule").json()
    w.call(
        "PATCH",
        "/groups/{group_id}/backupConfigs/{cluster_id}/snapshotSchedule",
        json={"snapshotRetentionDays": schedule["snapshotRetentionDays"]},
    )
    w.call("POST", "/groups/{group_id}/clusters/{cluster_id}/snapshots")
    w.call(
        "POST",
        "/groups/{group_id}/clusters/{cluster_id}/snapshots/onDemandSnapshot",
        params={"retentionDays": 1},
    )
    job = w.call(
        "POST",
        "/groups/{group_id}/clusters/{cluster_id}/restoreJobs",
        json={"snapshotId": w.ids["snapshot_id"], "delivery": {"methodName": "HTTP", "expirationHours": 1}},
    )
    w.ids["job_id"] = job.json()["results"][0]["id"]
    _automated_restore(w, main)


def _storage(w: World, gid: str) -> None:
    """The host's partition and the database the load writes to, once its agent has measured them."""
    disks, dbs = (f"/groups/{gid}/hosts/{w.ids['host_id']}/{kind}" for kind in ("disks", "databases"))
    wait_for(lambda: w.api.get(dbs).json()["totalCount"] >= 1, 30, what="a measured database")
    w.ids["partition_name"] = w.api.get(disks).json()["results"][0]["partitionName"]
    w.ids["database_name"] = w.api.get(dbs).json()["results"][0]["databaseName"]


def _automated_restore(w: World, main: Deployment) -> None:
    """An automated restore into a project no agent runs: the job stays as it is when queued, and is
    cancelled."""
    p = AgentProject(main.server.url, w.api, "contract-target", replica_set_config(TARGET_HOSTS, rs="dst"))
    p.agent.close()
    clusters = wait_for(
        lambda: w.api.get(f"/groups/{p.gid}/clusters").json()["results"], 10, what="a cluster"
    )
    delivery = {
        "methodName": "AUTOMATED_RESTORE",
        "targetGroupId": p.gid,
        "targetClusterId": clusters[0]["id"],
    }
    job = w.call(
        "POST",
        "/groups/{group_id}/clusters/{cluster_id}/restoreJobs",
        json={"snapshotId": w.ids["snapshot_id"], "delivery": delivery},
    )
    # Cancelled while queued: the answer is the job, CANCELLED with its statement (KILLED).
    w.ids["cancelled_job_id"] = job.json()["results"][0]["id"]
    w.call("DELETE", "/groups/{group_id}/clusters/{cluster_id}/restoreJobs/{cancelled_job_id}")


def _alerts(w: World, alerts: AlertService) -> None:
    missed = alerts.raise_alert(w.ids["group_id"], "BACKUP_SNAPSHOT_MISSED", "c:missed", "late")
    w.ids["alert_id"] = missed["id"]
    # A closed one too, so the list shows an alert's resolved time.
    alerts.raise_alert(w.ids["group_id"], "BACKUP_OPLOG_BEHIND", "c:behind", "behind")
    assert alerts.resolve(w.ids["group_id"], "c:behind")
    ack = {"acknowledgedUntil": iso_in(3600), "acknowledgementComment": "contract"}
    w.call("PATCH", "/groups/{group_id}/alerts/{alert_id}", json=ack)
    unreachable = alerts.raise_alert(GLOBAL_GROUP_ID, "BACKUP_SECONDARY_UNREACHABLE", "s:gone", "unreachable")
    w.ids["global_alert_id"] = unreachable["id"]
    w.call("PATCH", "/globalAlerts/{global_alert_id}", json=ack)


def _restoration_mode(p: AgentProject, hostname: str) -> None:
    """An agent polling with a newer config version than the project's puts the project in Restoration Mode
    (reconciliation then waits for the other hosts)."""
    poll = p.agent.get(f"/agents/api/automation/conf/v1/{p.gid}", params={"hostname": hostname, "cv": 10_000})
    assert poll.status_code in (200, 304), poll.text
    wait_for(
        lambda: p.api.get(f"/groups/{p.gid}/restorationMode").json()["inRestorationMode"],
        30,
        what="Restoration Mode",
    )


def _rolling_project(w: World, server: ServerProcess) -> None:
    """A version upgrade opens a rolling change; an agent polling with a newer config version than the
    project's puts the project in Restoration Mode (reconciliation then waits for the other hosts)."""
    p = AgentProject(server.url, w.api, "contract-roll", replica_set_config(ROLL_HOSTS))
    try:
        w.ids["roll_group_id"] = p.gid
        upgraded = copy.deepcopy(p.config)
        for proc in upgraded["processes"]:
            proc["version"] = "7.0.6"
        p.put(upgraded)
        changes = wait_for(lambda: w.api.get(f"/groups/{p.gid}/maintenance").json()["results"], 10)
        w.ids["change_id"] = changes[0]["id"]
        _restoration_mode(p, ROLL_HOSTS[0])
        w.call("POST", "/groups/{roll_group_id}/restorationMode/retry")
    finally:
        p.agent.close()


def _forced_exit(w: World, server: ServerProcess) -> None:
    """Another project in Restoration Mode, made to leave it (``DELETE .../restorationMode``)."""
    p = AgentProject(server.url, w.api, "contract-exit", replica_set_config(ROLL_HOSTS))
    try:
        w.ids["exit_group_id"] = p.gid
        _restoration_mode(p, ROLL_HOSTS[1])
        w.call("DELETE", "/groups/{exit_group_id}/restorationMode")
    finally:
        p.agent.close()


def _maintenance_window(w: World) -> None:
    """A maintenance window of the main project, changed once; nothing when the server has no such route."""
    body = {
        "startDate": iso_in(3600),
        "endDate": iso_in(7200),
        "alertTypeNames": ["BACKUP"],
        "description": "contract",
    }
    made = w.api.post(f"/groups/{w.ids['group_id']}/maintenanceWindows", json=body)
    if made.status_code == 404:
        return
    assert made.status_code < 300, made.text
    w.answers[("post", "/groups/{group_id}/maintenanceWindows")] = made
    w.ids["window_id"] = made.json()["id"]
    w.call("PATCH", "/groups/{group_id}/maintenanceWindows/{window_id}", json={"description": "contract 2"})


def _alert_config(w: World) -> None:
    """An alert configuration of the main project (replication lag over 90 s, by webhook), replaced once
    and turned on again: the project then evaluates replication lag only."""
    metric = {"metricName": "OPLOG_SLAVE_LAG_MASTER_TIME", "operator": "GREATER_THAN", "threshold": 90}
    hook = {"typeName": "WEBHOOK", "intervalMin": 5, "delayMin": 0, "webhookUrl": "http://127.0.0.1:9/hook"}
    body = {"eventTypeName": "OUTSIDE_METRIC_THRESHOLD", "metricThreshold": metric, "notifications": [hook]}
    w.ids["config_id"] = w.call("POST", "/groups/{group_id}/alertConfigs", json=body).json()["id"]
    body["matchers"] = [{"fieldName": "REPLICA_SET_NAME", "operator": "EQUALS", "value": "rs0"}]
    w.call("PUT", "/groups/{group_id}/alertConfigs/{config_id}", json=body)
    w.call("PATCH", "/groups/{group_id}/alertConfigs/{config_id}", json={"enabled": True})
    scope = {"forAllGroups": False, "groupIds": [w.ids["group_id"]], "tags": ["contract"]}
    made = w.call(
        "POST", "/globalAlertConfigs", json={**body, **scope, "eventTypeName": "BACKUP_SNAPSHOT_MISSED"}
    )
    w.ids["global_config_id"] = made.json()["id"]
    w.call("PUT", "/globalAlertConfigs/{global_config_id}", json={**made.json(), "tags": ["contract", "2"]})
    w.call("PATCH", "/globalAlertConfigs/{global_config_id}", json={"enabled": True})


def _index_project(w: World, server: ServerProcess) -> None:
    """A unique index build on a set whose agents report a primary, confirmed."""
    p = AgentProject(server.url, w.api, "contract-index", replica_set_config(INDEX_HOSTS))
    try:
        w.ids["index_group_id"] = p.gid
        for i, host in enumerate(INDEX_HOSTS):
            state = "PRIMARY" if i == 0 else "SECONDARY"
            observed = {"replicaStateName": state, "optimeTs": 1_700_000_000 << 32}
            status = {"cv": p.version, "processes": [{"name": f"rs0_{i}", "observed": observed}]}
            r = p.agent.post(
                f"/agents/api/automation/status/v1/{p.gid}", params={"hostname": host}, json=status
            )
            assert r.status_code == 200, r.text
        body = {"rsName": "rs0", "dbName": "shop", "collectionName": "orders", "key": [["orderNo", 1]]}
        build = w.call("POST", "/groups/{index_group_id}/uniqueIndexBuilds", json=body)
        w.ids["build_id"] = build.json()["id"]
        w.call(
            "POST",
            "/groups/{index_group_id}/uniqueIndexBuilds/{build_id}/confirm",
            json={"writesStopped": True},
        )
    finally:
        p.agent.close()


def _backing(w: World) -> None:
    gid = w.api.post("/groups", json={"name": "contract-backing"}).json()["id"]
    w.ids["backing_group_id"] = gid
    made = w.call(
        "POST",
        "/groups/{backing_group_id}/backingDatabases",
        json={"clusterName": "contract-backing", "hostname": "primary.contract.test"},
    )
    w.ids["backing_cluster_id"] = made.json()["id"]
    step = {"name": "restore into the sandbox", "passed": True, "seconds": 1.5, "detail": "3 stores"}
    now = int(time.time() * 1000)
    report = {
        "passed": True,
        "started": now - 9000,
        "finished": now,
        "restorePointUTCMillis": now - 12000,
        "steps": [step],
    }
    w.call("POST", "/groups/{backing_group_id}/backingDatabases/{backing_cluster_id}/drills", json=report)

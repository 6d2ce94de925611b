"""A published Ops Manager client library, unchanged, drives the seeds' flows against a real server: the
``opsmanager`` package (a maintained Python client for Ops Manager's public API, pinned in the test extras)
with its own HTTP Digest authentication, paging, error mapping and dataclass decoding.

The library's services are the read side a health-check or reporting tool uses; it has no methods for the
writes, so those go through the same services' own request methods (``_post``/``_put``/``_patch``: its
session, authentication, retries and error mapping), as a script built on it does. Every typed answer is
checked for Ops Manager's field types, since a Go or Java client would fail to decode a swapped type where
this one's dataclasses would not notice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opsmanager import OpsManagerClient
from opsmanager.errors import OpsManagerBadRequestError, OpsManagerNotFoundError
from opsmanager.types import Host, Project, RestoreJob

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.e2e.simbackup import dump_at_a_position, primary, set_load
from tests.procs import AgentProcess, ServerProcess, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"om{i}.client.sim" for i in range(3)]


def iso(value: Any) -> datetime:
    """An ISO-8601 instant as Ops Manager writes it (a string, UTC)."""
    assert isinstance(value, str), f"{value!r} is not an ISO-8601 string"
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0, value
    return parsed


@pytest.fixture
def client(server: ServerProcess, owner: dict[str, Any]) -> Iterator[OpsManagerClient]:
    with server.ops_manager_client(owner) as om:
        yield om


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def create_project(om: OpsManagerClient, name: str) -> tuple[Project, str]:
    (org,) = om.organizations.list()
    created = om.projects._post("groups", json={"name": name, "orgId": org.id})
    assert isinstance(created["agentApiKey"], str) and created["agentApiKey"]
    project = om.projects.get_by_name(name)
    assert project.id == created["id"] and project.org_id == org.id
    iso(created["created"])
    return project, str(created["agentApiKey"])


def at_goal(om: OpsManagerClient, group_id: str, version: int) -> bool:
    # Ops Manager's processes name ``lastGoalVersionAchieved``; the library's dataclass reads another field,
    # so the raw answer is read, as a tool on this library has to.
    status = om.automation.get_status(group_id, as_obj=False)
    processes = status["processes"]
    return (
        status["goalVersion"] >= version
        and len(processes) == len(HOSTS)
        and all(p["lastGoalVersionAchieved"] >= version for p in processes)
    )


def check_host_types(host: Host) -> None:
    iso(host.last_ping)
    iso(host.created)
    assert isinstance(host.port, int) and isinstance(host.host_enabled, bool)
    assert isinstance(host.journaling_enabled, bool) and isinstance(host.alerts_enabled, bool)


def test_the_seeds_flows_through_a_published_client(
    client: OpsManagerClient, server: ServerProcess, agents: list[AgentProcess], tmp_path: Path
) -> None:
    om = client
    project, agent_key = create_project(om, "published-client")
    gid = project.id
    world = tmp_path / "world.sqlite"
    for host in HOSTS:
        agent = AgentProcess(tmp_path, host, server.url, gid, agent_key, world, 0.2)
        agents.append(agent.start())

    # An automation config PUT as Ops Manager scripts send it, then the library waits for goal state.
    answer = om.automation._put(f"groups/{gid}/automationConfig", json=replica_set_config(HOSTS))
    version = int(answer["version"])
    wait_for(lambda: at_goal(om, gid, version), 30, what="goal state through the client")

    # What a health check reads first: the config back, hosts, agents, clusters.
    config = om.automation.get_config(gid)
    assert [p["hostname"] for p in config["processes"]] == HOSTS and config["version"] == version
    hosts = om.deployments.list_hosts(gid)
    assert sorted(h.hostname for h in hosts) == HOSTS
    assert sorted(h.replica_state_name or "" for h in hosts) == ["PRIMARY", "SECONDARY", "SECONDARY"]
    for host in hosts:
        check_host_types(host)
    counted = om.projects._get(f"groups/{gid}")
    assert counted["hostCounts"]["primary"] == 1 and counted["hostCounts"]["secondary"] == 2
    assert counted["replicaSetCount"] == 1 and counted["activeAgentCount"] == len(HOSTS)
    (cluster,) = om.clusters.list(gid)
    assert cluster.type_name == "REPLICA_SET" and cluster.replica_set_name == "rs0"
    assert {h.cluster_id for h in hosts} == {cluster.id}
    assert [h.hostname for h in om.deployments.list_hosts(gid, cluster_id=cluster.id)] == sorted(HOSTS)
    one = om.deployments.get_host_by_name(gid, hosts[0].hostname, hosts[0].port)
    assert one.id == hosts[0].id and om.deployments.get_host(gid, one.id).hostname == one.hostname
    automation_agents = om.agents.list(gid, "AUTOMATION")
    assert sorted(a.hostname for a in automation_agents) == HOSTS
    assert all(a.state_name == "ACTIVE" for a in automation_agents)

    # Backup: the project-wide list names the cluster, the library starts it, a snapshot is taken.
    (backup_config,) = om.backup.list_backup_configs(gid)
    assert backup_config.cluster_id == cluster.id and backup_config.status_name == "INACTIVE"
    started = om.backup._patch(f"groups/{gid}/backupConfigs/{cluster.id}", json={"statusName": "STARTED"})
    assert started["statusName"] == "STARTED"
    assert om.backup.get_backup_config(gid, cluster.id).status_name == "STARTED"
    schedule = om.backup.get_snapshot_schedule(gid, cluster.id)
    assert schedule.cluster_id == cluster.id and isinstance(schedule.snapshot_interval_hours, int)
    sim = SimWorld.open(world)
    set_load(sim, HOSTS, "rs0", WriteLoad(rate=40, keys=100, payload_bytes=32))
    om.backup._post(f"groups/{gid}/clusters/{cluster.id}/snapshots")
    wait_for(lambda: len(om.backup.list_snapshots(gid, cluster.id)) >= 1, 60, what="a snapshot")
    (snapshot, *_) = om.backup.list_snapshots(gid, cluster.id)
    assert snapshot.cluster_id == cluster.id and snapshot.complete
    assert om.backup.get_snapshot(gid, cluster.id, snapshot.id).id == snapshot.id

    # A point-in-time restore: the documents at a position reached now, through the library's job answers.
    found = primary(sim, HOSTS, "rs0")
    assert found is not None
    position, expected = dump_at_a_position(sim, *found)
    job = restore_to(om, gid, cluster.id, position)
    assert om.backup.get_restore_job(gid, cluster.id, job.id).id == job.id
    assert job.id in {j.id for j in om.backup.list_restore_jobs(gid, cluster.id)}
    assert downloaded(om, job, server) == expected

    # A maintenance window over the next hour, as a change-management script opens one, read back typed.
    start = datetime.now(UTC)
    window = {
        "startDate": start.isoformat(),
        "endDate": (start + timedelta(hours=1)).isoformat(),
        "alertTypeNames": ["HOST", "REPLICA_SET"],
        "description": "published client",
    }
    opened = om.maintenance_windows._post(f"groups/{gid}/maintenanceWindows", json=window)
    (listed,) = om.maintenance_windows.list(gid)
    assert listed.id == opened["id"] and listed.alert_type_names == ["HOST", "REPLICA_SET"]
    assert iso(listed.end_date) - iso(listed.start_date) == timedelta(hours=1)
    assert om.maintenance_windows.get(gid, listed.id).description == "published client"

    # The library walks pages itself (pageNum/itemsPerPage): one host per page still lists all of them.
    assert sorted(h.hostname for h in om.deployments.list_hosts(gid, items_per_page=1)) == HOSTS
    # Alerts raised while the set was being initiated (too few healthy members, no primary) close at goal.
    wait_for(lambda: om.alerts.list(gid, status="OPEN") == [], 30, what="the start-up alerts closing")
    assert all(a.status == "CLOSED" for a in om.alerts.list(gid))

    # Restoration Mode is read as a resource of the project; refusals map to the library's errors.
    mode = om.projects._get(f"groups/{gid}/restorationMode")
    assert mode["state"] == "INACTIVE"
    with pytest.raises(OpsManagerNotFoundError) as missing:
        om.projects.get_by_name("no-such-project")
    assert missing.value.error_code
    with pytest.raises(OpsManagerBadRequestError) as bad:
        om.agents.list(gid, "NOT_A_TYPE")
    assert bad.value.error_code and "AUTOMATION" in (bad.value.detail or "")


def restore_to(om: OpsManagerClient, gid: str, cluster_id: str, position: int) -> RestoreJob:
    """A restore job to the BSON ``position``, followed until it finishes, as the library decodes it."""
    target = {"oplogTs": position >> 32, "oplogInc": position & 0xFFFFFFFF}

    def accepted() -> dict[str, Any] | None:
        try:
            body = {**target, "delivery": {"methodName": "HTTP", "expirationHours": 1}}
            return om.backup._post(f"groups/{gid}/clusters/{cluster_id}/restoreJobs", json=body)
        except OpsManagerBadRequestError:  # the window has not reached the position yet
            return None

    answer = wait_for(accepted, 60, what="the PITR window reaching the target")
    (created,) = answer["results"]
    assert answer["totalCount"] == 1
    job = RestoreJob.from_dict(created)
    iso(job.created)

    def finished() -> RestoreJob | None:
        current = om.backup.get_restore_job(gid, cluster_id, job.id)
        return current if current.status_name == "FINISHED" else None

    done: RestoreJob = wait_for(finished, 60, what="the restore job finishing")
    return done


def downloaded(
    om: OpsManagerClient, job: RestoreJob, server: ServerProcess
) -> list[tuple[str, dict[str, Any]]]:
    raw = om.backup.get_restore_job(job.group_id, job.cluster_id, job.id, as_obj=False)
    delivery = raw["delivery"]
    iso(delivery["expires"])
    response = httpx.get(delivery["url"], timeout=60, verify=server.verify)
    assert response.status_code == 200, response.text
    return [(d["ns"], d["doc"]) for d in map(json.loads, response.text.splitlines()) if d]

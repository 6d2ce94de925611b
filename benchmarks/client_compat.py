"""How many of the calls an Ops Manager tool makes work against opsmgr: the published ``opsmanager`` client
(unchanged) against a real ``opsmgr server`` with a 3-member simulated replica set run by real agents, backup
started, one snapshot and one restore job.

Each call counts as working when the library raises nothing and every field the Ops Manager reference types
has that type (ISO-8601 strings for instants, integers for counters and epoch milliseconds): a Go or Java
client fails to decode a swapped type even where this library's dataclasses do not notice. Prints each call's
outcome and the share that works; asserts nothing. Run it against another source tree (an older commit) with
that tree first on ``PYTHONPATH``: the server and agents are then that tree's.

    .venv/bin/python benchmarks/client_compat.py
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/client_compat.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import print_header, table, wait_for, workdir
from opsmanager import OpsManagerClient

import opsmgr
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import ServerProcess, free_port

HOSTS = [f"compat{i}.bench.sim" for i in range(3)]
Call = Callable[[OpsManagerClient, dict[str, str]], object]


def iso(value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not an ISO-8601 string")
    datetime.fromisoformat(value.replace("Z", "+00:00"))


def typed(value: object, kind: type) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TypeError(f"{value!r} is not {kind.__name__}")


def ids_of(ids: dict[str, str]) -> tuple[str, str]:
    return ids["group"], ids["cluster"]


def _hosts(om: OpsManagerClient, ids: dict[str, str]) -> None:
    hosts = om.deployments.list_hosts(ids["group"])
    if len(hosts) != 3:
        raise AssertionError(f"{len(hosts)} hosts")
    for h in hosts:
        iso(h.last_ping)
        iso(h.created)
        if not h.cluster_id:
            raise AssertionError("no clusterId")


def _host(om: OpsManagerClient, ids: dict[str, str]) -> None:
    first = om.deployments.list_hosts(ids["group"])[0]
    if om.deployments.get_host(ids["group"], first.id).hostname != first.hostname:
        raise AssertionError("another host")


def _host_by_name(om: OpsManagerClient, ids: dict[str, str]) -> None:
    om.deployments.get_host_by_name(ids["group"], HOSTS[0], 27017)


def _cluster_hosts(om: OpsManagerClient, ids: dict[str, str]) -> None:
    if len(om.deployments.list_hosts(ids["group"], cluster_id=ids["cluster"])) != 3:
        raise AssertionError("clusterId filter")


def _agents(kind: str) -> Call:
    def call(om: OpsManagerClient, ids: dict[str, str]) -> None:
        agents = om.agents.list(ids["group"], kind)
        if sorted(a.hostname for a in agents) != HOSTS:
            raise AssertionError("agents")
        for a in agents:
            iso(a.last_ping)

    return call


def _agent_keys(om: OpsManagerClient, ids: dict[str, str]) -> None:
    for key in om.agents.list_api_keys(ids["group"], as_obj=False):
        typed(key["createdTime"], int)


def _backup_configs(om: OpsManagerClient, ids: dict[str, str]) -> None:
    (config,) = om.backup.list_backup_configs(ids["group"])
    if config.cluster_id != ids["cluster"]:
        raise AssertionError("clusterId")


def _snapshots(om: OpsManagerClient, ids: dict[str, str]) -> None:
    snaps = om.backup.list_snapshots(ids["group"], ids["cluster"], as_obj=False)
    typed(snaps[0]["created"]["date"], str)
    iso(snaps[0]["created"]["date"])


def _restore_jobs(om: OpsManagerClient, ids: dict[str, str]) -> None:
    for job in om.backup.list_restore_jobs(ids["group"], ids["cluster"], as_obj=False):
        iso(job["created"])
        iso(job["delivery"]["expires"])


def _create_restore(om: OpsManagerClient, ids: dict[str, str]) -> None:
    snap = om.backup.list_snapshots(ids["group"], ids["cluster"])[0]
    body = {"snapshotId": snap.id, "delivery": {"methodName": "HTTP", "expirationHours": 1}}
    answer = om.backup._post(f"groups/{ids['group']}/clusters/{ids['cluster']}/restoreJobs", json=body)
    iso(answer["results"][0]["created"])


def _create_project(om: OpsManagerClient, ids: dict[str, str]) -> None:
    answer = om.projects._post("groups", json={"name": "compat-created", "orgId": ids["org"]})
    typed(answer["agentApiKey"], str)


def _config_round_trip(om: OpsManagerClient, ids: dict[str, str]) -> None:
    config = om.automation.get_config(ids["group"])
    before = config["version"]
    answer = om.automation._put(f"groups/{ids['group']}/automationConfig", json=config)
    if answer["version"] != before:
        raise AssertionError("a GET put back unchanged changed the version")


def _maintenance_windows(om: OpsManagerClient, ids: dict[str, str]) -> None:
    start = datetime.now(UTC)
    window = {
        "startDate": start.isoformat(),
        "endDate": (start + timedelta(hours=1)).isoformat(),
        "alertTypeNames": ["HOST"],
    }
    om.maintenance_windows._post(f"groups/{ids['group']}/maintenanceWindows", json=window)
    for w in om.maintenance_windows.list(ids["group"]):
        iso(w.start_date)


CALLS: list[tuple[str, Call]] = [
    ("organizations.list", lambda om, ids: om.organizations.list()),
    ("organizations.get", lambda om, ids: om.organizations.get(ids["org"])),
    ("organizations.list_projects", lambda om, ids: om.organizations.list_projects(ids["org"])),
    ("projects.list", lambda om, ids: om.projects.list()),
    ("projects.get", lambda om, ids: iso(om.projects.get(ids["group"]).created)),
    ("projects.get_by_name", lambda om, ids: om.projects.get_by_name("compat")),
    ("POST groups (agentApiKey)", _create_project),
    ("clusters.list", lambda om, ids: om.clusters.list(ids["group"])),
    ("clusters.get", lambda om, ids: om.clusters.get(ids["group"], ids["cluster"])),
    ("clusters.list_all", lambda om, ids: om.clusters.list_all()),
    ("deployments.list_hosts", _hosts),
    ("deployments.get_host", _host),
    ("deployments.get_host_by_name", _host_by_name),
    ("deployments.list_hosts(cluster_id)", _cluster_hosts),
    ("agents.list(AUTOMATION)", _agents("AUTOMATION")),
    ("agents.list(MONITORING)", _agents("MONITORING")),
    ("agents.list(BACKUP)", _agents("BACKUP")),
    ("agents.list_links", lambda om, ids: om.agents.list_links(ids["group"])),
    ("agents.list_api_keys", _agent_keys),
    ("automation.get_config", lambda om, ids: om.automation.get_config(ids["group"])),
    ("automation.get_status", lambda om, ids: om.automation.get_status(ids["group"])),
    ("automationConfig GET -> PUT", _config_round_trip),
    ("backup.list_backup_configs", _backup_configs),
    ("backup.get_backup_config", lambda om, ids: om.backup.get_backup_config(*ids_of(ids))),
    (
        "backup.get_snapshot_schedule",
        lambda om, ids: om.backup.get_snapshot_schedule(ids["group"], ids["cluster"]),
    ),
    ("backup.list_snapshots", _snapshots),
    ("POST restoreJobs", _create_restore),
    ("backup.list_restore_jobs", _restore_jobs),
    ("alerts.list", lambda om, ids: om.alerts.list(ids["group"])),
    ("maintenanceWindows POST + list", _maintenance_windows),
]


def outcome(call: Call, om: OpsManagerClient, ids: dict[str, str]) -> str:
    try:
        call(om, ids)
    except Exception as exc:  # each call's failure is the figure, whatever its kind
        return f"FAILS: {type(exc).__name__}: {str(exc)[:90]}"
    return "works"


def prepare(server: ServerProcess, owner: dict[str, Any], root: Path) -> tuple[dict[str, str], Deployment]:
    """A project at goal with backup started and a snapshot, through the plain API (not the library)."""
    d = Deployment(server, owner, root, "compat")
    for host in HOSTS:
        d.agent(host)
    d.wait_goal(d.put(replica_set_config(HOSTS)), 3)
    cluster = d.api.get(f"/groups/{d.group_id}/clusters").json()["results"][0]["id"]
    d.api.patch(f"/groups/{d.group_id}/backupConfigs/{cluster}", json={"statusName": "STARTED"})
    d.api.post(f"/groups/{d.group_id}/clusters/{cluster}/snapshots")
    wait_for(
        lambda: d.api.get(f"/groups/{d.group_id}/clusters/{cluster}/snapshots").json()["totalCount"] > 0,
        60,
        what="a snapshot",
    )
    org = d.api.get(f"/groups/{d.group_id}").json()["orgId"]
    return {"group": d.group_id, "cluster": cluster, "org": org}, d


def main() -> None:
    print_header(f"Ops Manager client compatibility (opsmgr from {Path(opsmgr.__file__).parent})")
    with workdir(None, "client-compat") as root:
        server = ServerProcess(root / "data", free_port()).start()
        try:
            owner = server.create_key("ORG_OWNER")
            ids, deployment = prepare(server, owner, root)
            try:
                with server.ops_manager_client(owner) as om:
                    rows = [(name, outcome(call, om, ids)) for name, call in CALLS]
            finally:
                deployment.close()
        finally:
            server.stop()
    print(table(["call", "outcome"], rows))
    works = sum(1 for _, o in rows if o == "works")
    print(f"\n{works} of {len(rows)} calls work ({100 * works / len(rows):.0f} %)")


if __name__ == "__main__":
    main()

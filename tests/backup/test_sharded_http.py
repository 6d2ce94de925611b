"""A sharded cluster's backup through a real server, its agents' part played by posting what they post (an
initial sync and oplog slices of each part): ``PATCH .../backupConfigs/{shardedClusterId}`` backs up every
shard and the config server set, its snapshots list every part at one point, its ``pitrWindow`` is the
intersection of theirs, and one restore job (a download, or an automated restore into the cluster) restores
every part to the same point, with each part's progress. Refusals are 4xx JSON bodies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr.automation.templates import sharded_cluster_config
from opsmgr.backup.wire import encode_slice
from tests.agent_protocol import AgentProject
from tests.configs import replica_set_config
from tests.procs import ServerProcess

HOSTS = ["sa.example.net", "sb.example.net", "sc.example.net"]
PARTS = ("csrs", "sh0", "sh1")
T0 = int(time.time()) - 3600  # the sources' clock: an hour ago, so no part's oplog is in the future


def pos(second: int, inc: int = 1) -> int:
    return ((T0 + second) << 32) | inc


class Sharded(AgentProject):
    """A project whose config is one sharded cluster ``c1`` (config servers ``csrs``, shards ``sh0`` and
    ``sh1``, a member of each on every host, two mongos)."""

    def __init__(self, server: ServerProcess, api: httpx.Client, name: str) -> None:
        super().__init__(server.url, api, name, sharded_cluster_config(HOSTS, shards=2, routers=2))
        views = api.get(f"/groups/{self.gid}/clusters").json()["results"]
        self.cid = next(v["id"] for v in views if v["typeName"] == "SHARDED_REPLICA_SET")
        self.part_ids = {v["replicaSetName"]: v["id"] for v in views if "replicaSetName" in v}
        self.acked: dict[str, int] = {}

    def backup(self, path: str) -> str:
        return f"/agents/api/backup/v1/{self.gid}{path}"

    def sources(self) -> dict[str, str]:
        jobs = self.agent.get(self.backup("/jobs"), params={"hostname": HOSTS[0]}).json()
        return {s["replicaSetName"]: s["sourceId"] for s in jobs["sources"]}

    def sync(self, source: str, second: int, docs: list[list[Any]]) -> None:
        r = self.agent.post(self.backup(f"/sources/{source}/sync"), json={"position": pos(second)})
        assert r.status_code == 200, r.text
        sync = self.backup(f"/sources/{source}/sync/{r.json()['syncId']}")
        assert self.agent.post(sync + "/documents", json={"docs": docs}).status_code == 200
        done = self.agent.post(sync + "/finish", json={"minValid": pos(second)})
        assert done.status_code == 200, done.text
        self.acked[source] = done.json()["acknowledged"]

    def sync_each_part(self) -> dict[str, str]:
        """Each part (its source) synced at its own second (0, 2, 4) with one document, then its first
        snapshot awaited (the daemon takes it at the sync, before any slice is shipped)."""
        sources = self.sources()
        assert set(sources) == set(PARTS)
        for second, part in ((0, "csrs"), (2, "sh0"), (4, "sh1")):
            self.sync(sources[part], second, [["app.users", {"_id": f"{part}-initial"}]])

        def first_snapshots() -> bool:
            daemon = self.api.get("/admin/backup/daemon", params={"itemsPerPage": 500}).json()["results"]
            return {j["sourceId"] for j in daemon if j["lastSnapshotAt"] is not None} >= set(sources.values())

        wait_for(first_snapshots)
        return sources

    def ship(self, source: str, second: int, doc_ids: list[str]) -> None:
        """One slice up to ``second``, inserting ``doc_ids`` at that second (none: an empty slice)."""
        entries = [
            {"ts": pos(second, i + 1), "op": "i", "ns": "app.users", "o": {"_id": d}}
            for i, d in enumerate(doc_ids)
        ]
        end = pos(second, max(len(doc_ids), 1))
        r = self.agent.post(
            self.backup(f"/sources/{source}/slices"),
            content=encode_slice(self.acked[source], end, entries),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 200 and r.json()["status"] == "ACCEPTED", r.text
        self.acked[source] = end

    def automated_restore(self, oplog_ts: int) -> tuple[str, dict[str, Any]]:
        """An automated restore of the cluster into itself to ``oplog_ts``: its jobs route and the job."""
        jobs = f"/groups/{self.gid}/clusters/{self.cid}/restoreJobs"
        delivery = {"methodName": "AUTOMATED_RESTORE", "targetGroupId": self.gid, "targetClusterId": self.cid}
        r = self.api.post(jobs, json={"oplogTs": oplog_ts, "oplogInc": 1, "delivery": delivery})
        assert r.status_code == 200, r.text
        (job,) = r.json()["results"]
        return jobs, dict(job)

    def snapshots(self) -> dict[str, Any]:
        r = self.api.get(f"/groups/{self.gid}/clusters/{self.cid}/snapshots")
        assert r.status_code == 200, r.text
        return dict(r.json())


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as c:
        yield c


@pytest.fixture(scope="module")
def cluster(server: ServerProcess, api: httpx.Client) -> Iterator[Sharded]:
    """The cluster backed up: each part synced at its own second (0, 2, 4), then writes to each."""
    c = Sharded(server, api, "sharded-backup")
    r = api.patch(f"/groups/{c.gid}/backupConfigs/{c.cid}", json={"statusName": "STARTED"})
    assert r.status_code == 200 and r.json()["statusName"] == "STARTED", r.text
    sources = c.sync_each_part()
    for second, part, doc in ((10, "sh0", "u1"), (11, "sh1", "u2"), (12, "csrs", "moved"), (13, "sh1", "u3")):
        c.ship(sources[part], second, [doc])
    for part in PARTS:
        c.ship(sources[part], 20, [])

    def snapshotted() -> bool:
        listed = c.snapshots()
        return listed["totalCount"] >= 1 and listed["results"][0]["complete"]

    wait_for(snapshotted)
    yield c
    c.agent.close()


def test_a_sharded_cluster_has_one_backup_configuration_and_backs_up_every_part(
    cluster: Sharded, api: httpx.Client
) -> None:
    configs = api.get(f"/groups/{cluster.gid}/backupConfigs").json()["results"]
    # The sharded cluster's configuration, not its parts'.
    assert [(c["clusterId"], c["statusName"]) for c in configs] == [(cluster.cid, "STARTED")]
    one = api.get(f"/groups/{cluster.gid}/backupConfigs/{cluster.cid}").json()
    assert one["statusName"] == "STARTED"
    # A part alone is backed up with its cluster, never by itself.
    refused = api.patch(
        f"/groups/{cluster.gid}/backupConfigs/{cluster.part_ids['sh0']}", json={"statusName": "STARTED"}
    )
    assert refused.status_code == 409 and cluster.cid in refused.json()["detail"], refused.text
    # Every part's source is shipped by the agents of its members' hosts.
    for host in HOSTS:
        jobs = cluster.agent.get(cluster.backup("/jobs"), params={"hostname": host}).json()
        assert sorted(s["replicaSetName"] for s in jobs["sources"]) == sorted(PARTS)
    # Ops Manager's "get all clusters" counts every part's data in the sharded cluster's.
    summary = next(p for p in api.get("/clusters").json()["results"] if p["groupId"] == cluster.gid)
    (shown,) = summary["clusters"]
    sizes = [p["dataSizeBytes"] for p in cluster.snapshots()["results"][0]["parts"]]
    assert shown["backupEnabled"] and shown["dataSizeBytes"] == sum(sizes) > max(sizes), shown
    # The schedule is every part's.
    schedule = api.patch(
        f"/groups/{cluster.gid}/backupConfigs/{cluster.cid}/snapshotSchedule",
        json={"snapshotIntervalHours": 12},
    )
    assert schedule.status_code == 200 and schedule.json()["snapshotIntervalHours"] == 12, schedule.text
    got = api.get(f"/groups/{cluster.gid}/backupConfigs/{cluster.cid}/snapshotSchedule").json()
    assert got["snapshotIntervalHours"] == 12


def test_its_snapshots_list_every_part_at_one_point_and_its_window_is_the_parts_intersection(
    cluster: Sharded, api: httpx.Client
) -> None:
    listed = cluster.snapshots()
    snap = listed["results"][0]
    # Taken at 0, 2 and 4: the cluster's snapshot stands for 4, which every part reaches.
    assert snap["lastOplogAppliedTimestamp"]["time"] == T0 + 4 and snap["clusterId"] == cluster.cid
    assert [(p["replicaSetName"], p["typeName"], p["clusterId"]) for p in snap["parts"]] == [
        ("csrs", "CONFIG_SERVER_REPLICA_SET", cluster.part_ids["csrs"]),
        ("sh0", "REPLICA_SET", cluster.part_ids["sh0"]),
        ("sh1", "REPLICA_SET", cluster.part_ids["sh1"]),
    ]
    (window,) = listed["pitrWindow"]
    assert (window["start"]["time"], window["end"]["time"]) == (T0 + 4, T0 + 20)
    one = api.get(f"/groups/{cluster.gid}/clusters/{cluster.cid}/snapshots/{snap['id']}")
    assert one.status_code == 200 and one.json()["parts"] == snap["parts"]
    missing = api.get(f"/groups/{cluster.gid}/clusters/{cluster.cid}/snapshots/{'0' * 24}")
    assert missing.status_code == 404 and missing.json()["errorCode"] == "SNAPSHOT_NOT_FOUND"


def _download(api: httpx.Client, url: str) -> dict[str, set[str]]:
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, r.text
    out: dict[str, set[str]] = {part: set() for part in PARTS}
    for line in r.text.splitlines():
        found = json.loads(line)
        out[found["replicaSetName"]].add(found["doc"]["_id"])
    return out


def test_one_download_job_restores_every_part_to_the_same_point(cluster: Sharded, api: httpx.Client) -> None:
    jobs = f"/groups/{cluster.gid}/clusters/{cluster.cid}/restoreJobs"
    body = {"pointInTimeUTCMillis": (T0 + 11) * 1000, "delivery": {"methodName": "HTTP"}}
    r = api.post(jobs, json=body)
    assert r.status_code == 200, r.text
    (job,) = r.json()["results"]
    assert [p["replicaSetName"] for p in job["parts"]] == list(PARTS)
    assert job["timestamp"]["time"] == T0 + 11
    # The whole second 11 (a millisecond names its second's last position): u1 and u2, not what came after.
    assert _download(api, job["delivery"]["url"]) == {
        "csrs": {"csrs-initial"},
        "sh0": {"sh0-initial", "u1"},
        "sh1": {"sh1-initial", "u2"},
    }
    shown = api.get(f"{jobs}/{job['id']}").json()
    assert [p["progress"]["statusName"] for p in shown["parts"]] == ["FINISHED"] * 3
    # A cluster snapshot restores every part to its point.
    snap = cluster.snapshots()["results"][0]
    r = api.post(jobs, json={"snapshotId": snap["id"], "delivery": {"methodName": "HTTP"}})
    assert r.status_code == 200, r.text
    assert _download(api, r.json()["results"][0]["delivery"]["url"]) == {p: {f"{p}-initial"} for p in PARTS}


def test_a_point_outside_the_clusters_window_is_refused_with_its_ranges(
    cluster: Sharded, api: httpx.Client
) -> None:
    jobs = f"/groups/{cluster.gid}/clusters/{cluster.cid}/restoreJobs"
    # At 2 the config servers and sh0 could be restored, sh1 not yet.
    r = api.post(jobs, json={"pointInTimeUTCMillis": (T0 + 2) * 1000, "delivery": {"methodName": "HTTP"}})
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "POINT_IN_TIME_OUTSIDE_WINDOW"
    assert len(r.json()["parameters"]["restorableRanges"]) == 1
    forged = api.post(jobs, json={"snapshotId": "0" * 24, "delivery": {"methodName": "HTTP"}})
    assert forged.status_code == 409 and forged.json()["detail"], forged.text


def test_an_automated_restore_of_the_cluster_is_one_job_with_each_parts_progress(
    cluster: Sharded, api: httpx.Client
) -> None:
    jobs, job = cluster.automated_restore(T0 + 13)
    assert [p["progress"]["statusName"] for p in job["parts"]] == ["QUEUED"] * 3
    config = api.get(f"/groups/{cluster.gid}/automationConfig").json()
    # Every part's members and the mongos are disabled for the restore.
    assert all(p["disabled"] for p in config["processes"])
    documents = cluster.backup(f"/restores/{job['id']}/documents")
    sh1 = cluster.agent.get(documents, params={"replicaSet": "sh1"})
    assert sh1.status_code == 200, sh1.text
    assert {json.loads(line)["doc"]["_id"] for line in sh1.text.splitlines()} == {"sh1-initial", "u2", "u3"}
    assert cluster.agent.get(documents, params={"replicaSet": "nope"}).status_code == 400
    assert cluster.agent.get(documents, params={"replicaSet": "x" * 5000}).status_code in (400, 414, 422)

    def report(names: list[str]) -> None:
        done = cluster.agent.post(
            cluster.backup(f"/restores/{job['id']}/progress"),
            params={"hostname": HOSTS[0]},
            json={"processes": names, "state": "DONE"},
        )
        assert done.status_code == 200, done.text

    members = {p["replicaSetName"]: p["processes"] for p in job["parts"]}
    report(members["csrs"] + members["sh1"][:1])
    shown = api.get(f"{jobs}/{job['id']}").json()
    assert [p["progress"]["statusName"] for p in shown["parts"]] == ["FINISHED", "QUEUED", "RUNNING"]
    assert shown["progress"]["message"] == "1 of 3 parts restored"
    report(members["sh0"] + members["sh1"][1:])
    shown = api.get(f"{jobs}/{job['id']}").json()
    assert shown["statusName"] == "FINISHED" and shown["progress"]["fraction"] == 1.0
    config = api.get(f"/groups/{cluster.gid}/automationConfig").json()
    assert not any(p["disabled"] for p in config["processes"])


def test_a_cancelled_restore_of_the_cluster_names_what_each_process_holds(
    cluster: Sharded, api: httpx.Client
) -> None:
    jobs, job = cluster.automated_restore(T0 + 12)
    members = {p["replicaSetName"]: p["processes"] for p in job["parts"]}
    progress = cluster.backup(f"/restores/{job['id']}/progress")
    for names, state in ((members["csrs"], "DONE"), (members["sh0"][:1], "LOADING")):
        sent = {"processes": names, "state": state}
        assert cluster.agent.post(progress, params={"hostname": HOSTS[0]}, json=sent).status_code == 200
    cancelled = api.delete(f"{jobs}/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["statusName"] == "KILLED", cancelled.text
    what = cancelled.json()["cancellation"]
    assert what["restored"] == sorted(members["csrs"])
    assert what["partiallyLoaded"] == members["sh0"][:1]
    assert sorted(what["unchanged"]) == sorted(members["sh0"][1:] + members["sh1"])  # never a mongos
    parts = api.get(f"{jobs}/{job['id']}").json()["parts"]
    assert [p["progress"]["statusName"] for p in parts] == ["FINISHED", "CANCELLED", "CANCELLED"]
    config = api.get(f"/groups/{cluster.gid}/automationConfig").json()
    assert not any(p["disabled"] for p in config["processes"]), "every process (mongos too) enabled again"
    again = api.delete(f"{jobs}/{job['id']}")
    assert again.status_code == 409 and again.json()["errorCode"] == "RESTORE_JOB_NOT_CANCELLABLE", again.text


def test_refusals_are_4xx_json(server: ServerProcess, cluster: Sharded, api: httpx.Client) -> None:
    gid, cid = cluster.gid, cluster.cid
    reader = api.post(f"/groups/{gid}/apiKeys", json={"desc": "r", "roles": ["GROUP_READ_ONLY"]}).json()
    with server.client(reader) as c:
        assert c.get(f"/groups/{gid}/clusters/{cid}/snapshots").status_code == 200
        for r in (
            c.patch(f"/groups/{gid}/backupConfigs/{cid}", json={"statusName": "STOPPED"}),
            c.post(f"/groups/{gid}/clusters/{cid}/restoreJobs", json={"delivery": {"methodName": "HTTP"}}),
            c.post(f"/groups/{gid}/clusters/{cid}/snapshots/onDemandSnapshot"),
        ):
            assert r.status_code == 403 and r.json()["detail"], r.text
    other = AgentProject(server.url, api, "sharded-backup-other", replica_set_config(HOSTS, rs="lone"))
    outsider = api.post(f"/groups/{other.gid}/apiKeys", json={"desc": "o", "roles": ["GROUP_OWNER"]}).json()
    with server.client(outsider) as c:
        for path in (f"/groups/{gid}/clusters/{cid}/snapshots", f"/groups/{gid}/backupConfigs/{cid}"):
            r = c.get(path)
            assert r.status_code in (401, 403, 404) and r.json()["detail"], r.text
        # Its own project does not know the other's cluster.
        r = c.get(f"/groups/{other.gid}/clusters/{cid}/snapshots")
        assert r.status_code == 404 and r.json()["errorCode"] == "CLUSTER_NOT_FOUND", r.text
    # A sharded cluster is restored into a sharded cluster only.
    lone = api.get(f"/groups/{other.gid}/clusters").json()["results"][0]["id"]
    into = {"methodName": "AUTOMATED_RESTORE", "targetGroupId": other.gid, "targetClusterId": lone}
    r = api.post(
        f"/groups/{gid}/clusters/{cid}/restoreJobs",
        json={"oplogTs": T0 + 13, "oplogInc": 1, "delivery": into},
    )
    assert r.status_code == 400 and "sharded" in r.json()["detail"], r.text
    for bad in ("0" * 24, "x" * 300, "not-an-id"):
        r = api.get(f"/groups/{gid}/clusters/{bad}/snapshots")
        assert r.status_code == 404 and r.json()["detail"], r.text
    r = api.patch(f"/groups/{gid}/backupConfigs/{cid}", json={"statusName": "INACTIVE"})
    assert r.status_code == 400 and "statusName" in r.json()["detail"]
    other.agent.close()


def test_an_on_demand_snapshot_of_the_cluster_snapshots_every_part(
    cluster: Sharded, api: httpx.Client
) -> None:
    """Last in the module: it adds the newest snapshot."""
    r = api.post(f"/groups/{cluster.gid}/clusters/{cluster.cid}/snapshots/onDemandSnapshot")
    assert r.status_code == 200 and r.json()["clusterName"] == "c1", r.text
    assert len(r.json()["snapshotIds"]) == len(PARTS)

    def taken() -> dict[str, Any] | None:
        """The newest snapshot once every part's on-demand snapshot is taken (the daemon takes them one by
        one: until then the cluster's newest snapshot restores some parts from their older ones)."""
        newest = cluster.snapshots()["results"][0]
        ids = sorted(p["snapshotId"] for p in newest["parts"])
        return newest if ids == sorted(r.json()["snapshotIds"]) else None

    newest = wait_for(taken)
    # Every part's head is at 20: the cluster's new snapshot stands for 20, and restores each part from its
    # own on-demand snapshot.
    assert newest["complete"] and newest["lastOplogAppliedTimestamp"]["time"] == T0 + 20, newest
    assert cluster.snapshots()["totalCount"] == 2
    assert all(p["lastOplogAppliedTimestamp"]["time"] == T0 + 20 for p in newest["parts"])


def test_a_shard_added_by_a_config_put_is_backed_up_at_once(server: ServerProcess, api: httpx.Client) -> None:
    """The agents hear of the new shard's backup from the PUT that adds it, not from a later read of a
    backup route."""
    c = Sharded(server, api, "sharded-added-shard")
    try:
        r = api.patch(f"/groups/{c.gid}/backupConfigs/{c.cid}", json={"statusName": "STARTED"})
        assert r.status_code == 200, r.text
        assert set(c.sources()) == set(PARTS)
        config = api.get(f"/groups/{c.gid}/automationConfig").json()
        grown = sharded_cluster_config(HOSTS, shards=3, routers=2)
        grown["version"] = config["version"]
        assert c.put(grown) == config["version"] + 1
        assert set(c.sources()) == {*PARTS, "sh2"}
    finally:
        c.agent.close()

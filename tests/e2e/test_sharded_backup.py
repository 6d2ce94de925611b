"""A sharded cluster's backup and point-in-time restore end to end: a real server, one real ``opsmgr agent``
process per simulated host (sharing a sim world file), a cluster of a config server set and two shards
brought up by the agents, its backup started by its sharded cluster id. Documents are written through a
mongos before and after an instant T (into two databases, which mongos places on the two shards); one
automated restore job of the cluster to T restores every part to T, and afterwards every shard holds exactly
the documents it held at T, each on one shard only, and a count through the mongos is the number written
before T."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.sim.model import SimParams
from opsmgr.sim.world import SimWorld
from tests.agent.sharded_helpers import sharded_config
from tests.deployments import Deployment
from tests.procs import ServerProcess, wait_for
from tests.sharded_support import agents_on_world, wait_goal

pytestmark = pytest.mark.e2e

HOSTS = [f"sbk{i}.e2e.sim" for i in range(3)]
# Two databases, which mongos places on the two shards (each database's primary shard is the one holding
# fewest). No collection is sharded here, which keeps each shard's documents fixed by its database; a sharded
# collection's chunks restored across migrations are benchmarks/sharded_pitr.py's (and tests/backup's).
DATABASES = ("alpha", "beta")
SETS = ("csrs", "sh0", "sh1")
# Idle primaries write a no-op every second, so every part's window keeps up with the clock.
PARAMS = SimParams(noop_interval_s=1.0)

Cluster = tuple[Deployment, SimWorld]


@pytest.fixture
def cluster(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    with agents_on_world(server, owner, tmp_path, request.node.name, HOSTS, PARAMS) as both:
        yield both


def users_on(world: SimWorld, rs: str) -> list[Any]:
    """The ``<db>.users`` documents' ``_id`` on the set's primary (as a client reading that shard sees)."""
    for i, host in enumerate(HOSTS):
        name = f"{rs}_{i}"
        try:
            status = world.rs_status(host, name)
        except Exception:  # a member being restarted does not answer
            continue
        if status is not None and status.my_state.value == "PRIMARY":
            return sorted(doc["_id"] for ns, doc in world.dump(host, name) if ns.endswith(".users"))
    raise AssertionError(f"{rs} has no primary")


def explain(d: Deployment, base: str) -> str:
    """What the daemon has of each part and what the agents said of their backup, for a failure message."""
    listed = d.api.get(f"{base}/snapshots").json()
    daemon = d.api.get("/admin/backup/daemon").json()["results"]
    jobs = [
        {k: j[k] for k in ("replicaSetName", "headAppliedUTCMillis", "lastSnapshotAt", "syncRequired")}
        for j in daemon
    ]
    said = {h: [line for line in a.log().splitlines() if "backup" in line][-3:] for h, a in d.agents.items()}
    shown = f"window {listed.get('pitrWindow')}, {listed.get('totalCount')} snapshots"
    return f"{shown}; parts {jobs}; agents {said}"


def write(world: SimWorld, ids: range) -> None:
    for k in ids:
        world.mongos_write(HOSTS[0], "mongos0", f"{DATABASES[k % 2]}.users", "i", {"_id": k})


def test_a_restore_of_the_cluster_puts_every_shard_at_the_same_instant(cluster: Cluster) -> None:
    d, world = cluster
    version = d.put(sharded_config(2, routers=1, hosts=HOSTS))
    wait_goal(d, version)
    views = d.api.get(f"/groups/{d.group_id}/clusters").json()["results"]
    cid = next(v["id"] for v in views if v["typeName"] == "SHARDED_REPLICA_SET")
    base = f"/groups/{d.group_id}/clusters/{cid}"
    r = d.api.patch(f"/groups/{d.group_id}/backupConfigs/{cid}", json={"statusName": "STARTED"})
    assert r.status_code == 200, r.text

    def backed_up() -> bool:
        return bool(d.api.get(f"{base}/snapshots").json().get("pitrWindow"))

    wait_for(backed_up, 45, interval=0.3, what="every part synced and snapshotted")
    write(world, range(0, 40))
    instant = int(time.time())  # T: the end of this second
    wait_for(lambda: time.time() >= instant + 1.2, 5, what="the next second")
    write(world, range(40, 80))  # after T: never restored
    before = {rs: users_on(world, rs) for rs in ("sh0", "sh1")}
    assert sorted(before["sh0"] + before["sh1"]) == list(range(80))
    assert before["sh0"] and before["sh1"], "each shard holds a database"

    def restorable() -> bool:
        listed = d.api.get(f"{base}/snapshots").json()
        window = listed.get("pitrWindow") or []
        return any(w["start"]["time"] <= instant < w["end"]["time"] for w in window)

    try:
        wait_for(restorable, 45, interval=0.3, what="the cluster's window past T")
    except AssertionError:
        raise AssertionError(explain(d, base)) from None
    snap = d.api.get(f"{base}/snapshots").json()["results"][-1]
    assert [p["replicaSetName"] for p in snap["parts"]] == list(SETS)

    delivery = {"methodName": "AUTOMATED_RESTORE", "targetGroupId": d.group_id, "targetClusterId": cid}
    r = d.api.post(
        f"{base}/restoreJobs", json={"pointInTimeUTCMillis": instant * 1000 + 999, "delivery": delivery}
    )
    assert r.status_code == 200, r.text
    (job,) = r.json()["results"]

    def ended() -> dict[str, Any] | None:
        shown = dict(d.api.get(f"{base}/restoreJobs/{job['id']}").json())
        return shown if shown["phase"] in ("FINISHED", "FAILED", "CANCELLED") else None

    done = wait_for(ended, 60, interval=0.3, what="the restore job ended")
    assert done["phase"] == "FINISHED", (
        done.get("failure"),
        [line[-2500:] for line in d.server.log().splitlines() if '"ERROR"' in line or "Error" in line][-3:],
    )
    assert [p["progress"]["statusName"] for p in done["parts"]] == ["FINISHED"] * 3
    version = int(d.api.get(f"/groups/{d.group_id}/automationConfig").json()["version"])
    wait_goal(d, version)  # the cluster running again

    after = {rs: users_on(world, rs) for rs in ("sh0", "sh1")}
    every = sorted(k for ids in after.values() for k in ids)
    assert every == list(range(40)), "each document written before T on exactly one shard, none after"
    for rs in ("sh0", "sh1"):
        assert after[rs] == [k for k in before[rs] if k < 40], f"{rs} holds what it held at T"
    counts = [world.mongos_count(HOSTS[0], "mongos0", f"{db}.users") for db in DATABASES]
    assert sum(c.count for c in counts) == 40 and not any(c.unreachable for c in counts), counts

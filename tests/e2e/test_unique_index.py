"""The supervised unique index build end to end: a real server, one real ``opsmgr agent`` per simulated host
of a shared sim world, the public API and the real ``opsmgr index`` console script.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.drivers.base import CommandConflict, MemberState
from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import OPSMGR, ServerProcess, run_cli, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"node{i}.ix.sim" for i in range(3)]
NAMES = [f"rs0_{i}" for i in range(3)]


@pytest.fixture
def deployment(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    d = Deployment(server, owner, tmp_path, request.node.name[:60])
    try:
        for host in HOSTS:
            d.agent(host)
        d.wait_goal(d.put(replica_set_config(HOSTS)), 3)
        yield d
    finally:
        d.close()


@pytest.fixture
def world(deployment: Deployment) -> Iterator[SimWorld]:
    w = SimWorld.open(deployment.root / "world.sqlite")
    try:
        yield w
    finally:
        w.close()


def primary_of(world: SimWorld) -> tuple[str, str]:
    for host, name in zip(HOSTS, NAMES, strict=True):
        status = world.rs_status(host, name)
        if status is not None and status.my_state is MemberState.PRIMARY:
            return host, name
    raise AssertionError("no primary")


def seed(deployment: Deployment, world: SimWorld, ns: str, docs: list[dict[str, Any]]) -> None:
    """Write ``docs`` and wait until the primary's agent reports the position after them (the build's oplog
    watch starts from that report)."""
    set_id = world.set_id_of(*primary_of(world))
    assert set_id is not None
    last = max(world.write(set_id, ns, "i", doc) for doc in docs)

    def reported() -> bool:
        hosts = [h for h in deployment.hosts() if h["replicaStateName"] == "PRIMARY"]
        return bool(hosts) and (hosts[0]["optimeTs"] or 0) >= last

    wait_for(reported, 30, interval=0.2, what="the primary's agent reporting the seeded writes")


def builds_path(d: Deployment, build_id: str = "") -> str:
    return f"/groups/{d.group_id}/uniqueIndexBuilds" + (f"/{build_id}" if build_id else "")


def finished(d: Deployment, build_id: str, timeout: float = 120) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        build = dict(d.api.get(builds_path(d, build_id)).json())
        return build if build["state"] in ("DONE", "ABORTED") else None

    try:
        return dict(wait_for(final, timeout, interval=0.3, what=f"build {build_id} to finish"))
    except AssertionError:
        logs = "\n".join(f"--- {h}\n{a.log()[-3000:]}" for h, a in d.agents.items())
        raise AssertionError(f"{d.api.get(builds_path(d, build_id)).json()}\n{logs}") from None


def index_names(world: SimWorld, ns: str) -> dict[str, set[str]]:
    return {
        name: {ix["name"] for ix in world.list_indexes(host, name, ns) if ix.get("unique")}
        for host, name in zip(HOSTS, NAMES, strict=True)
    }


def assert_back_in_set_and_unlocked(d: Deployment, world: SimWorld) -> None:
    version = int(d.status()["goalVersion"])
    d.wait_goal(version, 3)
    for host, name in zip(HOSTS, NAMES, strict=True):
        assert world.observe(host, name).mode == "replset" and world.observe(host, name).port == 27017
        with pytest.raises(CommandConflict, match="not locked"):
            world.fsync_unlock(host, name)


def test_build_with_the_primary_held_succeeds_and_joins_the_config(
    deployment: Deployment, world: SimWorld
) -> None:
    seed(deployment, world, "shop.orders", [{"_id": i, "orderNo": 1000 + i} for i in range(20)])
    r = deployment.api.post(
        builds_path(deployment),
        json={
            "rsName": "rs0",
            "dbName": "shop",
            "collectionName": "orders",
            "key": [["orderNo", 1]],
            "lockPrimaryWrites": True,
        },
    )
    assert r.status_code == 201, r.text
    build = r.json()
    assert build["state"] == "AWAITING_CONFIRMATION" and build["members"][-1] == primary_of(world)[1]
    again = deployment.api.post(
        builds_path(deployment),
        json={"rsName": "rs0", "dbName": "shop", "collectionName": "other", "key": [["x", 1]]},
    )
    assert again.status_code == 409, "one build per replica set at a time"

    r = deployment.api.post(
        builds_path(deployment, build["id"]) + "/confirm", json={"writesStopped": True, "operator": "e2e"}
    )
    assert r.status_code == 200 and r.json()["state"] == "LOCKING_WRITES", r.text
    done = finished(deployment, build["id"])
    assert done["state"] == "DONE", done
    assert done["progress"] == {"done": 3, "total": 3} and done["confirmedBy"] == "e2e"
    assert all(names == {"orderNo_1"} for names in index_names(world, "shop.orders").values())

    config = deployment.api.get(f"/groups/{deployment.group_id}/automationConfig").json()
    assert {
        "dbName": "shop",
        "collectionName": "orders",
        "rsName": "rs0",
        "key": [["orderNo", 1]],
        "options": {"unique": True, "name": "orderNo_1"},
    } in config["indexConfigs"]
    assert_back_in_set_and_unlocked(deployment, world)
    # The index is enforced on the primary now.
    set_id = world.set_id_of(*primary_of(world))
    assert set_id is not None
    with pytest.raises(CommandConflict, match="duplicate key"):
        world.write(set_id, "shop.orders", "i", {"_id": 99, "orderNo": 1000})


def test_a_write_during_the_build_aborts_it_and_drops_the_index_everywhere(
    deployment: Deployment, world: SimWorld
) -> None:
    seed(deployment, world, "app.events", [{"_id": "seed", "n": -1, "v": 0}])
    r = deployment.api.post(
        builds_path(deployment),
        json={"rsName": "rs0", "dbName": "app", "collectionName": "events", "key": [["n", 1]]},
    )
    assert r.status_code == 201, r.text
    build_id = r.json()["id"]
    set_id = world.set_id_of(*primary_of(world))
    assert set_id is not None
    r = deployment.api.post(builds_path(deployment, build_id) + "/confirm", json={"writesStopped": True})
    assert r.status_code == 200, r.text
    # The application did not really stop: its writes (unique by construction) continue during the build.
    world.set_write_load(set_id, WriteLoad(rate=5, namespaces=("app.events",), keys=50))
    try:
        aborted = finished(deployment, build_id)
    finally:
        world.set_write_load(set_id, WriteLoad(rate=0, namespaces=("app.events",)))
    assert aborted["state"] == "ABORTED", aborted
    assert "a write to app.events" in aborted["reason"] and "happened during the build" in aborted["reason"]
    assert set(aborted["toDrop"]) <= set(aborted["dropped"])
    assert all(not names for names in index_names(world, "app.events").values())
    config = deployment.api.get(f"/groups/{deployment.group_id}/automationConfig").json()
    assert not any(e["collectionName"] == "events" for e in config.get("indexConfigs", []))
    assert_back_in_set_and_unlocked(deployment, world)


def test_cli_shows_progress_and_exits_by_outcome(deployment: Deployment, world: SimWorld) -> None:
    seed(
        deployment,
        world,
        "shop.carts",
        [{"_id": 1, "cartNo": 1, "sku": "a"}, {"_id": 2, "cartNo": 2, "sku": "a"}],
    )
    key = deployment.api_owner
    env = {
        "OPSMGR_URL": deployment.server.url,
        "OPSMGR_PUBLIC_KEY": key["publicKey"],
        "OPSMGR_PRIVATE_KEY": key["privateKey"],
        "OPSMGR_GROUP": deployment.group_id,
        "COLUMNS": "200",
    }
    common = ["index", "build-unique", "--rs", "rs0", "--db", "shop", "--collection", "carts"]
    ok = run_cli(*common, "--key", "cartNo:1", "--yes-writes-stopped", env=env, timeout=150)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "DONE: 3 members have the index" in ok.stdout and "100%" in ok.stdout

    # Two carts share a sku: the first member refuses the unique index and the build is undone.
    bad = run_cli(*common, "--key", "sku:1", "--yes-writes-stopped", env=env, timeout=150)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "ABORTED" in bad.stderr and "duplicate key" in bad.stderr
    assert all(names == {"cartNo_1"} for names in index_names(world, "shop.carts").values())

    listed = run_cli("index", "builds", env=env)
    assert listed.returncode == 0 and "DONE" in listed.stdout and "ABORTED" in listed.stdout

    unconfirmed = subprocess.run(
        [*OPSMGR, *common, "--key", "cartNo:-1"],
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert unconfirmed.returncode == 1 and "cancelled" in unconfirmed.stderr
    builds = deployment.api.get(builds_path(deployment)).json()["results"]
    assert builds[-1]["state"] == "ABORTED" and "cancelled" in builds[-1]["reason"]


def test_a_rolling_change_during_a_build_shares_its_lease_and_both_finish(
    deployment: Deployment, world: SimWorld
) -> None:
    """A version change PUT while a unique build is under way on the same set: the build and the rolling
    change take turns under the set's one maintenance lease, so never two members are out at once."""
    seed(deployment, world, "shop.items", [{"_id": i, "itemNo": i} for i in range(10)])
    r = deployment.api.post(
        builds_path(deployment),
        json={"rsName": "rs0", "dbName": "shop", "collectionName": "items", "key": [["itemNo", 1]]},
    )
    assert r.status_code == 201, r.text
    build_id = r.json()["id"]
    most_out = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal most_out
        while not stop.wait(0.05):
            try:
                view = next(v for v in world.replica_sets() if v.name == "rs0")
            except Exception:  # a busy world file: the next sample will do
                continue
            out = [m for m in view.members if m.state.value not in ("PRIMARY", "SECONDARY", "ARBITER")]
            most_out = max(most_out, len(out))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        r = deployment.api.post(builds_path(deployment, build_id) + "/confirm", json={"writesStopped": True})
        assert r.status_code == 200, r.text
        # Wait for the build to take its first member out, then ask for a rolling change of the same set.
        wait_for(
            lambda: (
                deployment.api.get(builds_path(deployment, build_id)).json()["built"]
                or deployment.api.get(builds_path(deployment, build_id)).json()["state"] != "BUILDING"
                or any(world.observe(h, n).mode == "standalone" for h, n in zip(HOSTS, NAMES, strict=True))
            ),
            30,
            interval=0.05,
            what="the build under way",
        )
        upgraded = replica_set_config(HOSTS, "rs0", "7.0.6")
        upgraded["indexConfigs"] = (
            deployment.api.get(f"/groups/{deployment.group_id}/automationConfig")
            .json()
            .get("indexConfigs", [])
        )
        version = deployment.put(upgraded)
        done = finished(deployment, build_id, timeout=180)
        assert done["state"] == "DONE", done

        def rolled() -> bool:
            changes = deployment.api.get(f"/groups/{deployment.group_id}/maintenance").json()["results"]
            return bool(changes) and all(c["state"] == "DONE" for c in changes)

        wait_for(rolled, 180, interval=0.3, what="the rolling change to finish")
        deployment.wait_goal(max(version, int(deployment.status()["goalVersion"])), 3, timeout=180)
    finally:
        stop.set()
        sampler.join(5)
    assert most_out <= 1, f"{most_out} members were out at once"
    assert all(names == {"itemNo_1"} for names in index_names(world, "shop.items").values())
    assert all(world.observe(h, n).version == "7.0.6" for h, n in zip(HOSTS, NAMES, strict=True))

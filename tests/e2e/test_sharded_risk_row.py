"""The seed's risk row "New shard with migrated chunks", both ways, with a real primary server backed up by a
real secondary, real agent processes on a shared sim world and the real restore of the application database.

A sharded cluster (a config server set, shards ``sh0`` and ``sh1``, a mongos) holds ``app.users``, written
through the mongos; T0 is taken then, and the secondary has the primary's application database up to it.
After T0 a shard ``sh2`` (on a host of its own) is added by a new automation config version, and the
balancer migrates a chunk to it: its documents then live only on ``sh2``. The primary is stopped, its
application database restored to T0 with ``opsmgr backup restore-stores --app-only``, and it is started:

- with Restoration Mode (the default) the project reconciles on the agents' newer config: ``sh2`` keeps
  running, nothing is stopped, and every document is still counted through the mongos;
- with ``mms.restorationMode.enabled=false`` the agents take the restored config, which has no ``sh2``:
  its agent stops it, and the count through the mongos drops by exactly the documents that had migrated
  to it, which can no longer be read. That is the harm the mode prevents, shown rather than claimed.

Without the mode the coordinating mongos's agent also starts draining ``sh2`` (``agent.sharding``: a shard
no longer in ``shards[]`` is removed), which races the stop. The sets have one member each, so that the
new shard stops in the cycle its agent first polls; a migration lasts :data:`PARAMS` ``migration_s``
(real chunk migrations take long too), longer than the agents' longest retry interval after the server
was unreachable (30 poll intervals: 6 s here), so whichever agent polls the restarted server first, the
shard is gone before the drain could commit. ``sh2`` is on another host than the coordinating mongos
because an agent makes one move a cycle and the drain, re-sent every cycle, would hold back the stop on
the same host.

The two cases share one setup (module fixture), in this order: the reconciliation leaves the cluster as the
setup made it, so the case without the mode restores to the same T0 after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from opsmgr.errors import OpsmgrError
from opsmgr.sim.model import SimParams
from opsmgr.sim.world import SimWorld
from tests.agent.sharded_helpers import CSRS, sharded_config
from tests.deployments import Deployment
from tests.procs import wait_for
from tests.secondary_support import SecondaryPair, now_ms, primary_with_secondary
from tests.sharded_support import Client, wait_goal

pytestmark = pytest.mark.e2e

HOST, NEW_HOST = "risk0.e2e.sim", "risk1.e2e.sim"
NEW_SHARD = "sh2"
NEW_MEMBER = f"{NEW_SHARD}_0"
NS = "app.users"
# Keyed on _id, so that a read by _id needs only the shard owning it.
USERS = {"_id": NS, "key": [["_id", 1]], "unique": False}
DOCS = 120
# Three chunks: with two shards the balancer moves one (2 and 1); a third shard gets one more (1, 1, 1).
PARAMS = SimParams(initial_chunks=3, migration_s=10.0, balancer_round_s=1.0)


def config(shards: int) -> dict[str, Any]:
    """The cluster with ``shards`` shards, on :data:`HOST` (ports apart) but ``sh2``, on :data:`NEW_HOST`."""
    goal = sharded_config(shards, members=1, hosts=[HOST], collections=[USERS])
    for process in goal["processes"]:
        if process["name"] == NEW_MEMBER:
            process["hostname"] = NEW_HOST
    return goal


@dataclass
class Row:
    pair: SecondaryPair
    d: Deployment
    world: SimWorld
    client: Client
    t0: int
    restored_version: int


@dataclass(frozen=True)
class Rollback:
    """What held when the primary was stopped, and where each agent's log stood at its restart."""

    count: int
    on_new_shard: int
    new_shard_ids: list[Any]
    marks: dict[str, int]

    def log_since(self, d: Deployment, host: str) -> str:
        return d.agents[host].log()[self.marks[host] :]


@pytest.fixture(scope="module")
def row(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Row]:
    root = tmp_path_factory.mktemp("risk-row")
    world = SimWorld.open(root / "world.sqlite", params=PARAMS)
    try:
        with primary_with_secondary(root) as pair:
            d = Deployment(pair.primary, pair.primary_key, root, "risk-row")
            try:
                yield _set_up(pair, d, world)
            finally:
                d.close()
    finally:
        world.close()


def _set_up(pair: SecondaryPair, d: Deployment, world: SimWorld) -> Row:
    """The cluster at T0 (two shards, documents written), then a third shard holding migrated documents."""
    for host in (HOST, NEW_HOST):
        d.agent(host)
    v1 = d.put(config(2))
    wait_goal(d, v1)
    client = Client(world, HOST, "mongos0", CSRS)
    client.insert(NS, [{"_id": k, "name": f"user{k}"} for k in range(DOCS)])
    pair.wait_snapshots()
    t0 = now_ms()
    pair.wait_caught_up()

    wait_goal(d, d.put(config(3)))
    wait_for(
        lambda: (
            (client.documents_per_shard().get(NEW_SHARD) or 0) > 0
            and world.sharded_cluster(CSRS).migration is None
        ),
        60,
        interval=0.2,
        what=f"the balancer migrating a chunk to {NEW_SHARD}",
    )
    return Row(pair, d, world, client, t0, v1)


def roll_back(row: Row, *, restoration_mode: bool) -> Rollback:
    """The seed's procedure: the primary stopped, its application database restored from the secondary to
    T0, the primary started (with Restoration Mode on or off)."""
    counted = row.client.count(NS)
    assert (counted.count, counted.unreachable) == (DOCS, ()), f"the cluster is not as set up: {counted}"
    on_new = row.client.documents_per_shard()[NEW_SHARD]
    assert on_new is not None and on_new == row.client.migrated_to(NEW_SHARD) > 0
    ids = sorted(doc["_id"] for ns, doc in row.world.dump(NEW_HOST, NEW_MEMBER) if ns == NS)
    assert len(ids) == on_new

    row.pair.stop_primary()
    outcome = row.pair.restore_to(row.t0, app_only=True)
    assert outcome["stores"]["app"]["documents"] > 0, outcome
    row.pair.primary.conf_keys["mms.restorationMode.enabled"] = "true" if restoration_mode else "false"
    marks = {host: len(agent.log()) for host, agent in row.d.agents.items()}
    row.pair.primary.start()
    served = row.d.api.get(f"/groups/{row.d.group_id}/automationConfig").json()
    assert served["version"] == row.restored_version, "the application database is back at T0"
    assert [s["_id"] for s in served["sharding"][0]["shards"]] == ["sh0", "sh1"]
    return Rollback(counted.count, on_new, ids, marks)


def new_shard_running(row: Row) -> bool:
    return row.world.observe(NEW_HOST, NEW_MEMBER).running


def test_with_restoration_mode_the_new_shard_keeps_its_documents_reachable(row: Row) -> None:
    d = row.d
    before = roll_back(row, restoration_mode=True)

    def reconciled() -> dict[str, Any] | None:
        assert new_shard_running(row), "no agent may stop the new shard in Restoration Mode"
        view = d.api.get(f"/groups/{d.group_id}/restorationMode").json()
        done = view["state"] == "INACTIVE" and view["history"]
        return dict(view) if done else None

    view = wait_for(reconciled, 60, interval=0.2, what="the project reconciled on the agents' config")
    assert view["history"][-1]["exitReason"].startswith("reconciled"), view
    assert view["triggerReason"]["restoredConfigVersion"] == row.restored_version, view
    assert view["triggerReason"]["agentConfigVersion"] > row.restored_version, view
    config = d.api.get(f"/groups/{d.group_id}/automationConfig").json()
    assert view["authoritativeConfigVersion"] > row.restored_version
    assert [s["_id"] for s in config["sharding"][0]["shards"]] == ["sh0", "sh1", NEW_SHARD]
    assert (NEW_MEMBER, NEW_HOST) in {(p["name"], p["hostname"]) for p in config["processes"]}
    wait_goal(d, config["version"])

    assert new_shard_running(row)
    after = row.client.count(NS)
    assert (after.count, after.unreachable) == (before.count, ()), "every document is still reachable"
    assert row.client.documents_per_shard()[NEW_SHARD] == before.on_new_shard
    assert row.client.find(NS, before.new_shard_ids[0]) is not None
    for host in (HOST, NEW_HOST):
        log = before.log_since(d, host)
        assert f"adopting automation config version {row.restored_version} " not in log, "no rollback"
        assert "Stop (" not in log, f"no process was stopped on {host}"


def test_without_restoration_mode_the_new_shard_is_stopped_and_its_documents_lost(row: Row) -> None:
    d = row.d
    before = roll_back(row, restoration_mode=False)
    wait_for(
        lambda: not new_shard_running(row),
        60,
        interval=0.2,
        what=f"the agent of {NEW_HOST} stopping {NEW_MEMBER}, no longer in the restored config",
    )
    assert f"adopting automation config version {row.restored_version} " in before.log_since(d, NEW_HOST)
    assert "RESTORATION MODE DISABLED: agent" in d.server.log()
    # Armed by the restore until the first agent of the restored config polls with its newer version.
    view = wait_for(
        lambda: (v := d.api.get(f"/groups/{d.group_id}/restorationMode").json())["state"] == "INACTIVE" and v,
        30,
        interval=0.2,
        what="the project disarmed",
    )
    assert view["disarmReason"] == "Restoration Mode is disabled" and not view["history"], view

    after = row.client.count(NS)
    assert after.unreachable == (NEW_SHARD,), after
    assert after.count == before.count - before.on_new_shard, (
        f"the count through mongos drops by the {before.on_new_shard} documents migrated to {NEW_SHARD}: "
        f"{after}; cluster events {row.world.sharded_cluster(CSRS).events}"
    )
    assert row.client.documents_per_shard()[NEW_SHARD] is None
    with pytest.raises(OpsmgrError, match=f"shard {NEW_SHARD} has no reachable primary"):
        row.client.find(NS, before.new_shard_ids[0])
    others = sorted(set(range(DOCS)) - set(before.new_shard_ids))
    assert row.client.find(NS, others[0]) is not None, "documents on the other shards are still read"

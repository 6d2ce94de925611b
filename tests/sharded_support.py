"""Helpers for end-to-end tests of a sharded cluster driven by real agents on a shared sim world: the project
with an agent per host on a world of given parameters (:func:`agents_on_world`), waiting for the project's
goal (a sharded cluster has no single replica set to count PRIMARY/SECONDARY in, as ``Deployment.wait_goal``
does), and what a client of the cluster sees through a mongos of the world (the count, and the documents each
shard holds by its chunks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opsmgr.sim.model import SimParams
from opsmgr.sim.shardmodel import ShardedCount
from opsmgr.sim.world import SimWorld
from tests.deployments import Deployment
from tests.procs import ServerProcess, wait_for


@contextmanager
def agents_on_world(
    server: ServerProcess, owner: dict[str, Any], root: Path, name: str, hosts: list[str], params: SimParams
) -> Iterator[tuple[Deployment, SimWorld]]:
    """A project named ``name`` (at most 60 characters kept) with a real agent on each of ``hosts``, sharing
    the sim world file under ``root`` with ``params``; both closed on leaving."""
    # The world is created before the agents open it: its parameters apply to a new file only.
    world = SimWorld.open(root / "world.sqlite", params=params)
    d = Deployment(server, owner, root, name[:60])
    try:
        for host in hosts:
            d.agent(host)
        yield d, world
    finally:
        d.close()
        world.close()


def at_goal(d: Deployment, version: int) -> bool:
    """Every process of the project reports ``version`` achieved, and the project's goal is ``version``."""
    status = d.status()
    reached = [p["lastGoalVersionAchieved"] == version for p in status["processes"]]
    return status["goalVersion"] == version and bool(reached) and all(reached)


def wait_goal(d: Deployment, version: int, timeout: float = 60, *, interval: float = 0.2) -> None:
    """Wait for :func:`at_goal`; on a timeout the failure carries the status and each agent's log tail."""
    try:
        wait_for(lambda: at_goal(d, version), timeout, interval=interval, what=f"goal v{version}")
    except AssertionError:
        logs = "\n".join(f"--- {h}\n{a.log()[-3000:]}" for h, a in d.agents.items())
        raise AssertionError(f"no goal v{version}: {d.status()}\n{logs}") from None


class Client:
    """An application of the cluster: it writes, reads and counts through one mongos of the sim world."""

    def __init__(self, world: SimWorld, hostname: str, mongos: str, cluster: str) -> None:
        self.world, self.hostname, self.mongos, self.cluster = world, hostname, mongos, cluster

    def insert(self, ns: str, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            self.world.mongos_write(self.hostname, self.mongos, ns, "i", doc)

    def count(self, ns: str) -> ShardedCount:
        return self.world.mongos_count(self.hostname, self.mongos, ns)

    def find(self, ns: str, doc_id: Any) -> dict[str, Any] | None:
        return self.world.mongos_find(self.hostname, self.mongos, ns, doc_id)

    def documents_per_shard(self) -> dict[str, int | None]:
        """Shard id -> the documents its chunks own (None: the shard has no primary the routers reach)."""
        return {s.id: s.documents for s in self.world.sharded_cluster(self.cluster).shards}

    def migrated_to(self, shard: str) -> int:
        """The documents the balancer's committed migrations moved to ``shard``, by the cluster's events."""
        events = self.world.sharded_cluster(self.cluster).events
        return sum(
            int(e["documents"]) for e in events if e["kind"] == "migration committed" and e["to"] == shard
        )

"""The ``sim`` driver: the processes of one simulated host, in a ``opsmgr.sim.SimWorld``.

Implements the :class:`~opsmgr.drivers.base.Driver` protocol with the same contract as ``drivers.mongod``
where that driver decides something MongoDB does not: ``start`` returns once the process accepts
connections and is a no-op when it already runs with the same port, mode and arguments; ``stop`` of a
process that is not running is a no-op, and a graceful stop of a primary waits for a secondary to catch up
(the shutdown's ``timeoutSecs``) and is refused if none does (a set without another electable member stops
at once); ``initiate`` of a set already initiated with the same ``_id`` is left alone; ``reconfig`` lays the
given config over the current one with the version one past it. Blocking commands (start, a primary's
shutdown, ``replSetStepDown``) wait on the world's clock, so with a fake clock they move simulated time
instead of sleeping.

The world is handed in by the caller, which imports the sim; this module names ``SimWorld`` as a type only,
so that the drivers never load the sim, which itself uses ``drivers.base``'s types. May import
``opsmgr.errors``, ``opsmgr.drivers.base`` and ``opsmgr.sim`` (the type of the world, under TYPE_CHECKING).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsmgr.drivers.base import (
    BalancerState,
    CommandConflict,
    Driver,
    OplogRecord,
    OplogWindow,
    ProcessObservation,
    ProcessSpec,
    RemoveShardProgress,
    RsStatus,
    ShardedCollection,
    ShardInfo,
    StorageSample,
)
from opsmgr.errors import InvalidInput

if TYPE_CHECKING:
    from opsmgr.sim.world import SimWorld

# MongoDB's codes for the outcomes a pending step-down or shutdown can end with.
_RESULT_CODES = {
    "ExceededTimeLimit": 262,
    "InterruptedDueToReplStateChange": 11602,
    "HostUnreachable": 6,
    "NotFound": 70,
}


class SimDriver:
    """The Driver of host ``hostname`` in ``world``."""

    def __init__(
        self, world: SimWorld, hostname: str, *, poll_s: float = 0.1, balancer_stop_s: float = 60.0
    ) -> None:
        self.world = world
        self.hostname = hostname
        self.poll_s = poll_s
        self.balancer_stop_s = balancer_stop_s

    def _await(self, name: str, req: str) -> None:
        """Wait for a step-down or shutdown request, as the blocking MongoDB command does."""
        while (result := self.world.request_result(self.hostname, name, req)) is None:
            self.world.clock.sleep(self.poll_s)
        if result != "ok":
            code_name, _, message = result.partition(": ")
            raise CommandConflict(
                f"{name}: {message or result}", code=_RESULT_CODES.get(code_name), code_name=code_name
            )

    def observe(self, name: str) -> ProcessObservation:
        return self.world.observe(self.hostname, name)

    def start(self, spec: ProcessSpec) -> None:
        if spec.hostname != self.hostname:
            raise InvalidInput(
                f"{spec.name} belongs to host {spec.hostname}, not to {self.hostname}", field="hostname"
            )
        ready_at = self.world.start(spec)
        wait = ready_at - self.world.clock.now()
        if wait > 0:
            self.world.clock.sleep(wait)

    def stop(self, name: str, *, force: bool = False) -> None:
        req = self.world.stop(self.hostname, name, force=force)
        if req is not None:
            self._await(name, req)

    def rs_status(self, name: str) -> RsStatus | None:
        return self.world.rs_status(self.hostname, name)

    def rs_config(self, name: str) -> dict[str, Any] | None:
        return self.world.rs_config(self.hostname, name)

    def initiate(self, name: str, config: dict[str, Any]) -> None:
        try:
            self.world.initiate(self.hostname, name, config)
        except CommandConflict as exc:
            current = self.rs_config(name) if exc.code == 23 else None
            if current is None or current.get("_id") != config.get("_id"):
                raise

    def reconfig(self, name: str, config: dict[str, Any], *, force: bool = False) -> None:
        current = self.rs_config(name)
        if current is None:
            raise CommandConflict(f"{name}: cannot reconfigure: the replica set is not initiated")
        new = {**current, **config}
        new["settings"] = {**current.get("settings", {}), **config.get("settings", {})}
        new.pop("term", None)
        new["version"] = int(current["version"]) + 1
        self.world.reconfig(self.hostname, name, new, force=force)

    def step_down(self, name: str, *, step_down_secs: int = 60, catch_up_secs: int = 10) -> None:
        req = self.world.request_step_down(
            self.hostname, name, step_down_secs=step_down_secs, catch_up_secs=catch_up_secs
        )
        self._await(name, req)

    def freeze(self, name: str, secs: int) -> None:
        self.world.freeze(self.hostname, name, secs)

    def set_parameter(self, name: str, parameters: dict[str, Any]) -> None:
        self.world.set_parameter(self.hostname, name, parameters)

    def rename_replica_set(self, name: str, new_name: str) -> None:
        self.world.rename_replica_set(self.hostname, name, new_name)

    def fsync_lock(self, name: str) -> None:
        self.world.fsync_lock(self.hostname, name)

    def fsync_unlock(self, name: str) -> None:
        self.world.fsync_unlock(self.hostname, name)

    def create_index(self, name: str, ns: str, keys: list[tuple[str, int]], options: dict[str, Any]) -> None:
        self.world.create_index(self.hostname, name, ns, list(keys), options)

    def list_indexes(self, name: str, ns: str) -> list[dict[str, Any]]:
        return self.world.list_indexes(self.hostname, name, ns)

    def drop_index(self, name: str, ns: str, index_name: str) -> None:
        self.world.drop_index(self.hostname, name, ns, index_name)

    def connections(self, name: str) -> int:
        return self.world.connections(self.hostname, name)

    def server_sample(self, name: str) -> dict[str, float]:
        return self.world.server_sample(self.hostname, name)

    def storage_sample(self, name: str) -> StorageSample:
        return self.world.storage_sample(self.hostname, name)

    def oplog_window(self, name: str) -> OplogWindow | None:
        return self.world.oplog_window(self.hostname, name)

    def oplog_read(self, name: str, after_ts: int, limit: int = 1000) -> list[OplogRecord]:
        return self.world.oplog_read(self.hostname, name, after_ts, limit)

    def dump(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        return self.world.dump(self.hostname, name)

    def load(self, name: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        self.world.load(self.hostname, name, docs)

    # -- ShardingDriver: commands to a local mongos ----------------------------------------------------------

    def list_shards(self, name: str) -> list[ShardInfo]:
        return self.world.list_shards(self.hostname, name)

    def add_shard(self, name: str, shard_id: str, connection: str) -> None:
        self.world.add_shard(self.hostname, name, shard_id, connection)

    def remove_shard(self, name: str, shard_id: str) -> RemoveShardProgress:
        return self.world.remove_shard(self.hostname, name, shard_id)

    def sharded_collections(self, name: str) -> list[ShardedCollection]:
        return self.world.sharded_collections(self.hostname, name)

    def shard_collection(self, name: str, ns: str, key: dict[str, Any], *, unique: bool = False) -> None:
        self.world.shard_collection(self.hostname, name, ns, key, unique=unique)

    def balancer_status(self, name: str) -> BalancerState:
        return self.world.balancer_status(self.hostname, name)

    def set_balancer(self, name: str, *, running: bool) -> None:
        """``balancerStop`` waits (on the world's clock, up to ``balancer_stop_s``) for the migration in
        progress to finish, as MongoDB's does."""
        self.world.set_balancer(self.hostname, name, running=running)
        deadline = self.world.clock.now() + self.balancer_stop_s
        while not running and self.world.balancer_status(self.hostname, name).in_round:
            if self.world.clock.now() >= deadline:
                raise CommandConflict(
                    f"{name}: the balancer did not finish its migration within {self.balancer_stop_s:.0f}s",
                    code=262,
                    code_name="ExceededTimeLimit",
                )
            self.world.clock.sleep(self.poll_s)


if TYPE_CHECKING:
    # mypy proves here that the class implements the whole protocol, sharding commands included.
    def _implements_driver(driver: SimDriver) -> Driver:
        return driver

"""The ``mongod`` driver's sharding commands (the ``ShardingDriver`` protocol), sent to a local ``mongos``
as MongoDB documents them: ``listShards``, ``addShard``, ``removeShard``, ``enableSharding`` and
``shardCollection``, a read of ``config.collections``, ``balancerStatus``, ``balancerStart`` and
``balancerStop``. Where the protocol promises a no-op that MongoDB does not (adding a shard that is already
there, sharding a collection already sharded with the same key), the current state is read first.

Errors are ``drivers.mongod_admin``'s translation of pymongo's. May import ``opsmgr.drivers.base``,
``opsmgr.drivers.mongod_admin``, ``opsmgr.drivers.mongod_commands``, pymongo and the standard library.
"""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from opsmgr.drivers.base import (
    BalancerState,
    CommandConflict,
    DriverError,
    RemoveShardProgress,
    ShardedCollection,
    ShardInfo,
)
from opsmgr.drivers.mongod_admin import MongodAdmin
from opsmgr.drivers.mongod_commands import (
    Doc,
    balancer_state,
    remove_shard_progress,
    shard_info,
    sharded_collection,
    split_namespace,
)

_ALREADY_INITIALIZED = 23  # enableSharding of a database already enabled, before MongoDB 6.0
BALANCER_TIMEOUT_MS = 60_000  # how long balancerStop waits for the migration under way (MongoDB's default)


class ShardingAdmin(MongodAdmin):
    """The ShardingDriver protocol on the ``mongos`` processes a subclass knows."""

    def list_shards(self, name: str) -> list[ShardInfo]:
        return [shard_info(doc) for doc in self._command(name, {"listShards": 1}).get("shards", [])]

    def add_shard(self, name: str, shard_id: str, connection: str) -> None:
        rs = connection.partition("/")[0]
        existing = next((s for s in self.list_shards(name) if s.id == shard_id), None)
        if existing is not None and existing.host.partition("/")[0] == rs:
            return
        self._command(name, {"addShard": connection, "name": shard_id})

    def remove_shard(self, name: str, shard_id: str) -> RemoveShardProgress:
        return remove_shard_progress(self._command(name, {"removeShard": shard_id}))

    def sharded_collections(self, name: str) -> list[ShardedCollection]:
        proc = self._require(name)

        def read(client: MongoClient[Doc]) -> list[Doc]:
            return list(client.config["collections"].find({}))

        found = (sharded_collection(doc) for doc in self._run(proc, "find config.collections", read))
        return [c for c in found if c is not None]

    def shard_collection(self, name: str, ns: str, key: dict[str, Any], *, unique: bool = False) -> None:
        db, _coll = split_namespace(ns)
        current = next((c for c in self.sharded_collections(name) if c.ns == ns), None)
        if current is not None:
            if current.key == key and current.unique == unique:
                return
            raise CommandConflict(f"{name}: {ns} is already sharded with key {current.key}")
        try:
            self._command(name, {"enableSharding": db})
        except DriverError as exc:
            if exc.code != _ALREADY_INITIALIZED:
                raise
        self._command(name, {"shardCollection": ns, "key": key, "unique": unique})

    def balancer_status(self, name: str) -> BalancerState:
        return balancer_state(self._command(name, {"balancerStatus": 1}))

    def set_balancer(self, name: str, *, running: bool) -> None:
        command = "balancerStart" if running else "balancerStop"
        self._command(name, {command: 1, "maxTimeMS": BALANCER_TIMEOUT_MS})

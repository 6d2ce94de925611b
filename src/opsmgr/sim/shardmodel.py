"""A simulated sharded cluster's records, its chunk map and the balancer's choice, and the views it hands out.

The chunk map is documents in the config server replica set's data, in MongoDB's ``config`` namespaces, so
that it is replicated, backed up and restored with the config servers like any data:

- ``config.shards``: ``{_id, host: "<rs>/<host:port>,...", state: 1, draining}``;
- ``config.databases``: ``{_id: <db>, primary: <shard id>, partitioned: true}``;
- ``config.collections``: ``{_id: <ns>, key, unique}``;
- ``config.chunks``: ``{_id: "<ns>-<i>", ns, min, max, shard, lastmod}``, ``min``/``max`` bounds of the
  hashed shard key (:func:`key_hash`, ``[0, 2**63)``), whatever the key's kind (``1`` or ``"hashed"``);
- ``config.settings``: ``{_id: "balancer", stopped}``.

:class:`ChunkMap` is that map read back; :func:`choose_migration` is the balancer's pure decision.
:class:`ClusterRec` is what the world keeps of a cluster apart from its config data: the routers' cached map
(a router still routes with it when the config servers have no primary), the migration in progress, the
balancer's next round, the write load through the routers and its counters. May import
``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from opsmgr.drivers.base import CommandConflict, CommandInvalid
from opsmgr.sim.data import dumps
from opsmgr.sim.model import Record, WriteLoad

# The chunks' bounds cover [0, HASH_SPACE): the last ``max`` is HASH_SPACE itself (MongoDB's MaxKey), so it
# must fit the 64-bit integers the config servers' documents travel as (a backup's initial sync refuses more).
HASH_SPACE = 1 << 62

SHARDS_NS = "config.shards"
DATABASES_NS = "config.databases"
COLLECTIONS_NS = "config.collections"
CHUNKS_NS = "config.chunks"
SETTINGS_NS = "config.settings"
CONFIG_NAMESPACES = (SHARDS_NS, DATABASES_NS, COLLECTIONS_NS, CHUNKS_NS, SETTINGS_NS)


def key_hash(key: dict[str, Any], doc: dict[str, Any]) -> int:
    """Where ``doc`` falls in the hashed shard key space: its key fields' values (missing ones are null)."""
    values = dumps([doc.get(f) for f in key])
    return int.from_bytes(hashlib.blake2b(values.encode(), digest_size=8).digest(), "big") % HASH_SPACE


def check_key(key: dict[str, Any]) -> None:
    if not key or any(v not in (1, "hashed") for v in key.values()):
        raise CommandInvalid("a shard key is {field: 1 | 'hashed', ...} with at least one field", code=2)


def parse_connection(connection: str) -> tuple[str, list[str]]:
    """``"<rs>/<host:port>,..."`` as the set's name and its hosts."""
    name, sep, hosts = connection.partition("/")
    listed = [h.strip() for h in hosts.split(",") if h.strip()]
    if not name or not sep or not listed:
        raise CommandInvalid(f"{connection!r} is not of the form '<replica set>/<host:port>,...'", code=2)
    return name, listed


@dataclass
class ChunkMap:
    """The cluster's map as the config documents say: shards, databases, collections, chunks, balancer."""

    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)  # db -> primary shard
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # ns -> chunks by min
    balancer_on: bool = True

    @classmethod
    def of(cls, docs: list[tuple[str, dict[str, Any]]]) -> ChunkMap:
        cmap = cls()
        for ns, doc in docs:
            if ns == SHARDS_NS:
                cmap.shards[doc["_id"]] = doc
            elif ns == DATABASES_NS:
                cmap.databases[doc["_id"]] = doc["primary"]
            elif ns == COLLECTIONS_NS:
                cmap.collections[doc["_id"]] = doc
            elif ns == CHUNKS_NS:
                cmap.chunks.setdefault(doc["ns"], []).append(doc)
            elif ns == SETTINGS_NS and doc["_id"] == "balancer":
                cmap.balancer_on = not doc.get("stopped", False)
        for chunks in cmap.chunks.values():
            chunks.sort(key=lambda c: int(c["min"]))
        return cmap

    def chunk_of(self, ns: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk a document of sharded ``ns`` belongs to (None: ``ns`` is not sharded)."""
        coll = self.collections.get(ns)
        if coll is None:
            return None
        h = key_hash(coll["key"], doc)
        return next(c for c in self.chunks[ns] if int(c["min"]) <= h < int(c["max"]))

    def owner(self, ns: str, doc: dict[str, Any]) -> str | None:
        """The shard holding ``doc`` of ``ns``: its chunk's, or its database's primary shard (None: the
        database has none yet)."""
        chunk = self.chunk_of(ns, doc)
        return str(chunk["shard"]) if chunk is not None else self.databases.get(ns.split(".", 1)[0])

    def chunk_counts(self, ns: str) -> dict[str, int]:
        counts = {s: 0 for s in sorted(self.shards)}
        for c in self.chunks.get(ns, []):
            counts[c["shard"]] = counts.get(c["shard"], 0) + 1
        return counts

    def least_loaded(self) -> str:
        """Where a new database goes: the shard, not draining, with fewest databases (then by id)."""
        active = sorted(s for s, doc in self.shards.items() if not doc.get("draining"))
        if not active:
            raise CommandConflict("no shards found to hold a database", code=70, code_name="ShardNotFound")
        held = {s: sum(1 for p in self.databases.values() if p == s) for s in active}
        return min(active, key=lambda s: (held[s], s))

    def shard_chunks(self, shard: str) -> int:
        return sum(1 for chunks in self.chunks.values() for c in chunks if c["shard"] == shard)


def initial_chunks(ns: str, shard: str, n: int) -> list[dict[str, Any]]:
    """``n`` chunks of equal hash ranges, all on ``shard`` (the database's primary, which holds the
    collection's documents already, so sharding it moves nothing)."""
    bounds = [i * HASH_SPACE // n for i in range(n)] + [HASH_SPACE]
    return [
        {"_id": f"{ns}-{i}", "ns": ns, "min": bounds[i], "max": bounds[i + 1], "shard": shard, "lastmod": 1}
        for i in range(n)
    ]


@dataclass(frozen=True)
class Move:
    ns: str
    chunk: str
    donor: str
    recipient: str


def choose_migration(cmap: ChunkMap) -> Move | None:
    """The balancer's next migration: a chunk off a draining shard first, else from the shard with most
    chunks of a collection to the one with fewest when they differ by two or more (ties by shard id)."""
    active = sorted(s for s, doc in cmap.shards.items() if not doc.get("draining"))
    if not active:
        return None
    for ns in sorted(cmap.chunks):
        counts = cmap.chunk_counts(ns)
        drained = next((c for c in cmap.chunks[ns] if cmap.shards.get(c["shard"], {}).get("draining")), None)
        if drained is not None:
            to = min(active, key=lambda s: (counts[s], s))
            return Move(ns, drained["_id"], drained["shard"], to)
    for ns in sorted(cmap.chunks):
        counts = cmap.chunk_counts(ns)
        most = max(active, key=lambda s: (counts[s], s))
        fewest = min(active, key=lambda s: (counts[s], s))
        if counts[most] - counts[fewest] >= 2:
            chunk = next(c for c in cmap.chunks[ns] if c["shard"] == most)
            return Move(ns, chunk["_id"], most, fewest)
    return None


@dataclass
class ClusterRec(Record):
    """A sharded cluster, named after its config server replica set."""

    KIND: ClassVar[str] = "cluster"
    name: str
    t: float
    config_hosts: list[str] = field(default_factory=list)
    mongos: list[str] = field(default_factory=list)  # node keys of its routers
    cache: list[list[Any]] | None = None  # [ns, doc]: the routers' last map; None: never read
    migration: dict[str, Any] | None = None  # {ns, chunk, donor, recipient, started, commit_at}
    next_round: float | None = None  # None: the balancer is idle until something changes
    load: dict[str, Any] = field(default_factory=lambda: WriteLoad().to_json())
    load_credit: float = 0.0
    load_n: int = 0
    writes: int = 0
    writes_failed: int = 0
    migrations: int = 0
    migrations_aborted: int = 0

    @property
    def key(self) -> str:
        return self.name

    def cached_map(self) -> ChunkMap | None:
        return ChunkMap.of([(str(ns), doc) for ns, doc in self.cache]) if self.cache is not None else None


@dataclass
class ClusterEventsRec(Record):
    """A cluster's recent events (shards added and removed, migrations), apart from its state so that a
    call only loads them to add one."""

    KIND: ClassVar[str] = "cluster_events"
    name: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.name


# ---------------------------------------------------------------------------------------------------------
# Views handed out by the inspection API


@dataclass(frozen=True)
class ShardView:
    id: str
    set_name: str
    set_id: int | None
    draining: bool
    reachable: bool  # a primary the routers can reach
    chunks: int
    documents: int | None  # documents of the chunks it owns (and of its databases); None when unreachable


@dataclass(frozen=True)
class MigrationView:
    ns: str
    chunk: str
    donor: str
    recipient: str
    started: float
    commit_at: float


@dataclass(frozen=True)
class ShardedClusterView:
    name: str  # the config server replica set's name
    config_set_id: int | None
    mongos: tuple[str, ...]  # "hostname/name"
    shards: tuple[ShardView, ...]
    collections: dict[str, dict[str, Any]]  # ns -> {key, unique}
    chunks: dict[str, dict[str, int]]  # ns -> shard -> chunks
    balancer_on: bool
    migration: MigrationView | None
    migrations: int
    migrations_aborted: int
    writes: int  # through the routers: the write load's and clients'
    writes_failed: int
    write_load: WriteLoad
    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ShardedCount:
    """A count through a router: ``unreachable`` names the shards whose documents it could not count."""

    count: int
    shards: int
    unreachable: tuple[str, ...]

"""The simulated world: hosts, ``mongod`` processes and replica sets that behave like MongoDB's.

Everything shown from here is simulated and says so. The world is a deterministic state machine: a replica
set's state at time ``t`` follows from its previous state, the time elapsed and the commands and faults
applied (randomness is a seeded hash), so tests drive it with a :class:`~opsmgr.sim.clock.FakeClock`. It
lives in memory (``SimWorld.in_memory``, for ``opsmgr fleet`` and unit tests) or in a SQLite file
(``SimWorld.open``) shared by the agent processes of the hosts, where every call is one ``BEGIN IMMEDIATE``
transaction that first advances the replica sets it touches to "now". Processes keep running when the
agent that started them dies, because their state is in the world.

Modelled, after MongoDB's documented semantics:

- processes started in replSet mode or standalone (no ``replSetName``, usually on another port, so the set
  sees that member DOWN), with the version and ``args2_6`` they were started with; start taking a moment,
  failing on a port in use, graceful and forced stops, crashes;
- member states STARTUP, STARTUP2 (initial sync, timed by the documents to copy), PRIMARY, SECONDARY,
  RECOVERING (too stale to catch up), ARBITER, DOWN and REMOVED, seen from the asked member;
- ``replSetInitiate`` (quorum check, one initiation), ``replSetReconfig`` (version, validation of members,
  votes and priorities, at most one voting member added or removed without ``force``, quorum; ``force``
  from any member), ``replSetGetStatus`` with optimes, health and sync sources, ``replSetGetConfig``;
- protocol-version-1 elections: ``electionTimeoutMillis`` and ``heartbeatIntervalMillis`` from the config,
  a majority of voting members that are up, reachable and not ahead of the candidate, terms, priority
  takeover, election handoff on step-down, a primary stepping down without a majority, rollback of the
  writes a new primary never received;
- ``replSetStepDown`` (waits up to ``secondaryCatchUpPeriodSecs`` for an electable secondary to catch up
  while writes are blocked, fails otherwise, no re-election for ``stepDownSecs``), ``replSetFreeze``,
  ``shutdown`` of a primary (steps down first, ``timeoutSecs`` 15 s from 5.0, 10 s before);
- replication at a rate per secondary, chaining, lag, ``stall replication``; an oplog per member capped by
  ``replication.oplogSizeMB`` (default 990) whose window in hours follows from the write rate; reading
  after a truncated position raises ``OplogGap``;
- client connections held on the primary, all dropped when it steps down, dies or becomes unreachable and
  re-established on the new primary; the time without a writable primary;
- a write load (documents per second over namespaces and a bounded key space) producing real documents and
  MongoDB-shaped oplog entries (``ts`` as seconds << 32 | increment, ``op`` i/u/d/n/c, ``ns``, ``o``,
  ``o2``), so that a snapshot plus the oplog reproduces the documents of any later instant;
- the periodic no-op writer: every ``SimParams.noop_interval_s`` (10 s, as MongoDB's
  ``periodicNoopIntervalSecs``; ticks at its multiples of epoch time) a writable primary (running, not cut
  off, stepping down or fsync-locked) that wrote nothing since the previous tick writes ``{op: "n", ns: "",
  o: {msg: "periodic noop"}}``, which its secondaries replicate, so that an idle set's optimes, oplog window
  and backup point-in-time window advance. 0 turns it off, for tests that need an oplog holding only their
  own writes;
- what monitoring samples (``sim.measure``): opcounters counted by each node's writes
  (``NodeRec.opcounters``), connections of the write load's clients on the primary, memory following the
  oplog held, tickets, page faults, and a 100 GiB disk partition holding the documents and the oplog;
- ``fsyncLock``/``fsyncUnlock`` (nested; writes on a primary and applying on a secondary blocked),
  ``createIndexes`` (replicated from the primary through a ``c`` entry, or local on a standalone member;
  unique indexes refused when duplicates exist) and ``listIndexes``, dump and load of user data;
- faults: crash a process, cut a host off the network (its processes, and clients, cannot reach the rest
  and vice versa), stall or slow replication on a member, make a process fail to start, heal all;
- sharded clusters (``shardmodel``, ``shards``, ``mongos``, ``balancer``): ``mongos`` routers started from a
  ``ProcessSpec`` with ``process_type`` "mongos" (no data, ``RunMode.STANDALONE``, ``sharding.configDB``
  "<csrs>/<host:port>,..." naming the cluster, which is named after its config server replica set);
  config servers and shards are replica sets of members started with ``sharding.clusterRole``
  "configsvr"/"shardsvr". The chunk map is documents in the config servers' data (``config.shards``,
  ``config.databases``, ``config.collections``, ``config.chunks``, ``config.settings``), written on their
  primary and replicated, backed up and restored like any data, so restoring the config servers restores
  the map. ``addShard`` (refused when the set has no reachable primary, was not started as a shard, or is
  already a shard under another name; a no-op when it is the same shard), ``listShards``, ``removeShard``
  (started, ongoing while chunks remain, which the balancer moves off only while it is on, as in MongoDB;
  completed when none do; the sim moves the databases whose
  primary it is itself where MongoDB needs ``movePrimary``), ``shardCollection`` with ``key`` and
  ``unique`` (recorded, not enforced beyond ``_id``; ``enableSharding`` implied: a database gets a
  primary shard, the one with fewest databases, on its first write or sharded collection),
  ``balancerStart``/``balancerStop``/``balancerStatus``.
  Documents are placed by a hash of their shard key fields (whatever the key's kind, ``1`` or
  ``"hashed"``) into chunks of equal hash ranges (``SimParams.initial_chunks``, all created on the
  database's primary shard; chunks are never split); a collection that is not sharded lives on its
  database's primary shard. The balancer (while on, on the config servers' primary, one migration at a
  time) moves chunks off draining shards first, then from the shard with most chunks of a collection to
  the one with fewest when they differ by two or more; a migration (copy, catch-up, commit on the config
  servers) lasts ``SimParams.migration_s`` plus its documents at ``clone_docs_per_s``, then in one step
  copies the chunk's documents as they stand to the recipient, commits the new owner and deletes them on
  the donor, or aborts when a part has no writable primary; after a commit no document is on two shards.
  Client writes, reads and counts go through a router by its cached map (so a router whose config
  servers have no primary still routes, but metadata commands are refused); a shard without a primary
  the router reaches makes the documents of its chunks unreachable: a write or read that needs them
  fails with ``FailedToSatisfyReadPreference``, a count counts the others and names it. A write load
  through the routers (``SimWorld.set_cluster_write_load``) counts the writes that failed (no router
  reachable, or no writable primary on the shard it needed).

Not modelled: authentication, TLS and keyfiles (accepted as arguments, not enforced),
the storage engine, disk space, memory, write concerns and read preferences, chunk splits, jumbo
chunks, zones, parallel migrations, orphaned documents (the donor deletes at the commit) and per-router
map caches (the routers of a cluster share one),
``catchUpTimeoutMillis`` and catch-up takeover, delayed members' delay, partial partitions (a cut host is
cut from everyone), the exact timing jitter of heartbeats (elections happen at exact timer expiry), queries
other than a full dump, and updates other than full-document replacement. A rollback is applied when the
new primary is elected rather than when the old member rejoins, and a member whose data diverges from the
primary's (after a restore) resyncs by itself instead of requiring an operator. Changing
``oplogSizeMB`` takes effect at the next start (MongoDB needs ``replSetResizeOplog``).

Modules: ``clock`` (system and fake clocks), ``model`` (records, parameters, views), ``rsconfig`` (config
rules), ``data`` (documents and oplog entries per lineage), ``store`` (memory and SQLite backends), the state
machine (``ctx``: one transaction's view; ``members``: a set read at one instant; ``elections``: elections
and step-downs; ``replication``: writes, replication, oplog, initial sync; ``engine``: advancing a set in
time), the commands (``processes``, ``replset``, ``indexes``, ``oplog``, ``restore``, ``faults``, ``views``),
sharding (``shardmodel``: records, the chunk map and the balancer's choice; ``shards``: the cluster's parts
in a transaction; ``mongos``: the router's commands and client operations; ``balancer``: the cluster in
time) and ``world`` (``SimWorld``, the API, a façade over the commands). May import ``opsmgr.errors``,
``opsmgr.sqlite_wal`` and ``opsmgr.drivers.base``; nothing here imports the agent, the server or a web
framework.
"""

from opsmgr.sim.clock import Clock, FakeClock, SystemClock
from opsmgr.sim.model import MemberView, ProcessView, ReplicaSetView, SimParams, WriteLoad
from opsmgr.sim.shardmodel import ShardedClusterView, ShardedCount, ShardView
from opsmgr.sim.world import SimWorld

__all__ = [
    "Clock",
    "FakeClock",
    "MemberView",
    "ProcessView",
    "ReplicaSetView",
    "ShardView",
    "ShardedClusterView",
    "ShardedCount",
    "SimParams",
    "SimWorld",
    "SystemClock",
    "WriteLoad",
]

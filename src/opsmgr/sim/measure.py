"""What a simulated ``mongod`` says of itself in ``serverStatus``, as the Ops Manager host measurements the
agent samples each cycle (``drivers.sim`` returns them; connections, replication lag and the oplog window the
agent reads through the driver's other calls).

Derived from the node's state, never invented: ``opcounters`` are the client writes the node took as primary
(``NodeRec.opcounters``, counted where the entry is written, cumulative like MongoDB's and kept across
restarts as the data directory is), or, on a ``mongos``, the writes it routed; ``OPCOUNTER_CMD`` counts one
``hello`` per connected client and second of uptime; memory grows with the oplog the node holds (WiredTiger
caches what it writes); write tickets are MongoDB's 128 less one per client of the set's write load writing to
this primary. Page faults stay 0 (the simulated data always fits in memory). The data directory's disk
(``dbStats``'s ``fsUsedSize``, and ``fsTotalSize`` less it) is a :data:`DISK_BYTES` partition holding a base
of :data:`BASE_DISK_BYTES` (journal, binaries), the documents the node holds at its last applied entry (each
its load's payload plus :data:`DOC_OVERHEAD_BYTES`) and its oplog as allocated (its configured size);
:func:`storage_sample` gives it as the partition :data:`PARTITION` (the simulated data volume's device name),
with each database's ``dbStats`` counted from the documents the node holds (sizes: their JSON, in
:data:`BLOCK_BYTES` blocks per collection on disk; one ``_id`` index per collection of
:data:`ID_INDEX_ENTRY_BYTES` per document). May import ``opsmgr.sim`` modules and ``opsmgr.drivers.base``.
"""

from __future__ import annotations

import json
from collections import defaultdict

from opsmgr.drivers.base import MAX_DATABASES, StorageSample
from opsmgr.sim.ctx import Ctx
from opsmgr.sim.model import MB, NodeRec, Role, WriteLoad
from opsmgr.sim.processes import up

TICKETS = 128  # wiredTiger.concurrentTransactions.{read,write}.totalTickets by default
BASE_RESIDENT_MB = 80.0  # an idle mongod's resident set
VIRTUAL_OVERHEAD_MB = 1500.0
DISK_BYTES = 100 * 1024**3
BASE_DISK_BYTES = 1024**3
DOC_OVERHEAD_BYTES = 64
PARTITION = "xvdb"
BLOCK_BYTES = 4096
ID_INDEX_ENTRY_BYTES = 32


def server_sample(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> dict[str, float]:
    n = up(n, name, t)
    g = ctx.group(n.gid) if n.gid is not None else None
    writing = g is not None and g.primary == n.key and n.role == Role.PRIMARY
    load = WriteLoad.from_json(g.load) if g is not None and writing else WriteLoad()
    clients = g.connected if g is not None and writing else 0
    busy = min(TICKETS, clients) if load.rate > 0 else 0
    resident = BASE_RESIDENT_MB + (n.applied_cum - n.trunc_cum) / MB
    disk_used = _disk_used(ctx, n)
    return {
        "OPCOUNTER_INSERT": float(n.opcounters.get("i", 0)),
        "OPCOUNTER_UPDATE": float(n.opcounters.get("u", 0)),
        "OPCOUNTER_DELETE": float(n.opcounters.get("d", 0)),
        "OPCOUNTER_QUERY": 0.0,
        "OPCOUNTER_CMD": float(int(max(0.0, t - n.started_at) * (1 + clients))),
        "MEMORY_RESIDENT": round(resident, 3),
        "MEMORY_VIRTUAL": round(resident + VIRTUAL_OVERHEAD_MB, 3),
        "EXTRA_INFO_PAGE_FAULTS": 0.0,
        "TICKETS_AVAILABLE_READS": float(TICKETS),
        "TICKETS_AVAILABLE_WRITE": float(TICKETS - busy),
        "DISK_PARTITION_SPACE_USED": float(disk_used),
        "DISK_PARTITION_SPACE_FREE": float(max(0, DISK_BYTES - disk_used)),
    }


def _disk_used(ctx: Ctx, n: NodeRec) -> int:
    g = ctx.group(n.gid) if n.gid is not None else None
    docs = ctx.data.count_docs(n.lineage, n.applied_ts) if n.lineage is not None else 0
    doc_bytes = (WriteLoad.from_json(g.load).payload_bytes if g is not None else 0) + DOC_OVERHEAD_BYTES
    return BASE_DISK_BYTES + docs * doc_bytes + n.cap_bytes


def _blocks(size: int) -> int:
    return -(-size // BLOCK_BYTES) * BLOCK_BYTES


def storage_sample(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> StorageSample:
    n = up(n, name, t)
    used = _disk_used(ctx, n)
    free = max(0, DISK_BYTES - used)
    partition = {
        "DISK_PARTITION_SPACE_USED": float(used),
        "DISK_PARTITION_SPACE_FREE": float(free),
        "DISK_PARTITION_SPACE_PERCENT_USED": round(100.0 * used / DISK_BYTES, 3),
        "DISK_PARTITION_SPACE_PERCENT_FREE": round(100.0 * free / DISK_BYTES, 3),
    }
    docs = ctx.data.docs_at(n.lineage, n.applied_ts) if n.lineage is not None else []
    sizes: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for ns, doc in docs:
        db, _, coll = ns.partition(".")
        sizes[db][coll].append(len(json.dumps(doc, separators=(",", ":"))))
    return StorageSample(
        partitions={PARTITION: partition},
        databases={db: _db_stats(sizes[db]) for db in sorted(sizes)[:MAX_DATABASES]},
    )


def _db_stats(collections: dict[str, list[int]]) -> dict[str, float]:
    """``dbStats`` of one database, from its collections' document sizes."""
    objects = sum(len(docs) for docs in collections.values())
    data = sum(sum(docs) for docs in collections.values())
    return {
        "DATABASE_OBJECT_COUNT": float(objects),
        "DATABASE_DATA_SIZE": float(data),
        "DATABASE_AVERAGE_OBJECT_SIZE": round(data / objects, 3) if objects else 0.0,
        "DATABASE_STORAGE_SIZE": float(sum(_blocks(sum(docs)) for docs in collections.values())),
        "DATABASE_INDEX_SIZE": float(
            sum(_blocks(len(docs) * ID_INDEX_ENTRY_BYTES) for docs in collections.values())
        ),
        "DATABASE_COLLECTION_COUNT": float(len(collections)),
        "DATABASE_INDEX_COUNT": float(len(collections)),
        "DATABASE_VIEW_COUNT": 0.0,
    }

"""Host measurements: what agents sample of their processes each cycle, kept at Ops Manager's granularities.

Owns the collections ``measurements_1m`` (one document per host and minute, kept 48 hours) and
``measurements_1h`` (one per host and hour, kept 60 days), the catalogues of the measurements kept (Ops
Manager's names and units, a name outside them dropped on arrival: :data:`CATALOG` of a host,
:data:`DISK_CATALOG` of a disk partition, :data:`DATABASE_CATALOG` of a database) and the series
``GET /groups/{id}/hosts/{hostId}/measurements`` and its ``disks``/``databases`` sub-resources answer with.

A bucket keeps, per gauge, the sum and count of its samples (its point is their average) and, per counter
(opcounters, page faults: cumulative since the process started), the first and last sample with their
instants; a counter's point is its rate per second from the previous bucket's last sample to this one's
(within the bucket when there is no previous one, or when the counter went back: the process restarted).
A bucket without samples is a point with a null value, as in Ops Manager. A bucket holds the host's own
measurements (``g``, ``c``) and, the same way, each partition's (``d``) and database's (``b``): at most
``status.MAX_PARTITIONS`` and ``status.MAX_DATABASES`` (100) per host, as a report brings.

The write path costs one read and one write per report and process: the host's current minute is the
document ``<group>:<host>:open`` of ``measurements_1m`` (it sorts after the host's finished minutes), and
a report folds into it. When a report opens the next minute, the finished one is written under its own
start and folded once into its hour, so the hour buckets hold finished minutes only; the readers fold the
open minute into its hour (:meth:`Measurements.buckets`), so an hour's point includes the current minute.
Buckets past their retention are deleted when a host's report opens a new hour, so the store holds at most
48 * 60 + 1 minute and 60 * 24 hour buckets per host.

May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.automation``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsmgr.automation.hosts import host_id
from opsmgr.automation.status import StatusReport
from opsmgr.store.engine import Store, Txn

MINUTE_S = 60
HOUR_S = 3600
COLLECTIONS = {MINUTE_S: "measurements_1m", HOUR_S: "measurements_1h"}
RETENTION_S = {MINUTE_S: 48 * HOUR_S, HOUR_S: 60 * 24 * HOUR_S}
OPEN = "open"  # the id suffix of a host's current minute


@dataclass(frozen=True)
class Measure:
    units: str
    counter: bool = False  # cumulative: shown as a rate per second


_RATE = Measure("SCALAR_PER_SECOND", counter=True)
_BYTES, _PERCENT, _SCALAR = Measure("BYTES"), Measure("PERCENT"), Measure("SCALAR")
Catalog = Mapping[str, Measure]
CATALOG: Catalog = {
    "CONNECTIONS": _SCALAR,
    "OPCOUNTER_INSERT": _RATE,
    "OPCOUNTER_QUERY": _RATE,
    "OPCOUNTER_UPDATE": _RATE,
    "OPCOUNTER_DELETE": _RATE,
    "OPCOUNTER_CMD": _RATE,
    "OPCOUNTER_GETMORE": _RATE,
    "EXTRA_INFO_PAGE_FAULTS": _RATE,
    "MEMORY_RESIDENT": Measure("MEGABYTES"),
    "MEMORY_VIRTUAL": Measure("MEGABYTES"),
    "TICKETS_AVAILABLE_READS": _SCALAR,
    "TICKETS_AVAILABLE_WRITE": _SCALAR,
    "OPLOG_MASTER_TIME": Measure("HOURS"),
    "OPLOG_SLAVE_LAG_MASTER_TIME": Measure("SECONDS"),
    "DISK_PARTITION_SPACE_USED": _BYTES,
    "DISK_PARTITION_SPACE_FREE": _BYTES,
}
DISK_CATALOG: Catalog = {
    "DISK_PARTITION_SPACE_USED": _BYTES,
    "DISK_PARTITION_SPACE_FREE": _BYTES,
    "DISK_PARTITION_SPACE_PERCENT_USED": _PERCENT,
    "DISK_PARTITION_SPACE_PERCENT_FREE": _PERCENT,
}
DATABASE_CATALOG: Catalog = {
    "DATABASE_AVERAGE_OBJECT_SIZE": _BYTES,
    "DATABASE_COLLECTION_COUNT": _SCALAR,
    "DATABASE_DATA_SIZE": _BYTES,
    "DATABASE_STORAGE_SIZE": _BYTES,
    "DATABASE_INDEX_SIZE": _BYTES,
    "DATABASE_INDEX_COUNT": _SCALAR,
    "DATABASE_OBJECT_COUNT": _SCALAR,
    "DATABASE_VIEW_COUNT": _SCALAR,
}
DISKS, DATABASES = "d", "b"  # a bucket's field of each kind of sub-resource
SUB_CATALOGS: dict[str, Catalog] = {DISKS: DISK_CATALOG, DATABASES: DATABASE_CATALOG}

Point = tuple[int, float | None]  # (bucket start, epoch seconds; value)
Bucket = Mapping[str, Any]


@dataclass(frozen=True)
class ProcessSample:
    """One report's sample of a process: its own measurements, and its partitions' and databases'."""

    host: Mapping[str, float]
    subs: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)  # DISKS/DATABASES


def bucket_start(at_s: float, granularity_s: int) -> int:
    return int(at_s // granularity_s) * granularity_s


def bucket_id(group_id: str, host: str, start_s: int) -> str:
    # Zero-padded so that a host's buckets sort by time.
    return f"{group_id}:{host}:{start_s:012d}"


def host_prefix(group_id: str, host: str) -> str:
    return f"{group_id}:{host}:"


def fold(
    bucket: Bucket | None, sample: Mapping[str, float], at_s: float, catalog: Catalog = CATALOG
) -> dict[str, Any]:
    """The bucket with one more sample: gauges add to their sum and count, counters move their last value."""
    gauges: dict[str, list[float]] = {k: list(v) for k, v in (bucket or {}).get("g", {}).items()}
    counters: dict[str, list[float]] = {k: list(v) for k, v in (bucket or {}).get("c", {}).items()}
    for name, value in sample.items():
        measure = catalog.get(name)
        if measure is None:
            continue
        if measure.counter:
            first = counters.get(name)
            counters[name] = [first[0], first[1], value, at_s] if first else [value, at_s, value, at_s]
        else:
            total, count = gauges.get(name, [0.0, 0.0])
            gauges[name] = [total + value, count + 1]
    return {"g": gauges, "c": counters}


def fold_process(bucket: Bucket | None, sample: ProcessSample, at_s: float) -> dict[str, Any]:
    """A host's bucket with one more report: its own measurements and each partition's and database's."""
    out = fold(bucket, sample.host, at_s)
    for kind, catalog in SUB_CATALOGS.items():
        subs = {name: dict(sub) for name, sub in (bucket or {}).get(kind, {}).items()}
        for name, values in sample.subs.get(kind, {}).items():
            subs[name] = fold(subs.get(name), values, at_s, catalog)
        if subs:  # a host without partitions or databases stores no empty map per bucket
            out[kind] = subs
    return out


def _merge_values(older: Bucket, newer: Bucket) -> dict[str, Any]:
    gauges = {k: list(v) for k, v in older.get("g", {}).items()}
    for name, (total, count) in newer.get("g", {}).items():
        mine = gauges.get(name, [0.0, 0.0])
        gauges[name] = [mine[0] + total, mine[1] + count]
    counters = {k: list(v) for k, v in older.get("c", {}).items()}
    for name, cur in newer.get("c", {}).items():
        first = counters.get(name)
        counters[name] = [first[0], first[1], cur[2], cur[3]] if first else list(cur)
    return {"g": gauges, "c": counters}


def merge(older: Bucket | None, newer: Bucket) -> dict[str, Any]:
    """One bucket of two consecutive ones (an hour and its next minute): the samples of both."""
    base = older or {}
    out = _merge_values(base, newer)
    for kind in SUB_CATALOGS:
        subs = {name: dict(sub) for name, sub in base.get(kind, {}).items()}
        for name, sub in newer.get(kind, {}).items():
            subs[name] = _merge_values(subs.get(name, {}), sub)
        if subs:
            out[kind] = subs
    return out


def _rate(prev: list[float] | None, cur: list[float]) -> float | None:
    if prev is not None and cur[2] >= prev[2] and cur[3] > prev[3]:
        return (cur[2] - prev[2]) / (cur[3] - prev[3])
    if cur[3] > cur[1] and cur[2] >= cur[0]:
        return (cur[2] - cur[0]) / (cur[3] - cur[1])
    return None


def point_value(
    name: str, bucket: Bucket | None, prev: Bucket | None, catalog: Catalog = CATALOG
) -> float | None:
    """The value of one bucket's point: a gauge's average, a counter's rate per second (see the module)."""
    if bucket is None:
        return None
    if catalog[name].counter:
        cur = bucket.get("c", {}).get(name)
        return _rate(prev.get("c", {}).get(name) if prev else None, cur) if cur else None
    total_count = bucket.get("g", {}).get(name)
    return total_count[0] / total_count[1] if total_count and total_count[1] else None


def sub_buckets(buckets: Iterable[Bucket], kind: str, name: str) -> list[dict[str, Any]]:
    """One partition's or database's buckets (``kind``: DISKS or DATABASES) of a host's buckets."""
    return [{**b.get(kind, {})[name], "t": b["t"]} for b in buckets if name in b.get(kind, {})]


def series(
    buckets: Iterable[Bucket],
    names: list[str],
    granularity_s: int,
    start_s: int,
    end_s: int,
    catalog: Catalog = CATALOG,
) -> dict[str, list[Point]]:
    """Each measurement's points from ``start_s`` to ``end_s`` (bucket starts), one per bucket, null
    where no sample arrived."""
    by_t = {int(b["t"]): b for b in buckets}
    first = bucket_start(start_s, granularity_s)
    starts = range(first, bucket_start(end_s, granularity_s) + 1, granularity_s)
    return {
        name: [(t, point_value(name, by_t.get(t), by_t.get(t - granularity_s), catalog)) for t in starts]
        for name in names
    }


def expired(bucket_t: int, granularity_s: int, now_s: float) -> bool:
    return bucket_t + granularity_s <= now_s - RETENTION_S[granularity_s]


def samples(report: StatusReport) -> dict[str, ProcessSample]:
    """Each reporting process's sample, by process name (none for a process that sent nothing)."""
    out = {}
    for p in report.processes:
        obs = p.observed
        if obs is None or not (obs.measurements or obs.disks or obs.databases):
            continue
        subs = {DISKS: obs.disks or {}, DATABASES: obs.databases or {}}
        out[p.name] = ProcessSample(obs.measurements or {}, subs)
    return out


class Measurements:
    """The measurement buckets in the application database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, group_id: str, report: StatusReport, at_s: float) -> None:
        """Fold the report's samples into each process's current minute (see the module)."""
        with self.store.tx() as txn:
            self.record_in(txn, group_id, report, at_s)

    def record_in(self, txn: Txn, group_id: str, report: StatusReport, at_s: float) -> None:
        """:meth:`record` in the caller's transaction (the one that keeps the report itself)."""
        for name, sample in samples(report).items():
            self._fold(txn, group_id, host_id(group_id, name), name, sample, at_s)

    def _fold(
        self, txn: Txn, group_id: str, host: str, process: str, sample: ProcessSample, at_s: float
    ) -> None:
        coll, minute = COLLECTIONS[MINUTE_S], bucket_start(at_s, MINUTE_S)
        open_id = host_prefix(group_id, host) + OPEN
        current = txn.get(coll, open_id)
        # A report a little behind the open minute (two requests crossing) still belongs to it.
        if current is not None and minute > int(current["t"]):
            self._close_minute(txn, group_id, host, current, at_s)
            current = None
        doc = {"_id": open_id, "groupId": group_id, "hostId": host, "processName": process}
        start = minute if current is None else int(current["t"])
        txn.put(coll, {**doc, "t": start, **fold_process(current, sample, at_s)})

    def _close_minute(self, txn: Txn, group_id: str, host: str, finished: Bucket, at_s: float) -> None:
        """Keep a finished minute under its own start and fold it into its hour, once."""
        t = int(finished["t"])
        txn.put(COLLECTIONS[MINUTE_S], {**finished, "_id": bucket_id(group_id, host, t)})
        hour = bucket_start(t, HOUR_S)
        hour_id = bucket_id(group_id, host, hour)
        folded = merge(txn.get(COLLECTIONS[HOUR_S], hour_id), finished)
        keys = {k: finished[k] for k in ("groupId", "hostId", "processName")}
        txn.put(COLLECTIONS[HOUR_S], {"_id": hour_id, **keys, "t": hour, **folded})
        if bucket_start(at_s, HOUR_S) != hour:
            self._prune(txn, group_id, host, at_s)

    def _prune(self, txn: Txn, group_id: str, host: str, now_s: float) -> None:
        for granularity_s, coll in COLLECTIONS.items():
            for doc in txn.find_prefix(coll, host_prefix(group_id, host), groupId=group_id):
                if expired(int(doc["t"]), granularity_s, now_s):
                    txn.delete(coll, str(doc["_id"]))

    def open_minute(self, group_id: str, host: str) -> dict[str, Any] | None:
        return self.store.get(COLLECTIONS[MINUTE_S], host_prefix(group_id, host) + OPEN)

    def buckets(
        self, group_id: str, host: str, granularity_s: int, start_s: int, end_s: int
    ) -> list[dict[str, Any]]:
        """The host's buckets from the one before ``start_s`` (a counter's first rate needs it) to
        ``end_s``; an hour's includes the open minute."""
        docs = self.store.find_prefix(
            COLLECTIONS[granularity_s], host_prefix(group_id, host), groupId=group_id
        )
        if granularity_s == HOUR_S:
            docs = _with_open_minute(docs, self.open_minute(group_id, host))
        low = bucket_start(start_s, granularity_s) - granularity_s
        return [d for d in docs if low <= int(d["t"]) <= end_s]

    def names(self, group_id: str, host: str, kind: str) -> list[str]:
        """The partitions or databases (``kind``) the host has reported in its open minute, that minute's
        hour and the hour before (the first minute of an hour may not have read its storage yet), sorted."""
        opened = self.open_minute(group_id, host)
        if opened is None:
            return []
        hour = bucket_start(int(opened["t"]), HOUR_S)
        found = set(opened.get(kind, {}))
        for t in (hour, hour - HOUR_S):
            found |= set(
                (self.store.get(COLLECTIONS[HOUR_S], bucket_id(group_id, host, t)) or {}).get(kind, {})
            )
        return sorted(found)


def _with_open_minute(hours: list[dict[str, Any]], opened: Bucket | None) -> list[dict[str, Any]]:
    """The hour buckets with the open minute folded into its hour (which may have no bucket yet)."""
    if opened is None:
        return hours
    hour = bucket_start(int(opened["t"]), HOUR_S)
    mine = next((h for h in hours if int(h["t"]) == hour), None)
    folded = {**(mine or {}), **merge(mine, opened), "t": hour}
    return sorted([h for h in hours if h is not mine] + [folded], key=lambda h: int(h["t"]))

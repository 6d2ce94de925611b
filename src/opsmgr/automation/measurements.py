"""Host measurements: what agents sample of their processes each cycle, kept at Ops Manager's granularities.

Owns the collections ``measurements_1m`` (one document per host and minute, kept 48 hours) and
``measurements_1h`` (one per host and hour, kept 60 days), the catalogue of the measurements kept
(:data:`CATALOG`: Ops Manager's names and units; a name outside it is dropped on arrival), and the series
``GET /groups/{id}/hosts/{hostId}/measurements`` answers with.

A bucket keeps, per gauge, the sum and count of its samples (its point is their average) and, per counter
(opcounters, page faults: cumulative since the process started), the first and last sample with their
instants; a counter's point is its rate per second from the previous bucket's last sample to this one's
(within the bucket when there is no previous one, or when the counter went back: the process restarted).
A bucket without samples is a point with a null value, as in Ops Manager. A report costs one transaction
that updates the host's current minute and hour buckets; buckets past their retention are deleted when a
host's new hour bucket is opened, so the store holds at most 48 * 60 + 60 * 24 buckets per host.

May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.automation``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opsmgr.automation.hosts import host_id
from opsmgr.automation.status import StatusReport
from opsmgr.store.engine import Store, Txn

MINUTE_S = 60
HOUR_S = 3600
COLLECTIONS = {MINUTE_S: "measurements_1m", HOUR_S: "measurements_1h"}
RETENTION_S = {MINUTE_S: 48 * HOUR_S, HOUR_S: 60 * 24 * HOUR_S}


@dataclass(frozen=True)
class Measure:
    units: str
    counter: bool = False  # cumulative: shown as a rate per second


_RATE = Measure("SCALAR_PER_SECOND", counter=True)
CATALOG: dict[str, Measure] = {
    "CONNECTIONS": Measure("SCALAR"),
    "OPCOUNTER_INSERT": _RATE,
    "OPCOUNTER_QUERY": _RATE,
    "OPCOUNTER_UPDATE": _RATE,
    "OPCOUNTER_DELETE": _RATE,
    "OPCOUNTER_CMD": _RATE,
    "OPCOUNTER_GETMORE": _RATE,
    "EXTRA_INFO_PAGE_FAULTS": _RATE,
    "MEMORY_RESIDENT": Measure("MEGABYTES"),
    "MEMORY_VIRTUAL": Measure("MEGABYTES"),
    "TICKETS_AVAILABLE_READS": Measure("SCALAR"),
    "TICKETS_AVAILABLE_WRITE": Measure("SCALAR"),
    "OPLOG_MASTER_TIME": Measure("HOURS"),
    "OPLOG_SLAVE_LAG_MASTER_TIME": Measure("SECONDS"),
    "DISK_PARTITION_SPACE_USED": Measure("BYTES"),
    "DISK_PARTITION_SPACE_FREE": Measure("BYTES"),
}

Point = tuple[int, float | None]  # (bucket start, epoch seconds; value)


def bucket_start(at_s: float, granularity_s: int) -> int:
    return int(at_s // granularity_s) * granularity_s


def bucket_id(group_id: str, host: str, start_s: int) -> str:
    # Zero-padded so that a host's buckets sort by time.
    return f"{group_id}:{host}:{start_s:012d}"


def fold(bucket: Mapping[str, Any] | None, sample: Mapping[str, float], at_s: float) -> dict[str, Any]:
    """The bucket with one more sample: gauges add to their sum and count, counters move their last value."""
    gauges: dict[str, list[float]] = {k: list(v) for k, v in (bucket or {}).get("g", {}).items()}
    counters: dict[str, list[float]] = {k: list(v) for k, v in (bucket or {}).get("c", {}).items()}
    for name, value in sample.items():
        measure = CATALOG.get(name)
        if measure is None:
            continue
        if measure.counter:
            first = counters.get(name)
            counters[name] = [first[0], first[1], value, at_s] if first else [value, at_s, value, at_s]
        else:
            total, count = gauges.get(name, [0.0, 0.0])
            gauges[name] = [total + value, count + 1]
    return {"g": gauges, "c": counters}


def _rate(prev: list[float] | None, cur: list[float]) -> float | None:
    if prev is not None and cur[2] >= prev[2] and cur[3] > prev[3]:
        return (cur[2] - prev[2]) / (cur[3] - prev[3])
    if cur[3] > cur[1] and cur[2] >= cur[0]:
        return (cur[2] - cur[0]) / (cur[3] - cur[1])
    return None


def point_value(name: str, bucket: Mapping[str, Any] | None, prev: Mapping[str, Any] | None) -> float | None:
    """The value of one bucket's point: a gauge's average, a counter's rate per second (see the module)."""
    if bucket is None:
        return None
    if CATALOG[name].counter:
        cur = bucket.get("c", {}).get(name)
        return _rate(prev.get("c", {}).get(name) if prev else None, cur) if cur else None
    total_count = bucket.get("g", {}).get(name)
    return total_count[0] / total_count[1] if total_count and total_count[1] else None


def series(
    buckets: Iterable[Mapping[str, Any]], names: list[str], granularity_s: int, start_s: int, end_s: int
) -> dict[str, list[Point]]:
    """Each measurement's points from ``start_s`` to ``end_s`` (bucket starts), one per bucket, null
    where no sample arrived."""
    by_t = {int(b["t"]): b for b in buckets}
    first = bucket_start(start_s, granularity_s)
    starts = range(first, bucket_start(end_s, granularity_s) + 1, granularity_s)
    return {
        name: [(t, point_value(name, by_t.get(t), by_t.get(t - granularity_s))) for t in starts]
        for name in names
    }


def expired(bucket_t: int, granularity_s: int, now_s: float) -> bool:
    return bucket_t + granularity_s <= now_s - RETENTION_S[granularity_s]


class Measurements:
    """The measurement buckets in the application database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, group_id: str, report: StatusReport, at_s: float) -> None:
        """Fold the report's samples into each process's current minute and hour buckets."""
        samples = {
            p.name: p.observed.measurements
            for p in report.processes
            if p.observed is not None and p.observed.measurements
        }
        if not samples:
            return
        with self.store.tx() as txn:
            for name, sample in samples.items():
                host = host_id(group_id, name)
                for granularity_s in COLLECTIONS:
                    self._fold(txn, group_id, host, name, granularity_s, sample, at_s)

    def _fold(
        self,
        txn: Txn,
        group_id: str,
        host: str,
        process: str,
        granularity_s: int,
        sample: Mapping[str, float],
        at_s: float,
    ) -> None:
        coll, start = COLLECTIONS[granularity_s], bucket_start(at_s, granularity_s)
        doc_id = bucket_id(group_id, host, start)
        current = txn.get(coll, doc_id)
        doc = {"_id": doc_id, "groupId": group_id, "hostId": host, "processName": process, "t": start}
        txn.put(coll, {**doc, **fold(current, sample, at_s)})
        if current is None and granularity_s == HOUR_S:
            self._prune(txn, group_id, host, at_s)

    def _prune(self, txn: Txn, group_id: str, host: str, now_s: float) -> None:
        for granularity_s, coll in COLLECTIONS.items():
            for doc in txn.find_prefix(coll, bucket_id(group_id, host, 0)[:-12], groupId=group_id):
                if expired(int(doc["t"]), granularity_s, now_s):
                    txn.delete(coll, str(doc["_id"]))

    def buckets(
        self, group_id: str, host: str, granularity_s: int, start_s: int, end_s: int
    ) -> list[dict[str, Any]]:
        """The host's buckets from the one before ``start_s`` (a counter's first rate needs it) to
        ``end_s``."""
        prefix = bucket_id(group_id, host, 0)[:-12]
        docs = self.store.find_prefix(COLLECTIONS[granularity_s], prefix, groupId=group_id)
        low = bucket_start(start_s, granularity_s) - granularity_s
        return [d for d in docs if low <= int(d["t"]) <= end_s]

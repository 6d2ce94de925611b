"""What one agent cycle reads of this host's processes, and how it reports what it read.

Owns the cycle's one snapshot of the host (each process's state, its replica set's status and config, its
connections and oplog window, read through the driver in one go) and the ``observed`` part of a process in
the status report, in the shape of Ops Manager's automationStatus, with the cycle's sample of the process's
Ops Manager host measurements (``measurements``: what ``serverStatus`` gives, plus ``CONNECTIONS``, the
replication lag ``OPLOG_SLAVE_LAG_MASTER_TIME`` in seconds and the oplog window ``OPLOG_MASTER_TIME`` in
hours), and of its storage (``disks``: each partition of its data, ``databases``: each database's
``dbStats``, at most ``drivers.base.MAX_DATABASES``; Ops Manager's disk and database measurements, read
at most every :data:`STORAGE_INTERVAL_S` per process: see :class:`StorageSchedule`).
Reads only: it never changes a process.

A running mongos is read as a router (its connections and measurements, and the cluster through it:
``listShards`` and the sharded collections), with no replica set questions. May import ``opsmgr.errors``,
``opsmgr.drivers.base``, ``opsmgr.agent.plan`` and ``opsmgr.agent.sharding``.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opsmgr.agent.plan import LocalProcess, Snapshot
from opsmgr.agent.sharding import RouterView, sharding_driver
from opsmgr.drivers.base import Driver, OplogWindow, ProcessObservation, RsStatus, RunMode, StorageSample
from opsmgr.errors import OpsmgrError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SampledProcess(LocalProcess):
    """A running process with the cycle's measurement sample (what the report ships; no decision reads it)."""

    measurements: Mapping[str, float] = field(default_factory=dict)
    storage: StorageSample = field(default_factory=StorageSample)


def read_snapshot(
    driver: Driver,
    names: list[str],
    initiated_sets: frozenset[str],
    oplog_windows: bool = False,
    routers: frozenset[str] = frozenset(),
) -> Snapshot:
    """Everything the cycle's decisions need from the driver, read in one go (one worker-thread hop for
    mongod): each process's state, its replica set's status and config, its client connections and, with
    ``oplog_windows`` (while a rolling change may check them), the oplog window of each member in its set;
    of each running mongos among ``routers``, its cluster as ``listShards`` and the sharded collections
    show it."""
    processes: dict[str, LocalProcess] = {}
    for name in names:
        obs = driver.observe(name)
        if not obs.running:
            processes[name] = LocalProcess(obs)
            continue
        if name in routers:
            processes[name] = _router(driver, obs)
            continue
        replset = obs.mode is RunMode.REPLSET
        status, connections = _quietly(driver.rs_status, name), _quietly(driver.connections, name)
        # The window is a measurement of every member; decisions see it only while a rolling change may.
        window = _quietly(driver.oplog_window, name) if replset else None
        processes[name] = SampledProcess(
            obs,
            rs_status=status,
            rs_config=_quietly(driver.rs_config, name),
            connections=connections,
            oplog_window=window if oplog_windows else None,
            measurements=sample(_quietly(driver.server_sample, name), connections, status, window),
            storage=STORAGE.sample(driver, name, time.monotonic()),
        )
    return Snapshot(processes, initiated_sets)


def _router(driver: Driver, obs: ProcessObservation) -> SampledProcess:
    """A running mongos: no replica set of its own; the cluster read through it (None where it cannot
    answer: its config servers without a primary)."""
    sharding, name = sharding_driver(driver), obs.name
    shards = _quietly(sharding.list_shards, name) if sharding is not None else None
    collections = _quietly(sharding.sharded_collections, name) if sharding is not None else None
    connections = _quietly(driver.connections, name)
    return SampledProcess(
        obs,
        connections=connections,
        router=RouterView(
            tuple(shards) if shards is not None else None,
            tuple(collections) if collections is not None else None,
        ),
        measurements=sample(_quietly(driver.server_sample, name), connections, None, None),
    )


class StorageSchedule:
    """When each driver's processes' storage was last read: ``dbStats`` of every database (the sim counts
    every document) costs far more than ``serverStatus``, so a process's storage is read at most every
    :data:`STORAGE_INTERVAL_S` and the reports between carry none (the server's minute keeps what came).
    Keyed by the driver (an agent's), weakly: a driver gone takes its times with it."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._read_at: weakref.WeakKeyDictionary[Driver, dict[str, float]] = weakref.WeakKeyDictionary()

    def sample(self, driver: Driver, name: str, now: float) -> StorageSample:
        read_at = self._read_at.setdefault(driver, {})
        if now - read_at.get(name, -math.inf) < self.interval_s:
            return StorageSample()
        read_at[name] = now
        return _quietly(driver.storage_sample, name) or StorageSample()


STORAGE_INTERVAL_S = 5.0
STORAGE = StorageSchedule(STORAGE_INTERVAL_S)


def sample(
    server: Mapping[str, float] | None,
    connections: int | None,
    status: RsStatus | None,
    window: OplogWindow | None,
) -> dict[str, float]:
    """One cycle's measurements of a process, from what the driver answered (what it did not is left out)."""
    out = dict(server or {})
    if connections is not None:
        out["CONNECTIONS"] = float(connections)
    lag = lag_seconds(status)
    if lag is not None:
        out["OPLOG_SLAVE_LAG_MASTER_TIME"] = lag
    if window is not None:
        out["OPLOG_MASTER_TIME"] = round(window.window_hours, 6)
    return out


def _quietly(fn: Callable[[str], T | None], name: str) -> T | None:
    """A process can die between two questions; what it cannot answer is unknown, not an error."""
    try:
        return fn(name)
    except OpsmgrError as exc:
        log.debug("%s(%s) failed: %s", getattr(fn, "__name__", fn), name, exc.detail)
        return None


def status_observed(local: LocalProcess | None, hostname: str) -> dict[str, Any]:
    if local is None:
        return {
            "hostname": hostname,
            "port": None,
            "running": False,
            "mode": None,
            "version": None,
            "replicaSetName": None,
            "replicaStateName": None,
            "optimeTs": None,
            "connections": None,
            "lagSeconds": None,
            "measurements": None,
            "disks": None,
            "databases": None,
        }
    obs, status = local.observation, local.rs_status
    sampled = local if isinstance(local, SampledProcess) else None
    me = next((m for m in status.members if m.self), None) if status is not None else None
    return {
        "hostname": hostname,
        "port": obs.port,
        "running": obs.running,
        "mode": obs.mode.value if obs.mode is not None else None,
        "version": obs.version,
        "replicaSetName": status.set_name if status is not None else None,
        "replicaStateName": status.my_state.value if status is not None else None,
        "optimeTs": me.optime_ts if me is not None else None,
        "connections": local.connections,
        "lagSeconds": lag_seconds(status),
        "measurements": dict(sampled.measurements) if sampled else None,
        "disks": dict(sampled.storage.partitions) or None if sampled else None,
        "databases": dict(sampled.storage.databases) or None if sampled else None,
    }


def lag_seconds(status: RsStatus | None) -> float | None:
    if status is None:
        return None
    primary, me = status.primary(), next((m for m in status.members if m.self), None)
    if primary is None or me is None or not me.optime_ts or not primary.optime_ts:
        return None
    return float(max(0, (primary.optime_ts >> 32) - (me.optime_ts >> 32)))

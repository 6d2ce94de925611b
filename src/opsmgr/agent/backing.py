"""The agent's backup of a server's backing databases: the agent on the primary's host, registered with the
**secondary**, ships the primary's three stores (application database, snapshot metadata store, oplog
metadata store) to the secondary's backup daemon, through the same agent routes replica sets use.

Configured in ``automation-agent.config`` (``mmsGroupId``/``mmsApiKey``/``mmsBaseUrl`` name the secondary):

==============================  ==========================================================================
``backing.primaryConf``         the primary's ``conf-mms.properties``: the three store URIs are read from it
``backing.appDbUri``            or each URI given explicitly (SQLite ``sqlite:///FILE`` or PostgreSQL),
``backing.snapshotStoreUri``    overriding the file's
``backing.oplogStoreUri``
``backing.sliceSeconds``        how often a slice is cut and shipped (default 1 s)
``backing.sliceMaxEntries``     at most this many entries per slice (default 2000)
``backing.sliceMaxBytes``       and about this many bytes (default 4 MB)
==============================  ==========================================================================

Per store, whose source the secondary lists for this host (the agent's work list): ask where to
resume (``acknowledged``); on SYNC_REQUIRED do an **initial sync** (the oplog position before reading,
every document per collection, the position after as ``minValid``); then ship ``Store.oplog_after`` from the
acknowledged position as slices ``(acknowledged, last entry]``, compressed and checksummed, data then
metadata in one upload, and continue from what the daemon acknowledges, so a restart of either side resumes
exactly. ``OplogGap`` (the store's oplog was capped past the position) is reported; the daemon records the
hole, asks for a resync, and the next step does it. A store with a restore fence is being replaced: nothing
is shipped from it until the fence is gone.

May import ``opsmgr.agent``, ``opsmgr.backup.slices``, ``opsmgr.errors``, ``opsmgr.properties`` and
``opsmgr.store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from opsmgr.agent.backup import DOC_CHUNK, BackupWorker
from opsmgr.agent.client import ServerUnreachable
from opsmgr.backup.slices import encode_slice
from opsmgr.errors import InvalidInput, OplogGap, OpsmgrError
from opsmgr.properties import load_properties
from opsmgr.store.engine import OplogEntry, Store
from opsmgr.store.installation import read_fence

log = logging.getLogger("opsmgr.agent.backing")
T = TypeVar("T")

STORE_NAMES = ("app", "snapshot", "oplog")
LABELS = {
    "app": "application database",
    "snapshot": "snapshot metadata store",
    "oplog": "oplog metadata store",
}
# The primary's conf-mms.properties keys of each store, and the agent config keys that override them.
CONF_KEYS = {
    "app": "mongo.mongoUri",
    "snapshot": "mms.snapshotMetadataStore.uri",
    "oplog": "mms.oplogMetadataStore.uri",
}
AGENT_KEYS = {
    "app": "backing.appDbUri",
    "snapshot": "backing.snapshotStoreUri",
    "oplog": "backing.oplogStoreUri",
}


@dataclass(frozen=True)
class BackingConfig:
    uris: dict[str, str]  # store name -> URI
    interval_s: float = 1.0
    max_entries: int = 2000
    max_bytes: int = 4 * 1024 * 1024
    primary_conf: Path | None = None


def primary_store_uris(conf: Path) -> dict[str, str]:
    """The three store URIs of the primary's ``conf-mms.properties``, resolved as the server resolves them."""
    from opsmgr.server.settings import load_conf

    settings = load_conf(conf)
    return {
        "app": settings.app_db_uri,
        "snapshot": settings.snapshot_store_uri,
        "oplog": settings.oplog_store_uri,
    }


def _number(values: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    text = values.get(key, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise InvalidInput(f"{key} must be a number from {low:g} to {high:g}, not {text!r}", field=key)
    return value


def backing_config(values: Mapping[str, str], base_dir: Path | None = None) -> BackingConfig | None:
    """The backing-database part of an agent config, or None when it backs up none."""
    conf_text = values.get("backing.primaryConf", "").strip()
    conf = None
    uris: dict[str, str] = {}
    if conf_text:
        conf = Path(conf_text).expanduser()
        if not conf.is_absolute() and base_dir is not None:
            conf = base_dir / conf
        uris = primary_store_uris(conf)
    for name, key in AGENT_KEYS.items():
        if text := values.get(key, "").strip():
            uris[name] = text
    if not uris:
        return None
    return BackingConfig(
        uris=uris,
        interval_s=_number(values, "backing.sliceSeconds", 1.0, 0.05, 600),
        max_entries=int(_number(values, "backing.sliceMaxEntries", 2000, 1, 100_000)),
        max_bytes=int(_number(values, "backing.sliceMaxBytes", 4 * 1024 * 1024, 1024, 6 * 1024 * 1024)),
        primary_conf=conf,
    )


def load_backing_config(config_path: Path) -> BackingConfig | None:
    return backing_config(load_properties(config_path), config_path.resolve().parent)


def _entry_size(e: OplogEntry) -> int:
    return 64 + len(e.ns) + len(e.id) + (len(repr(e.doc)) if e.doc is not None else 0)


@dataclass
class BackingShipper:
    """Ships the configured stores to the daemon that ``channel`` (the agent's backup worker) talks to."""

    channel: BackupWorker
    config: BackingConfig
    stores: dict[str, Store] = field(default_factory=dict)

    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # SQLite store -> (device, inode) opened

    def store(self, name: str) -> Store | None:
        """The store, reopened when its SQLite file was replaced; None when the file is missing (the agent
        must not create the primary's database: a restore does)."""
        uri = self.config.uris[name]
        url = sa.engine.make_url(uri)
        if url.get_backend_name() == "sqlite" and url.database:
            try:
                st = os.stat(url.database)
            except FileNotFoundError:
                self._drop(name)
                return None
            if self.files.get(name) != (st.st_dev, st.st_ino):
                self._drop(name)
                self.files[name] = (st.st_dev, st.st_ino)
        if name not in self.stores:
            self.stores[name] = Store(uri, name=f"primary's {LABELS[name]}")
        return self.stores[name]

    def _drop(self, name: str) -> None:
        self.files.pop(name, None)
        if (old := self.stores.pop(name, None)) is not None:
            old.close()

    def close(self) -> None:
        for name in list(self.stores):
            self._drop(name)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def step(self) -> dict[str, str]:
        """One pass over the stores; returns what happened to each (for logs and tests). An unreachable
        secondary ends the pass (:class:`ServerUnreachable`): the next store would not reach it either."""
        done: dict[str, str] = {}
        for source in self.channel.work().backing:
            name = source.get("name")
            if name not in self.config.uris:
                continue
            try:
                done[name] = await self.ship(source["sourceId"], name)
            except ServerUnreachable:
                raise
            except OpsmgrError as exc:
                done[name] = f"failed: {exc.detail}"
                log.warning("backup of the primary's %s: %s", LABELS.get(name, name), exc.detail)
        return done

    async def ship(self, sid: str, name: str) -> str:
        store = await self._call(self.store, name)
        if store is None:
            return "missing: the store's file does not exist"
        if (fence := await self._call(read_fence, store)) is not None:
            return f"fenced: {fence.describe()}"
        ack = await self.channel._json("GET", f"/sources/{sid}/acknowledged")
        synced = ""
        if ack["status"] == "SYNC_REQUIRED":
            ack = await self.initial_sync(sid, name, store)
            synced = "initial sync, "
        position = int(ack["acknowledged"])
        shipped = 0
        while True:
            try:
                # Taken before the read: if the read finds nothing, nothing up to it can appear later.
                quiet = await self._call(store.quiet_position)
                entries = await self._call(store.oplog_after, position, self.config.max_entries)
            except OplogGap as exc:
                log.warning(
                    "the primary's %s no longer holds the entries after %s: gap", LABELS[name], position
                )
                await self.channel._json(
                    "POST",
                    f"/sources/{sid}/gap",
                    json={"firstAvailable": exc.first_available_ts, "detail": exc.detail},
                )
                return f"{synced}gap after {position}"
            batch = self._cut(entries)
            if not batch and quiet <= position:
                return f"{synced}{shipped} entries shipped, at {position}"
            # An empty slice up to the quiet position says the store had no writes: the window advances.
            end = batch[-1].ts if batch else quiet
            data = encode_slice(position, end, [e.to_json() for e in batch])
            result = await self.channel._json(
                "POST",
                f"/sources/{sid}/slices",
                content=data,
                headers={"content-type": "application/octet-stream"},
            )
            if result["status"] not in ("ACCEPTED", "DUPLICATE") or result["acknowledged"] is None:
                log.warning("slice of the primary's %s refused: %s", LABELS[name], result)
                return f"{synced}refused: {result.get('detail') or result['status']}"
            position = int(result["acknowledged"])
            shipped += len(batch)
            if not batch:
                return f"{synced}{shipped} entries shipped, at {position}"

    def _cut(self, entries: list[OplogEntry]) -> list[OplogEntry]:
        """The entries of one slice: up to the size limit (at least one entry)."""
        size = 0
        for i, e in enumerate(entries):
            size += _entry_size(e)
            if size > self.config.max_bytes and i > 0:
                return entries[:i]
        return entries

    async def initial_sync(self, sid: str, name: str, store: Store) -> dict[str, Any]:
        def position() -> int:
            bounds = store.oplog_bounds()
            return max(bounds.last_ts or 0, bounds.truncated_through)

        start = await self._call(position)
        sync_id = (await self.channel._json("POST", f"/sources/{sid}/sync", json={"position": start}))[
            "syncId"
        ]
        count = 0
        for coll in await self._call(store.collections):
            docs = await self._call(store.find, coll)
            for i in range(0, len(docs), DOC_CHUNK):
                chunk = [[coll, d] for d in docs[i : i + DOC_CHUNK]]
                await self.channel._json(
                    "POST", f"/sources/{sid}/sync/{sync_id}/documents", json={"docs": chunk}
                )
            count += len(docs)
        min_valid = max(await self._call(position), start)
        log.info("initial sync of the primary's %s: %d documents at %s", LABELS[name], count, start)
        return await self.channel._json(
            "POST", f"/sources/{sid}/sync/{sync_id}/finish", json={"minValid": min_valid}
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Steps every ``interval_s`` (the time bound of a slice) until ``stop`` is set."""
        try:
            while not stop.is_set():
                try:
                    await self.step()
                except OpsmgrError as exc:
                    # The secondary is down or refusing: backup pauses, the primary is not affected.
                    log.debug("backing-database backup step: %s", exc.detail)
                except Exception:  # backup must never take the agent down
                    log.exception("backing-database backup step failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.interval_s)
        finally:
            self.close()

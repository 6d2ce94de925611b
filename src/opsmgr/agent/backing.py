"""The agent's backup of a server's backing databases: the agent on the primary's host, registered with the
**secondary**, ships the primary's three stores (application database, snapshot metadata store, oplog
metadata store) to the secondary's backup daemon, through the same agent routes and the same
:class:`~opsmgr.agent.shipper.Shipper` replica sets use; this module is the :class:`BackingStore` adapter.

Configured in ``automation-agent.config`` (``mmsGroupId``/``mmsApiKey``/``mmsBaseUrl`` name the secondary):

==============================  ==========================================================================
``backing.primaryConf``         the primary's ``conf-mms.properties``: the three store URIs are read from it
``backing.appDbUri``            or each URI given explicitly (SQLite ``sqlite:///FILE`` or PostgreSQL),
``backing.snapshotStoreUri``    overriding the file's
``backing.oplogStoreUri``
``backing.sliceSeconds``        how often a slice is cut and shipped (default 1 s; an idle store gets an
                                empty slice at most this often, which keeps its window advancing)
``backing.sliceMaxEntries``     at most this many entries per slice (default 2000)
``backing.sliceMaxBytes``       and about this many bytes (default 4 MB)
==============================  ==========================================================================

Each store the secondary lists for this host (the agent's work list, ``backing``) is shipped while it can
be: a store with a restore fence is being replaced, and nothing is shipped from it until the fence is gone;
a SQLite store whose file is missing is not created (a restore does that), and one whose file was replaced
is reopened. Its initial sync copies every document per collection; its quiet position (the store's clock
under the writer lock) lets an idle store's window advance.

Imports ``opsmgr.store`` and ``opsmgr.conf`` only inside the functions that need them (the stores' names from
the light ``store.backing``, the store's engine when a store is opened), so an agent that backs up none never
loads SQLAlchemy. May import ``opsmgr.agent``, ``opsmgr.conf``, ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmgr.agent.runtime import Runtime
from opsmgr.agent.shipper import DOC_CHUNK, Documents, OplogSource, Slicing
from opsmgr.agent.work import WorkList
from opsmgr.errors import InvalidInput, OpsmgrError

if TYPE_CHECKING:
    from opsmgr.store import Store


@dataclass(frozen=True)
class BackingConfig:
    uris: dict[str, str]  # store name -> URI
    interval_s: float = 1.0
    max_entries: int = 2000
    max_bytes: int = 4 * 1024 * 1024
    primary_conf: Path | None = None

    @property
    def slicing(self) -> Slicing:
        return Slicing(self.interval_s, self.max_entries, self.max_bytes)


def primary_store_uris(conf: Path) -> dict[str, str]:
    """The three store URIs of the primary's ``conf-mms.properties``, resolved as the server resolves them."""
    from opsmgr.conf import backing_uris

    return backing_uris(conf).by_name()


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
    from opsmgr.store.backing import BACKING

    for b in BACKING:
        if text := values.get(b.agent_key, "").strip():
            uris[b.name.value] = text
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
    from opsmgr.conf import read_properties_file

    return backing_config(read_properties_file(config_path), config_path.resolve().parent)


def _label(name: str) -> str:
    from opsmgr.store.backing import LABELS

    return LABELS.get(name, name)


@dataclass
class BackingStore:
    """One of the primary's stores as an :class:`~opsmgr.agent.shipper.OplogSource`."""

    runtime: Runtime
    name: str  # app, snapshot or oplog
    uri: str
    slicing: Slicing
    store: Store | None = None
    file: tuple[int, int] | None = None  # (device, inode) of the SQLite file opened

    @property
    def label(self) -> str:
        return f"the primary's {_label(self.name)}"

    def _open(self) -> Store | None:
        """The store, reopened when its SQLite file was replaced; None when the file is missing (the agent
        must not create the primary's database: a restore does)."""
        from opsmgr.store import Store
        from opsmgr.store.engine import sqlite_file

        path = sqlite_file(self.uri)
        if path is not None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                self.close()
                return None
            if self.file != (st.st_dev, st.st_ino):
                self.close()
                self.file = (st.st_dev, st.st_ino)
        if self.store is None:
            self.store = Store(self.uri, name=f"primary's {_label(self.name)}")
        return self.store

    def _opened(self) -> Store:
        if self.store is None:
            raise OpsmgrError(f"{self.label} is not open")
        return self.store

    async def available(self) -> str | None:
        from opsmgr.store.installation import read_fence

        store = await self.runtime.run_blocking(self._open)
        if store is None:
            return "missing: the store's file does not exist"
        if (fence := await self.runtime.run_blocking(read_fence, store)) is not None:
            return f"fenced: {fence.describe()}"
        return None

    async def newest(self) -> int | None:
        bounds = await self.runtime.run_blocking(self._opened().oplog_bounds)
        return max(bounds.last_ts or 0, bounds.truncated_through)

    async def read_after(self, position: int, limit: int) -> list[dict[str, Any]]:
        entries = await self.runtime.run_blocking(self._opened().oplog_after, position, limit)
        return [e.to_json() for e in entries]

    async def quiet_position(self) -> int | None:
        return await self.runtime.run_blocking(self._opened().quiet_position)

    async def documents(self) -> AsyncIterator[Documents]:
        store = self._opened()
        for coll in await self.runtime.run_blocking(store.collections):
            docs = await self.runtime.run_blocking(store.find, coll)
            for i in range(0, len(docs), DOC_CHUNK):
                yield [(coll, d) for d in docs[i : i + DOC_CHUNK]]

    def close(self) -> None:
        self.file = None
        if self.store is not None:
            self.store.close()
            self.store = None


@dataclass
class BackingStores:
    """The :class:`~opsmgr.agent.shipper.Feed` of the configured stores the work list names for this host."""

    runtime: Runtime
    config: BackingConfig
    work: Callable[[], WorkList]
    stores: dict[str, BackingStore] = field(default_factory=dict)  # by source id

    def sources(self) -> Mapping[str, OplogSource]:
        wanted = {s["sourceId"]: s["name"] for s in self.work().backing if s.get("name") in self.config.uris}
        for sid in [sid for sid, st in self.stores.items() if wanted.get(sid) != st.name]:
            self.stores.pop(sid).close()
        for sid, name in wanted.items():
            if sid not in self.stores:
                self.stores[sid] = BackingStore(
                    self.runtime, name, self.config.uris[name], self.config.slicing
                )
        return self.stores

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        self.stores = {}

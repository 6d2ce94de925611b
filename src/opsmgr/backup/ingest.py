"""What the agents send the daemon: initial syncs (recorded batch by batch, ``backup.syncs``; the head built
from one is consistent once the slices reach its ``minValid``), oplog slices (appended to the source's chain
in the oplog metadata store, a break in it a gap), the acknowledged position agents resume from, gaps they
find at the source, and their contact with the daemon (for the backup alerts: kept in memory and, at most
every :data:`CONTACT_WRITE_S` per source, in the oplog metadata store, since the server whose job raises
those alerts may not be the one the agents reach; a ``daemon``-only server is reached by none).

Ingestion only records, in the shared stores (blocks, then the oplog metadata store, under the slice
catalog's own per-source lock): it never touches a head, so any server may take any of an agent's requests,
an upload never waits for a snapshot, and the heads are the backup job owner's (``backup.head_keeper``).
May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.backup``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from opsmgr.backup.blockstore import Blockstore
from opsmgr.backup.slices import SliceCatalog, SliceResult, SliceStatus, decode_slice, normalise
from opsmgr.backup.sources import Clock, Sources, now_ms
from opsmgr.backup.syncs import SyncCatalog
from opsmgr.errors import InvalidInput

log = logging.getLogger("opsmgr.backup")

CONTACTS = "backup_agent_contacts"
CONTACT_WRITE_S = 5  # far below the silence an alert waits for (minutes), and one write per source at most


class Ingest:
    """The agents' side of the daemon: initial syncs and slices."""

    def __init__(
        self,
        sources: Sources,
        slices: SliceCatalog,
        blockstore: Blockstore,
        clock: Clock,
    ) -> None:
        self.sources = sources
        self.slices = slices
        self.syncs = SyncCatalog(slices.store)
        self.blockstore = blockstore
        self.clock = clock
        # Agent contact per source (when, and the newest source entry it saw) as this server heard it, and
        # when this server last recorded it in the shared store.
        self._contact: dict[str, tuple[int, int | None]] = {}
        self._recorded: dict[str, int] = {}

    # Initial syncs.

    def start_sync(self, source_id: str, position: int) -> str:
        """Begins an initial sync whose documents are read after the source's oplog reached ``position``;
        returns its id. The current chain goes on until :meth:`finish_sync`."""
        self.sources.get(source_id)
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise InvalidInput("position must be a non-negative integer", field="position")
        sync_id = self.syncs.start(source_id, position, now_ms(self.clock))
        log.info("source %s: initial sync %s from position %s", source_id, sync_id, position)
        return sync_id

    def sync_documents(self, source_id: str, sync_id: str, docs: Iterable[tuple[str, dict[str, Any]]]) -> int:
        return self.syncs.add(self.blockstore, source_id, sync_id, docs)

    def finish_sync(self, source_id: str, sync_id: str, min_valid: int) -> SliceResult:
        """Ends an initial sync: the source's oplog had reached ``min_valid`` when the last document was
        read. A new chain starts at the sync's position (the agent ships slices from the acknowledged
        position on) and the job's owner builds its head from the sync. Calling it again is harmless."""
        sync = self.syncs.finish(source_id, sync_id, min_valid)
        chain = self.slices.begin_chain(source_id, sync_id, sync.position, now_ms(self.clock))
        log.info("source %s: initial sync %s finished; slices from %s", source_id, sync_id, chain.tip)
        return SliceResult(SliceStatus.ACCEPTED, chain.tip, sync_id)

    def initial_sync(
        self, source_id: str, position: int, docs: Iterable[tuple[str, dict[str, Any]]], min_valid: int
    ) -> SliceResult:
        """:meth:`start_sync`, :meth:`sync_documents` and :meth:`finish_sync` in one call."""
        sync_id = self.start_sync(source_id, position)
        self.sync_documents(source_id, sync_id, docs)
        return self.finish_sync(source_id, sync_id, min_valid)

    # Slices.

    def ingest_slice(
        self, source_id: str, start: int, end: int, entries: list[dict[str, Any]]
    ) -> SliceResult:
        """Stores a slice ``(start, end]`` of the source's oplog, in the source's own entry shape."""
        src = self.sources.get(source_id)
        changes = normalise(src.position_kind, start, end, entries)
        result = self.slices.append(self.blockstore, source_id, start, end, changes, now_ms(self.clock))
        if result.status is SliceStatus.GAP:
            log.warning("source %s: oplog gap: %s", source_id, result.detail)
        return result

    def ingest_slice_bytes(self, source_id: str, data: bytes) -> SliceResult:
        """Stores a slice in the wire format of ``backup.slices.encode_slice``."""
        upload = decode_slice(data)
        return self.ingest_slice(source_id, upload.start, upload.end, upload.entries)

    def acknowledged(self, source_id: str) -> SliceResult:
        """Where the agent resumes: the chain's tip, or SYNC_REQUIRED."""
        chain = self.slices.chain(source_id)
        if chain is None or chain.chain is None or chain.syncRequired:
            why = chain.syncRequired if chain and chain.syncRequired else "no initial sync yet"
            return SliceResult(SliceStatus.SYNC_REQUIRED, None, None, why)
        return SliceResult(SliceStatus.ACCEPTED, chain.tip, chain.chain)

    def report_gap(self, source_id: str, first_available: int | None, detail: str = "") -> None:
        """The agent found the source's oplog no longer holds the entries after the tip: a new initial
        sync is needed, and the window will show a hole up to it."""
        chain = self.slices.chain(source_id)
        tip = chain.tip if chain else None
        reason = detail or f"the source's oplog no longer holds the entries after {tip}"
        gap = {"afterTs": tip, "firstAvailable": first_available}
        self.slices.require_sync(source_id, reason, now_ms(self.clock), gap)
        log.warning("source %s: oplog gap reported by the agent: %s", source_id, reason)

    def require_resync(self, source_id: str, reason: str) -> None:
        """Refuse slices until a new initial sync (after a restore overwrote the source, say)."""
        self.slices.require_sync(source_id, reason, now_ms(self.clock))

    # Agent contact.

    def note_agent(self, source_id: str, source_last: int | None = None) -> None:
        """An agent reached the daemon for the source; ``source_last`` is the newest entry of the source's
        oplog it saw (how far backup is behind the source, for alerts)."""
        if source_last is None:
            source_last = self.contact(source_id)[1]
        now = now_ms(self.clock)
        self._contact[source_id] = (now, source_last)
        if now - self._recorded.get(source_id, -CONTACT_WRITE_S * 1000) < CONTACT_WRITE_S * 1000:
            return
        self._recorded[source_id] = now
        with self.slices.store.tx() as t:
            stored = t.get(CONTACTS, source_id)
            if stored is None or stored["at"] < now:  # servers' writes may cross: the newest stays
                t.put(CONTACTS, {"_id": source_id, "at": now, "sourceLast": source_last})

    def contact(self, source_id: str) -> tuple[int | None, int | None]:
        """When an agent last reached the daemon for the source (any server) and the newest source entry it
        saw; after every server's restart, silence is counted from the daemon's start."""
        heard = self._contact.get(source_id)
        stored = self.slices.store.get(CONTACTS, source_id)
        if stored is not None and (heard is None or stored["at"] > heard[0]):
            return int(stored["at"]), stored["sourceLast"]
        return heard if heard is not None else (None, None)

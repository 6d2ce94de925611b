"""What the agents send the daemon: initial syncs (recorded batch by batch, ``backup.syncs``; the head built
from one is consistent once the slices reach its ``minValid``), oplog slices (appended to the source's chain
in the oplog metadata store, a break in it a gap), the acknowledged position agents resume from, gaps they
find at the source, and their contact with the daemon (kept in memory, for the backup alerts).

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
        # Agent contact per source (when, and the newest source entry it saw): after a restart, silence is
        # counted from the daemon's start.
        self._contact: dict[str, tuple[int, int | None]] = {}

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
        previous = self._contact.get(source_id)
        if source_last is None and previous is not None:
            source_last = previous[1]
        self._contact[source_id] = (now_ms(self.clock), source_last)

    def contact(self, source_id: str) -> tuple[int | None, int | None]:
        """When an agent last reached the daemon for the source and the newest source entry it saw."""
        return self._contact.get(source_id, (None, None))

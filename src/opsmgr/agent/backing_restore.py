"""Restoring a server's three backing databases from a restore job of its secondary, once each chosen store's
restored documents are downloaded: the steps the backing agent carries out on the primary's host
(``agent.backing_restorer``) and ``opsmgr drill`` into its sandbox (``cli.secondary.run_restore``) share.

- :class:`Received` takes a downloaded stream line by line into a private file; a stream without its end
  line (``{"end": true, "documents": N}``), or with another count, is an error, never a whole store;
- :func:`decide_plan` applies the seed's rules (``backup.store_restore.decide``) to the job's positions and
  the downloaded documents: a refusal (metadata earlier than the app DB, unless forced) names the restore
  jobs that would answer 409, before anything is touched;
- :func:`fence_targets` opens every target (a lost SQLite file created; a lost PostgreSQL database must be
  provisioned empty with the same name) and fences it before any is changed, taking over an interrupted
  restore's fence;
- :func:`write_stores` replaces each store's documents and records the restore in the application database
  (``restoration.record.mark_restored``: the server that starts on it arms every project);
- :func:`outcome` is what the restore did, as the job records it and the CLI prints it.

The caller holds the running-server lock (:func:`restore_lock`, ``store.running``'s naming the way out for a
lost database) and the download folder (``backup.restore_download.claimed``) around them, reports to the
secondary, and removes the fences last.

May import ``opsmgr.errors``, ``opsmgr.backup.store_restore``, ``opsmgr.backup.store_replace``,
``opsmgr.restoration.record`` and ``opsmgr.store``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from opsmgr.backup.store_replace import fence_all, replace_documents
from opsmgr.backup.store_restore import Facts, Plan, Points, RestoreRefused, decide, jobs_from, snapshots_from
from opsmgr.errors import OpsmgrError, StoreError
from opsmgr.restoration import record
from opsmgr.store.backing import LABELS, StoreName
from opsmgr.store.engine import Store
from opsmgr.store.running import Holder, hold_for_restore

# (fraction of the phase done, what is being done); raising stops the restore after the batch just written.
Progress = Callable[[float, str], None]
# Told before a store is touched (its name), and once more (None) before the restore is recorded; raising
# stops the restore there (the agent's cancellation: it reports first which store it is about to write).
Checkpoint = Callable[[str | None], None]


def no_checkpoint(_store: str | None) -> None:
    return None


class DownloadIncomplete(OpsmgrError):
    """A restored store's stream ended without its end mark, or with another count: not a whole store."""


@dataclass
class Download:
    name: str
    path: Path
    documents: int

    def docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                item = json.loads(line)
                yield item["ns"], item["doc"]


@dataclass
class Received:
    """One store's restored documents arriving line by line into ``file`` (opened by the caller)."""

    name: str
    path: Path
    file: IO[str]
    count: int = 0
    end: dict[str, Any] | None = None

    def take(self, line: str) -> bool:
        """Keeps one line; True once the end line has arrived (nothing more is taken)."""
        if not line or self.end is not None:
            return self.end is not None
        item = json.loads(line)
        if isinstance(item, dict) and item.get("end"):
            self.end = item
            return True
        self.file.write(line + "\n")
        self.count += 1
        return False

    def whole(self) -> Download:
        if self.end is None or self.end.get("documents") != self.count:
            raise DownloadIncomplete(
                f"the restored {LABELS[self.name]} arrived incomplete ({self.count} documents, no end mark)"
            )
        return Download(self.name, self.path, self.count)


PROVISION = (
    "If the database was lost, provision an empty one with the same name ({}) and run the restore again."
)


def _database(uri: str) -> str:
    import sqlalchemy as sa

    return str(sa.engine.make_url(uri).database)


@contextmanager
def restore_lock(uris: dict[str, str]) -> Iterator[Holder]:
    """The running-server lock on every store ({name: URI}): ServerRunning while the primary serves on one; a
    store that cannot be reached (a lost PostgreSQL database) is named with the way out."""
    stack = ExitStack()
    try:
        me = stack.enter_context(hold_for_restore({LABELS[n]: u for n, u in uris.items()}))
    except StoreError as exc:
        named = ", ".join(_database(u) for u in uris.values())
        raise StoreError(f"{exc.detail}\n{PROVISION.format(named)}") from exc
    with stack:
        yield me


def open_target(name: str, uri: str) -> Store:
    """The store to restore into; a lost SQLite file is created, a PostgreSQL database must exist (empty)."""
    import sqlalchemy as sa

    url = sa.engine.make_url(uri)
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        return Store(uri, name=f"primary's {LABELS[name]}")
    except StoreError as exc:
        raise StoreError(f"{exc.detail}\n{PROVISION.format(url.database)}") from exc


def current_snapshots(uri: str) -> Facts | None:
    """The snapshots the primary's snapshot metadata store holds now (None when it is lost or unreadable)."""
    import sqlalchemy as sa

    url = sa.engine.make_url(uri)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return None
    try:
        store = Store(uri, name="primary's snapshot metadata store")
    except StoreError:
        return None
    try:
        docs = [(c, d) for c in store.collections() for d in store.find(c)]
    finally:
        store.close()
    return Facts(current_snapshots=snapshots_from(docs))


def decide_plan(
    positions: dict[str, int], downloads: dict[str, Download], uris: dict[str, str], force: bool
) -> Plan:
    """The seed's rules on the job's store positions and the restored documents; RestoreRefused (409)
    naming the jobs that would answer 409."""
    points = Points(positions["app"], positions.get("snapshot"), positions.get("oplog"))
    restored = (
        frozenset(s.id for s in snapshots_from(downloads["snapshot"].docs()))
        if "snapshot" in downloads
        else None
    )
    now = current_snapshots(uris["snapshot"]) if "snapshot" not in downloads else None
    facts = Facts(
        jobs=jobs_from(downloads["app"].docs()),
        restored_snapshots=restored,
        current_snapshots=now.current_snapshots if now else None,
    )
    decision = decide(points, facts, force)
    if not isinstance(decision, Plan):
        raise RestoreRefused(decision.reason, jobs=list(decision.jobs))
    return decision


@dataclass(frozen=True)
class Fencing:
    """What a restore's fences say: who wrote them, and where its download is (for a later cleanup)."""

    written_by: str
    download: str


def fence_targets(
    plan: Plan, uris: dict[str, str], job_id: str, fencing: Fencing, stores: dict[str, Store]
) -> dict[str, str]:
    """Opens every target into ``stores`` (the caller closes them) and fences each before any is changed;
    returns ``{store: the interrupted job whose fence was taken over}``."""
    for n in plan.stores:
        stores[n.value] = open_target(n.value, uris[n.value])
    return fence_all(stores, job_id, fencing.written_by, fencing.download)


def write_stores(
    stores: dict[str, Store],
    downloads: dict[str, Download],
    job_id: str,
    plan: Plan,
    progress: Progress,
    checkpoint: Checkpoint = no_checkpoint,
) -> dict[str, dict[str, int]]:
    """Replaces each fenced store's documents, then records the restore in the application database."""
    counts: dict[str, dict[str, int]] = {}
    total = sum(downloads[n].documents for n in stores) or 1
    done = 0
    for name, store in stores.items():
        checkpoint(name)

        def written(n: int, name: str = name, before: int = done) -> None:
            progress((before + n) / total, f"{LABELS[name]}: {n} of {downloads[name].documents}")

        counts[name] = replace_documents(store, downloads[name].docs(), written)
        done += counts[name]["documents"]
    checkpoint(None)
    if StoreName.APP.value in stores:
        # Read by the server that starts on it: every project is armed until its agents are heard.
        record.mark_restored(stores["app"], job_id, plan.points.app, downloads["app"].docs())
    progress(1.0, "done")
    return counts


def outcome(job_id: str, plan: Plan, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {
        "restoreJobId": job_id,
        "stores": counts,
        "warnings": list(plan.warnings),
        "jobsAnswering409": list(plan.jobs_answering_409),
        "snapshotsMayBeUnavailable": list(plan.snapshots_may_be_unavailable),
    }


def close_all(stores: dict[str, Store]) -> None:
    for store in stores.values():
        store.close()

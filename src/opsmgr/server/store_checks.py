"""The start-up checks of a server's backing databases that need its settings: what the configuration names is
looked at before anything is created, and the stores are opened for the preflight.

Owns: which SQLite files are missing (a missing one is refused, before opening would create it, unless every
store is new), opening the three stores with a damaged one refused (its file unreadable, or a page SQLite's
quick_check finds damaged), and what lies beside them (whether gen.key has served an installation, whether
the blockstore holds blocks and how many the snapshot metadata store's snapshots reference), which
``store.identity`` weighs. May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.backup.snapshots``,
``opsmgr.backup.blockstore_pg`` and the server's settings (``opsmgr.server.settings``).
"""

from __future__ import annotations

from collections.abc import Callable

from opsmgr.backup.blockstore_pg import database_holds_blocks
from opsmgr.backup.snapshots import SnapshotCatalog
from opsmgr.errors import PreflightFailure, StoreError
from opsmgr.server.settings import Settings
from opsmgr.store.engine import Store, new_id, sqlite_file
from opsmgr.store.identity import RECOVER, Role, StoreFacts, Surroundings, decide, read_binding, sqlite_absent
from opsmgr.store.installation import check_integrity, store_facts

OpenStore = Callable[[str, Role], Store]


def store_uris(settings: Settings) -> dict[Role, str]:
    return settings.backing_uris().by_role()


def surroundings(settings: Settings, snapshots: Store | None) -> Surroundings:
    """What lies beside the stores; ``snapshots`` (when open) tells how many blocks its snapshots use."""
    if settings.blockstore_uri is not None:
        holds_blocks = database_holds_blocks(settings.blockstore_uri)
    else:
        blocks = settings.blockstore_path / "blocks"
        # Stops at the first block file: a large blockstore is not walked.
        holds_blocks = blocks.is_dir() and any(p.is_file() for p in blocks.rglob("*"))
    return Surroundings(
        key_path=settings.gen_key_path,
        key_bound_to=read_binding(settings.gen_key_path),
        blockstore=settings.blockstore_path,
        blockstore_holds_blocks=holds_blocks,
        snapshot_blocks=len(SnapshotCatalog(snapshots).referenced_blocks()) if snapshots else 0,
    )


def refuse_lost_files(settings: Settings, open_store: OpenStore) -> frozenset[Role]:
    """The stores whose SQLite file is missing (or empty). Unless every store is new and nothing beside them
    says otherwise, refuses before opening would create those files."""
    uris = store_uris(settings)
    absent = frozenset(
        role
        for role, uri in uris.items()
        if (path := sqlite_file(uri)) is not None and sqlite_absent(role, path)
    )
    if not absent:
        return absent
    facts = []
    for role, uri in uris.items():
        if role in absent:
            facts.append(StoreFacts.missing(role, str(sqlite_file(uri))))
            continue
        store = open_checked(open_store, uri, role)
        try:
            facts.append(store_facts(store, role))
        finally:
            store.close()
    decide(facts, surroundings(settings, None), new_id)
    return absent


def open_checked(open_store: OpenStore, uri: str, role: Role) -> Store:
    """``open_store(uri, role)``, a damaged database refused with how to recover."""
    try:
        store = open_store(uri, role)
    except StoreError as exc:
        if exc.error_code != "STORE_DAMAGED":
            raise
        raise PreflightFailure(
            f"Refusing to start: {exc.detail}\nThe {role} is damaged. {RECOVER}", error_code="STORE_DAMAGED"
        ) from exc
    try:
        check_integrity([(role, store)])
    except PreflightFailure:
        store.close(checkpoint=False)
        raise
    return store

"""Start-up of a control-plane instance: open the three backing databases, load gen.key, run the preflight
checks, and only then build the application and serve it.

Owns the order of start-up, which matters: nothing is served, and nothing is written to the stores beyond
the installation record and the installation id, until preflight has passed (``server.store_checks`` opens
the stores for it: a missing SQLite file is refused before opening would create it); and the stop on
SIGTERM, which closes the stores (an SQLite store checkpoints its log into its file) before the process ends.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from opsmgr import __version__
from opsmgr.server.app import ServerContext, Stores
from opsmgr.server.settings import Settings
from opsmgr.server.store_checks import open_checked, refuse_lost_files, store_uris, surroundings
from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store
from opsmgr.store.identity import Role
from opsmgr.store.installation import preflight
from opsmgr.store.running import hold_for_server

log = logging.getLogger("opsmgr.server")


def _opener(settings: Settings) -> Callable[[str, Role], Store]:
    def store(uri: str, role: Role) -> Store:
        return Store(
            uri,
            name=role.value,
            oplog_max_bytes=settings.oplog_max_mb * 1024 * 1024,
            oplog_max_age_s=settings.oplog_max_age_hours * 3600,
        )

    return store


def open_stores(settings: Settings) -> Stores:
    store = _opener(settings)
    return Stores(
        app=store(settings.app_db_uri, Role.APP),
        snapshots=store(settings.snapshot_store_uri, Role.SNAPSHOT),
        oplogs=store(settings.oplog_store_uri, Role.OPLOG),
    )


def _open_for_start(settings: Settings) -> tuple[Stores, frozenset[Role]]:
    """The three stores, each checked for damage; a missing SQLite file is refused before it is created,
    unless every store is new (a first start). Also says which files were missing."""
    store = _opener(settings)
    absent = refuse_lost_files(settings, store)
    opened: list[Store] = []
    try:
        for role, uri in store_uris(settings).items():
            opened.append(open_checked(store, uri, role))
    except BaseException:
        for s in opened:
            s.close()
        raise
    return Stores(*opened), absent


@contextmanager
def opened(settings: Settings, *, app_version: str = __version__) -> Iterator[ServerContext]:
    """The server's context after preflight; raises PreflightFailure (and serves nothing) if it fails."""
    genkey = GenKey.load(settings.gen_key_path)
    stores, absent = _open_for_start(settings)
    try:
        around = surroundings(settings, stores.snapshots)
        preflight(
            stores.app, stores.snapshots, stores.oplogs, genkey, app_version, around=around, absent=absent
        )
        ctx = ServerContext(
            stores=stores,
            encrypt=genkey.encrypt,
            decrypt=genkey.decrypt,
            central_url=settings.central_url,
            blockstore_path=settings.blockstore_path,
            restoration_mode_enabled=settings.restoration_mode_enabled,
            agent_poll_interval_s=settings.agent_poll_interval_s,
            alert_webhook_url=settings.alert_webhook_url,
            block_compression=settings.block_compression,
            backup_alert_policy=settings.backup_alert_policy(),
            maintenance_policy=settings.maintenance_policy(),
            digest_secret=genkey.derive("digest nonce"),
        )
        try:
            yield ctx
        finally:
            ctx.backup.close()
    finally:
        stores.close()


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM ends the server through its ``finally`` blocks (the stores checkpoint and close, the locks
    go) rather than by the default action, which kills the process where it stands: uvicorn, after its own
    graceful shutdown, raises the signal again for the handler it found installed, which is this one."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(settings: Settings, *, app_version: str = __version__) -> None:
    import uvicorn

    from opsmgr.logs import setup_logging
    from opsmgr.server.app import create_app
    from opsmgr.server.tls import uvicorn_https

    setup_logging(settings.log_level)
    # Held while serving: a restore of these backing databases refuses while it is (and we refuse to start
    # while a restore, or another server on one of these SQLite files, holds it). Only serving takes it:
    # ``keys create`` may open the stores beside a server.
    with (
        _stopped_by_sigterm(),
        hold_for_server(settings.store_uris(), settings.central_url),
        opened(settings, app_version=app_version) as ctx,
    ):
        app = create_app(ctx)
        if not settings.restoration_mode_enabled:
            log.warning(
                "RESTORATION MODE IS DISABLED (mms.restorationMode.enabled=false): after a restore of the "
                "application database this server will serve the restored automation configs to agents that "
                "hold newer ones, and they will act on them"
            )
        log.info(
            "opsmgr %s serving on %s:%s (URL to Access Ops Manager: %s)",
            app_version,
            settings.listen_address,
            settings.port,
            settings.central_url,
        )
        uvicorn.run(
            app,
            host=settings.listen_address,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            **uvicorn_https(settings),
        )

"""Start-up of a control-plane instance: open the three backing databases, load gen.key, run the preflight
checks, and only then build the application and serve it.

Owns the order of start-up, which matters: nothing is served, and nothing is written to the stores beyond
the installation record, until preflight has passed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opsmgr import __version__
from opsmgr.server.app import ServerContext, Stores
from opsmgr.server.settings import Settings
from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store
from opsmgr.store.installation import preflight
from opsmgr.store.running import hold_for_server

log = logging.getLogger("opsmgr.server")


def open_stores(settings: Settings) -> Stores:
    def store(uri: str, name: str) -> Store:
        return Store(
            uri,
            name=name,
            oplog_max_bytes=settings.oplog_max_mb * 1024 * 1024,
            oplog_max_age_s=settings.oplog_max_age_hours * 3600,
        )

    return Stores(
        app=store(settings.app_db_uri, "application database"),
        snapshots=store(settings.snapshot_store_uri, "snapshot metadata store"),
        oplogs=store(settings.oplog_store_uri, "oplog metadata store"),
    )


@contextmanager
def opened(settings: Settings, *, app_version: str = __version__) -> Iterator[ServerContext]:
    """The server's context after preflight; raises PreflightFailure (and serves nothing) if it fails."""
    genkey = GenKey.load(settings.gen_key_path)
    stores = open_stores(settings)
    try:
        preflight(stores.app, stores.snapshots, stores.oplogs, genkey, app_version)
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


def serve(settings: Settings, *, app_version: str = __version__) -> None:
    import uvicorn

    from opsmgr.logs import setup_logging
    from opsmgr.server.app import create_app
    from opsmgr.server.tls import uvicorn_https

    setup_logging(settings.log_level)
    # Held while serving: a restore of these backing databases refuses while it is (and we refuse to start
    # while a restore holds it). Only serving takes it: ``keys create`` may open the stores beside a server.
    conf_dir = settings.conf_path.parent if settings.conf_path else settings.gen_key_path.parent
    with (
        hold_for_server(conf_dir, settings.app_db_uri, settings.central_url),
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

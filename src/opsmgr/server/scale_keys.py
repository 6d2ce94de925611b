"""The keys of ``conf-mms.properties`` for several servers sharing the backing databases: what a server
does (``mms.server.roles``), how long a periodic job's lease lasts (``mms.server.jobLeaseSeconds``), and a
blockstore in a database they all reach (``mms.blockstore.uri``). ``server.settings`` reads them with its
other keys and documents them in its table. May import ``opsmgr.conf``.
"""

from __future__ import annotations

from pathlib import Path

from opsmgr import conf
from opsmgr.conf import Key

ROLES = frozenset({"api", "daemon"})


def _roles(text: str, _base: Path) -> frozenset[str]:
    roles = frozenset(r.strip() for r in text.split(",") if r.strip())
    if not roles or not roles <= ROLES:
        raise ValueError(f"must name api, daemon or both (comma-separated), not {text!r}")
    return roles


def _blockstore_uri(text: str, base: Path) -> str:
    uri = conf.store_uri(text, base)
    if uri.startswith("sqlite"):
        raise ValueError(
            "a blockstore database is PostgreSQL (postgresql://...); blocks in files use mms.blockstore.path"
        )
    return uri


SCALE_KEYS: tuple[Key, ...] = (
    Key(
        name="mms.blockstore.uri",
        attr="blockstore_uri",
        description="A PostgreSQL database that holds the snapshot blocks instead of mms.blockstore.path, "
        "so that several servers share them (postgresql://USER:PASSWORD@HOST:PORT/DB).",
        default="",
        parse=_blockstore_uri,
    ),
    Key(
        name="mms.server.roles",
        attr="server_roles",
        description="What this server does: api (public API, UI, agent API), daemon (periodic jobs: backup, "
        "alerts, Restoration Mode, ...), or both, comma-separated.",
        default="api,daemon",
        parse=_roles,
    ),
    Key(
        name="mms.server.jobLeaseSeconds",
        attr="job_lease_s",
        description="Seconds a server's lease of a periodic job lasts unrenewed: servers sharing the backing "
        "databases take over the jobs of one silent for that long.",
        default="10",
        parse=conf.float_in(1, 3600),
    ),
)

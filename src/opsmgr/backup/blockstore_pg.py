"""A blockstore in a PostgreSQL database (``mms.blockstore.uri=postgresql://...``), which several servers and
daemon hosts share, as Ops Manager's blockstore is itself a database.

Owns the ``blocks`` table of the database the URI names: one row per block, its id, its stored form
(``backup.blockstore``'s header and payload, byte for byte what a folder blockstore's file holds, so the
same codecs, verification, deduplication, integrity job and grooming apply) and when it was last written or
re-put (grooming's grace period across servers). A row is written in one transaction, so a reader sees a
whole block or none; a put racing another server's put of the same block keeps one row. The payload column
is stored out of line without PostgreSQL's own compression: blocks are already compressed, and TOAST would
spend CPU on every one for nothing.

May import ``opsmgr.backup.blockstore``, ``opsmgr.store.engine`` (its URI normalisation) and SQLAlchemy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from opsmgr.backup.blockstore import is_block_id
from opsmgr.store.engine import normalise_url

_META = sa.MetaData()
_BLOCKS = sa.Table(
    "blocks",
    _META,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("written_at", sa.Float, nullable=False),
)
# Block reads run on the restore pipeline's threads, and grooming or the integrity job beside them.
_POOL_SIZE = 8
_ID_BATCH = 1000


def database_holds_blocks(uri: str) -> bool:
    """Whether the database has a block, read without creating anything (for the start-up checks)."""
    engine = sa.create_engine(normalise_url(uri), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).has_table("blocks") and (
                conn.execute(sa.select(_BLOCKS.c.id).limit(1)).first() is not None
            )
    finally:
        engine.dispose()


class PgBlocks:
    """The :class:`~opsmgr.backup.blockstore.BlockFiles` of a PostgreSQL database."""

    def __init__(self, uri: str) -> None:
        self.engine = sa.create_engine(
            normalise_url(uri), pool_size=_POOL_SIZE, max_overflow=0, pool_pre_ping=True
        )
        with self.engine.begin() as conn:
            if not sa.inspect(conn).has_table("blocks"):
                _META.create_all(conn)
                conn.execute(sa.text("ALTER TABLE blocks ALTER COLUMN raw SET STORAGE EXTERNAL"))

    def close(self) -> None:
        self.engine.dispose()

    def read(self, block_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            raw = conn.execute(sa.select(_BLOCKS.c.raw).where(_BLOCKS.c.id == block_id)).scalar()
        return None if raw is None else bytes(raw)

    def refresh(self, block_id: str) -> bool:
        with self.engine.begin() as conn:
            touched = conn.execute(
                _BLOCKS.update().where(_BLOCKS.c.id == block_id).values(written_at=time.time())
            )
        return touched.rowcount > 0

    def write(self, block_id: str, raw: bytes) -> None:
        row = insert(_BLOCKS).values(id=block_id, raw=raw, written_at=time.time())
        with self.engine.begin() as conn:
            conn.execute(row.on_conflict_do_update(index_elements=["id"], set_={"written_at": time.time()}))

    def remove(self, block_id: str, older_than: float | None) -> bool:
        query = _BLOCKS.delete().where(_BLOCKS.c.id == block_id)
        if older_than is not None:
            query = query.where(_BLOCKS.c.written_at < older_than)
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount > 0

    def ids(self) -> Iterator[str]:
        # In pages by key, each its own short read: a walk over millions of blocks holds no transaction open
        # (grooming deletes as it goes) and no more than a page of ids in memory.
        after = ""
        while True:
            with self.engine.connect() as conn:
                page = list(
                    conn.execute(
                        sa.select(_BLOCKS.c.id)
                        .where(_BLOCKS.c.id > after)
                        .order_by(_BLOCKS.c.id)
                        .limit(_ID_BATCH)
                    ).scalars()
                )
            yield from (block_id for block_id in page if is_block_id(block_id))
            if len(page) < _ID_BATCH:
                return
            after = page[-1]

    def stored_bytes(self, block_id: str) -> int:
        with self.engine.connect() as conn:
            size = conn.execute(
                sa.select(sa.func.octet_length(_BLOCKS.c.raw)).where(_BLOCKS.c.id == block_id)
            ).scalar()
        return int(size or 0)

    def space(self) -> tuple[int, int] | None:
        return None

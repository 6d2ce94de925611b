"""The backing databases of a server: the application database, the snapshot metadata store and the oplog
metadata store, each a :class:`Store` (documents + same-transaction oplog), plus gen.key encryption and the
installation record that start-up preflight checks.

The names below are loaded from ``store.engine`` on first use, so that importing a light module of the
package (``store.backing``) does not load SQLAlchemy. May import ``opsmgr.errors`` and
``opsmgr.sqlite_wal``; the ``__init__`` itself only its own modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsmgr.store.engine import OplogBounds, OplogEntry, Store, Txn, new_id, now_us

__all__ = ["OplogBounds", "OplogEntry", "Store", "Txn", "new_id", "now_us"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("opsmgr.store.engine"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The backing databases of a server: the application database, the snapshot metadata store and the oplog
metadata store, each a :class:`Store` (documents + same-transaction oplog), plus gen.key encryption and the
installation record that start-up preflight checks. May import ``opsmgr.errors`` only.
"""

from opsmgr.store.engine import OplogBounds, OplogEntry, Store, Txn, new_id, now_us

__all__ = ["OplogBounds", "OplogEntry", "Store", "Txn", "new_id", "now_us"]

"""A child process for the store tests: a deterministic stream of single-write transactions on one Store,
printing ``<op> <_id> <i>`` once each has committed (flushed), so that the parent knows exactly which writes
were acknowledged. The stream inserts, replaces a counter document and deletes earlier inserts.

    python store_writer.py URL PREFIX COUNT      (COUNT < 0: until killed)
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from typing import Any

from opsmgr.store import Store

COLL = "stream"


def op_for(prefix: str, i: int) -> tuple[str, str, dict[str, Any] | None]:
    """The i-th write of the stream: (op, _id, post-image or None for a delete)."""
    if i % 4 == 1:
        return "u", f"{prefix}counter", {"_id": f"{prefix}counter", "i": i}
    if i % 4 == 3:
        return "d", f"{prefix}{i - 1}", None
    return "i", f"{prefix}{i}", {"_id": f"{prefix}{i}", "i": i, "pad": "p" * 64}


def state_after(prefix: str, n: int) -> dict[str, dict[str, Any]]:
    """The documents that the first ``n`` writes of the stream leave behind, by _id."""
    docs: dict[str, dict[str, Any]] = {}
    for i in range(n):
        _op, doc_id, doc = op_for(prefix, i)
        if doc is None:
            docs.pop(doc_id, None)
        else:
            docs[doc_id] = doc
    return docs


def run_stream(store: Store, prefix: str, count: int, ack: Callable[[str], None]) -> None:
    """Write the stream, calling ``ack`` with each write's line once it has committed."""
    for i in itertools.count() if count < 0 else range(count):
        op, doc_id, doc = op_for(prefix, i)
        if op == "i":
            store.insert(COLL, doc or {})
        elif op == "u":
            store.put(COLL, doc or {})
        else:
            store.delete(COLL, doc_id)
        ack(f"{op} {doc_id} {i}")


def main(url: str, prefix: str, count: int) -> None:
    store = Store(url, name="writer store")
    run_stream(store, prefix, count, lambda line: print(line, flush=True))
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

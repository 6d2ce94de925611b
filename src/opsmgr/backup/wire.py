"""The wire format of an oplog slice, shared by the agent (which encodes) and the daemon (which decodes).

``OPSL1`` + SHA-256 of the body + body, the body being zlib-compressed JSON lines: a header
``{"format": 1, "start", "end", "count"}`` and one line per entry in the source's own shape. A slice covers
``(start, end]``; what the range means and how slices chain is ``backup.slices``'s business.

Pure: the agent imports it without the store (no SQLAlchemy in an agent that backs up a replica set). May
import ``opsmgr.errors`` and ``opsmgr.strictjson``.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsmgr import strictjson
from opsmgr.errors import InvalidInput

_MAGIC = b"OPSL1"
_DIGEST = 32
MAX_SLICE_BYTES = 64 * 1024 * 1024  # decompressed: a slice bigger than this is cut smaller by the agent


@dataclass(frozen=True)
class SliceUpload:
    start: int
    end: int
    entries: list[dict[str, Any]]


def encode_entry(entry: dict[str, Any]) -> str:
    """One entry's line (its length is what the agent counts against a slice's byte limit)."""
    return json.dumps(entry, separators=(",", ":"))


def encode_lines(start: int, end: int, lines: Sequence[str], level: int = 1) -> bytes:
    """A slice of entries already encoded by :func:`encode_entry`."""
    header = json.dumps({"format": 1, "start": start, "end": end, "count": len(lines)}, separators=(",", ":"))
    body = zlib.compress(("\n".join([header, *lines]) + "\n").encode(), level)
    return _MAGIC + hashlib.sha256(body).digest() + body


def encode_slice(start: int, end: int, entries: list[dict[str, Any]], level: int = 1) -> bytes:
    return encode_lines(start, end, [encode_entry(e) for e in entries], level)


def decode_slice(data: bytes) -> SliceUpload:
    """An uploaded slice, checksum verified; InvalidInput (400) when it is damaged or malformed."""
    if data[: len(_MAGIC)] != _MAGIC:
        raise InvalidInput("not an opsmgr oplog slice (bad magic)", field="body")
    digest = data[len(_MAGIC) : len(_MAGIC) + _DIGEST]
    body = data[len(_MAGIC) + _DIGEST :]
    if hashlib.sha256(body).digest() != digest:
        raise InvalidInput("oplog slice checksum mismatch: the upload was damaged", field="body")
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(body, MAX_SLICE_BYTES)
        if inflater.unconsumed_tail:
            raise InvalidInput(f"oplog slice larger than {MAX_SLICE_BYTES} bytes", field="body")
        header, *lines = text.splitlines()
    except (zlib.error, ValueError) as exc:
        raise InvalidInput(f"malformed oplog slice: {exc}", field="body") from None
    # Strict: an entry is stored and replayed into a head, where NaN or 2**64 would break later readers.
    meta = strictjson.loads(header, "the oplog slice header")
    entries = [strictjson.loads(line, f"oplog slice entry {i}") for i, line in enumerate(lines, 1)]
    if not isinstance(meta, dict) or meta.get("format") != 1:
        raise InvalidInput("unknown oplog slice format", field="body")
    if meta.get("count") != len(entries) or not all(isinstance(e, dict) for e in entries):
        raise InvalidInput("oplog slice entry count does not match its header", field="body")
    start, end = meta.get("start"), meta.get("end")
    if not (isinstance(start, int) and isinstance(end, int)):
        raise InvalidInput("oplog slice start and end must be integers", field="body")
    return SliceUpload(start, end, entries)

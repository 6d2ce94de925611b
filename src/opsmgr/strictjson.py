"""Strict JSON: what opsmgr accepts wherever JSON enters from outside (request bodies, oplog slices).

Python's ``json`` takes more than JSON: ``NaN``, ``Infinity`` and numbers too large for a float (``1e999``
becomes ``inf``), integers of any size, lone UTF-16 surrogates (``"\\ud800"``) and nesting up to the
interpreter's recursion limit. Each of them is stored without complaint and breaks a later reader: a JSON
response refuses ``NaN`` and a lone surrogate, a BIGINT column or a date refuses ``2**64``, a recursive
walker overflows on 900 levels. :func:`check` refuses them with :class:`~opsmgr.errors.InvalidInput` naming
where; :func:`loads` parses and checks. May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

import json
import math
from typing import Any

from opsmgr.errors import InvalidInput

# MongoDB documents nest at most 100 levels; what carries one (an oplog entry in a slice, a batch of an
# initial sync, an automation config) adds a few more.
MAX_DEPTH = 128
INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1
_MAX_PATH = 200  # characters of a refused value's path quoted in the answer

_NOT_FINITE = "numbers must be finite (NaN and Infinity are not JSON)"
_TOO_BIG = "integers must fit in 64 bits"
_NOT_TEXT = "strings must not hold lone UTF-16 surrogates"

# (container, depth, parent entry, key in the parent): parents are kept only to name a refused value.
_Entry = tuple[Any, int, Any, Any]


def _path(entry: _Entry, key: Any, what: str) -> str:
    parts = [] if key is None else [key]
    while entry[2] is not None:
        parts.append(entry[3])
        entry = entry[2]
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(parts)).lstrip(".")
    return text[:_MAX_PATH] or what


def _not_text(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _problem(value: Any) -> str | None:
    kind = type(value)
    if kind is float and not math.isfinite(value):
        return _NOT_FINITE
    if kind is int and not INT_MIN <= value <= INT_MAX:
        return _TOO_BIG
    if kind is str and _not_text(value):
        return _NOT_TEXT
    return None


def check(value: Any, what: str = "body") -> Any:
    """``value`` (parsed JSON) when it holds only finite numbers, 64-bit integers, well-formed strings and
    at most :data:`MAX_DEPTH` levels of nesting; InvalidInput naming the first offending path otherwise.
    An explicit stack, not recursion: a hostile document cannot overflow this walk."""
    top: _Entry = ([value], 0, None, None)
    stack = [top]
    while stack:
        entry = stack.pop()
        node, depth = entry[0], entry[1]
        if depth > MAX_DEPTH:
            raise InvalidInput(f"invalid JSON in {what}: nested deeper than {MAX_DEPTH} levels", field=what)
        pairs = node.items() if type(node) is dict else enumerate(node)
        for key, child in pairs:
            # The keys of a container were checked before anything inside it can be named by its path.
            if type(key) is str and not key.isascii() and _not_text(key):
                where = _path(entry, None, what)
                raise InvalidInput(f"invalid JSON in {what}: a key in {where}: {_NOT_TEXT}", field=where)
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1, entry if depth else None, key if depth else None))
            # Cheap tests first: only a suspect value is looked at closely.
            elif (
                (kind is str and not child.isascii())
                or (kind is float and not math.isfinite(child))
                or (kind is int and not INT_MIN <= child <= INT_MAX)
            ) and (problem := _problem(child)):
                where = _path(entry, key, what) if depth else what
                raise InvalidInput(f"invalid JSON in {what}: {problem} ({where})", field=where)
    return value


def parse_error(exc: Exception, what: str = "body") -> InvalidInput:
    """The answer to ``json`` failing on a document: too deep (RecursionError) or malformed (ValueError:
    bad syntax or UTF-8, an integer literal of thousands of digits)."""
    if isinstance(exc, RecursionError):
        return InvalidInput(f"invalid JSON in {what}: nested deeper than {MAX_DEPTH} levels", field=what)
    if isinstance(exc, json.JSONDecodeError):
        why = f"{exc.msg} (character {exc.pos})"
    elif isinstance(exc, UnicodeDecodeError):
        why = "not UTF-8 text"
    else:
        why = "a number literal is too long"
    return InvalidInput(f"malformed JSON in {what}: {why}", field=what)


def loads(data: bytes | str, what: str = "body") -> Any:
    """Parses ``data`` as JSON and :func:`check`s it; InvalidInput (naming ``what``) when it is not."""
    try:
        value = json.loads(data)
    except (RecursionError, ValueError) as exc:
        raise parse_error(exc, what) from None
    return check(value, what)

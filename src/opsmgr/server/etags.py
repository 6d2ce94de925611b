"""Entity tags of versioned documents (RFC 9110, section 8.8.3): the ``ETag`` of a document that carries an
integer ``version``, and the reading of an ``If-Match`` header against that version, so that careful
clients can make an edit conditional on the version they read.

May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opsmgr.errors import InvalidInput

# Longer than any list of tags a client means; refused before the regular expression reads it.
MAX_IF_MATCH_CHARS = 1024
_TAG = r'(?:W/)?"([\x21\x23-\x7e]*)"'
_TAG_LIST = re.compile(rf"[ \t]*{_TAG}(?:[ \t]*,[ \t]*{_TAG})*[ \t]*")
_VERSION = re.compile(r"[0-9]{1,18}")


def etag(version: int) -> str:
    """The strong entity tag of a document at ``version``."""
    return f'"{version}"'


@dataclass(frozen=True)
class IfMatch:
    """An ``If-Match`` header read: ``*`` (any current document) or the versions its entity tags name. Weak
    tags (``W/"7"``) count as their version too: a client that kept a weak tag means that version."""

    any_version: bool
    versions: frozenset[int]

    def matches(self, version: int) -> bool:
        return self.any_version or version in self.versions


def parse_if_match(header: str) -> IfMatch:
    """The condition of an ``If-Match`` header; 400 when it is not ``*`` or a list of entity tags. A tag that
    names no version (``"abc"``) is well formed and simply never matches."""
    if len(header) > MAX_IF_MATCH_CHARS:
        raise InvalidInput(f"If-Match is longer than {MAX_IF_MATCH_CHARS} characters", field="If-Match")
    if header.strip(" \t") == "*":
        return IfMatch(any_version=True, versions=frozenset())
    if not _TAG_LIST.fullmatch(header):
        raise InvalidInput(
            'If-Match must be * or a comma-separated list of entity tags such as "12" or W/"12"',
            field="If-Match",
        )
    opaque = re.findall(_TAG, header)
    return IfMatch(any_version=False, versions=frozenset(int(o) for o in opaque if _VERSION.fullmatch(o)))

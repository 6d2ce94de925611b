"""Checks that a public list-and-create route refuses hostile input and keeps nothing of it."""

from __future__ import annotations

from typing import Any

import httpx

# Bodies that are not a JSON object, or not JSON at all (the last one nests beyond any parser's patience).
MALFORMED_BODIES = (b"[]", b"null", b"{", b'"text"', b"{" * 5000)


def refused_naming(api: httpx.Client, path: str, sent: dict[str, Any], field: str, code: str) -> None:
    """POSTing ``sent`` to the list at ``path`` is a 400 with ``code`` naming ``field``; nothing is kept."""
    r = api.post(path, json=sent)
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == code and field in r.text
    assert api.get(path).json()["totalCount"] == 0


def malformed_bodies_are_4xx(api: httpx.Client, path: str) -> None:
    for raw in MALFORMED_BODIES:
        r = api.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500 and r.json()["detail"], raw[:20]

"""Every JSON request body the server takes is strict JSON (:mod:`opsmgr.strictjson`): no NaN or Infinity,
64-bit integers, well-formed strings, bounded nesting.

The request pipeline reads a JSON body whole before any route sees it, checks it, and hands the same bytes
on, so no route module can forget the check, and a request without a body (the agent poll) costs a method
test (80 ns). Pure ASGI (Starlette's types). May import ``opsmgr.strictjson`` only.
"""

from __future__ import annotations

from starlette.types import Message, Receive

from opsmgr import strictjson

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


def is_json(content_type: bytes | None) -> bool:
    """The media types FastAPI parses as JSON: ``application/json`` and ``application/*+json``."""
    media = (content_type or b"").split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def carries_json(method: str, content_type: bytes | None) -> bool:
    return method not in _NO_BODY and is_json(content_type)


async def checked(receive: Receive) -> Receive:
    """Reads the whole body from ``receive`` and checks it (InvalidInput when it is not strict JSON);
    returns a ``receive`` that gives the route the same body, then whatever ``receive`` gives next."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: the route finds out as it would have
            return _replay(
                [{"type": "http.request", "body": b"".join(chunks), "more_body": True}, message], receive
            )
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    if body:
        strictjson.loads(body)
    return _replay([{"type": "http.request", "body": body, "more_body": False}], receive)


def _replay(pending: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay

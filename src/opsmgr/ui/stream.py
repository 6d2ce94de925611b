"""One event stream per page for all of its live regions: ``GET /ui/live?r=PATH&r=PATH...``.

A browser keeps at most six HTTP/1.1 connections to a server, so a stream per region (two banners and a
page's own regions) let two open tabs starve the third. Here a page's regions share one stream: each tick,
each region's fragment route (a plain GET of this application's own routes, asked in-process with the
page's cookies, so its session, role checks and refusals are the route's own) is rendered, and a region
is sent only when its HTML changed, as ``{"region": i, "html": ...}``. A region whose route refuses (the
session ended, the role is gone, the thing shown no longer exists) gets a ``gone`` event; when every region
is gone the stream ends. The stream ends after five minutes and the browser reconnects. One user holds a
bounded number of streams at once.

May import ``opsmgr.errors``, ``opsmgr.ui.web``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Message

from opsmgr.errors import InvalidInput, OpsmgrError
from opsmgr.ui.web import PageRoute, ViewerDep

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

STREAM_PATH = "/ui/live"
MAX_REGIONS = 8
MAX_REGION_PATH = 512
STREAM_LIFETIME_S = 300.0
TICK_S = 0.25
# Live streams one user may hold open at once: each re-renders its regions on the thread pool the API and the
# agents share.
MAX_STREAMS_PER_USER = 16


class TooManyStreams(OpsmgrError):
    http_status = 429
    error_code = "TOO_MANY_LIVE_VIEWS"


class _StreamCount:
    """The live streams each user holds open."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, user_id: str) -> None:
        with self._lock:
            held = self._open.get(user_id, 0)
            if held >= MAX_STREAMS_PER_USER:
                raise TooManyStreams(
                    f"You have {held} live views open, the most one user may: close some pages or tabs and "
                    "reload this one."
                )
            self._open[user_id] = held + 1

    def give_back(self, user_id: str) -> None:
        with self._lock:
            held = self._open.pop(user_id, 0) - 1
            if held > 0:
                self._open[user_id] = held


_streams = _StreamCount()


def _region_path(raw: str) -> tuple[str, str]:
    """A region's fragment route as (path, query): a path of this UI, never the stream itself."""
    parts = urlsplit(raw)
    if (
        len(raw) > MAX_REGION_PATH
        or parts.scheme
        or parts.netloc
        or not parts.path.startswith("/ui/")
        or parts.path.startswith(STREAM_PATH)
    ):
        raise InvalidInput(f"not a live region of this UI: {raw[:80]!r}", field="r")
    return parts.path, parts.query


async def _fragment(request: Request, path: str, query: str) -> tuple[int, str]:
    """The route at ``path`` asked in-process, as the page's own GET (its cookies; HTML)."""
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"accept"]
    scope = {
        **request.scope,
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [*headers, (b"accept", b"text/html")],
        "state": {},
    }
    for key in ("route", "endpoint", "path_params"):
        scope.pop(key, None)
    status = 500
    body: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await request.app.router(scope, receive, send)
    return status, b"".join(body).decode("utf-8", "replace")


def _gone_detail(status: int) -> str:
    if status in (303, 401):
        return "Your session has ended: log in again."
    return f"This view is no longer available (HTTP {status}): reload the page."


@router.get("/live")
async def live_stream(
    request: Request, viewer: ViewerDep, r: Annotated[list[str], Query(max_length=MAX_REGIONS)]
) -> Response:
    regions = [_region_path(raw) for raw in r]
    if not regions:
        raise InvalidInput("name at least one live region (r=PATH)", field="r")
    _streams.take(viewer.user.id)

    async def events() -> AsyncIterator[str]:
        try:
            async for event in _events():
                yield event
        finally:
            _streams.give_back(viewer.user.id)

    async def _events() -> AsyncIterator[str]:
        last: dict[int, str] = {}
        live = set(range(len(regions)))
        ends = time.monotonic() + STREAM_LIFETIME_S
        yield "retry: 1000\n\n"
        while live and time.monotonic() < ends and not await request.is_disconnected():
            for i in sorted(live):
                status, html = await _fragment(request, *regions[i])
                if status != 200:
                    live.discard(i)
                    gone = {"region": i, "detail": _gone_detail(status)}
                    yield f"event: gone\ndata: {json.dumps(gone)}\n\n"
                elif last.get(i) != html:
                    last[i] = html
                    yield f"data: {json.dumps({'region': i, 'html': html})}\n\n"
            await asyncio.sleep(TICK_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

"""Live streams (server-sent events) against a hostile user: one user cannot hold an unbounded number of
streams open (each re-renders its fragment four times a second on the server's thread pool, which the API and
the agents share); the streams they close give their places back."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import httpx

from tests.procs import ServerProcess, wait_for
from tests.ui.uisupport import PASSWORD, UiSession, error_detail

EVENTS = {"accept": "text/event-stream"}
LIMIT = 16


def _open(client: httpx.Client, stack: ExitStack) -> httpx.Response:
    return stack.enter_context(client.stream("GET", "/ui/live?r=/ui/restoration/banner", headers=EVENTS))


def test_one_user_holds_a_bounded_number_of_live_streams(
    server: ServerProcess, owner: dict[str, Any]
) -> None:
    server.create_user("streamer", PASSWORD, "ORG_READ_ONLY")
    user = UiSession(server.url, "streamer")
    user.client.timeout = httpx.Timeout(15)
    cookies = dict(user.client.cookies)
    limits = httpx.Limits(max_connections=LIMIT + 8, max_keepalive_connections=0)
    try:
        with httpx.Client(base_url=server.url, cookies=cookies, limits=limits, timeout=15) as client:
            with ExitStack() as stack:
                for _ in range(LIMIT):
                    assert _open(client, stack).status_code == 200
                refused = client.get("/ui/live?r=/ui/restoration/banner", headers=EVENTS)
                assert refused.status_code == 429
                assert "live views" in error_detail(refused.text)
                # The page itself (no stream) is still served, and the API too.
                assert client.get("/ui/restoration/banner").status_code == 200
                assert server.client(owner).get("/orgs").status_code == 200

            # Closed streams give their places back (the server notices the disconnect).
            def reopened() -> bool:
                with client.stream("GET", "/ui/live?r=/ui/restoration/banner", headers=EVENTS) as again:
                    return again.status_code == 200

            wait_for(reopened, 15, what="a stream's place given back")
    finally:
        user.close()

"""What every part of one agent shares, handed to each of them: the HTTP client and the credentials it signs
requests with (``mmsGroupId``/``mmsApiKey``, which may be replaced when the config file changes), the host's
name, how a blocking call runs (on the fleet's sized executor; inline for a driver that never blocks), and the
clock. No part of the agent opens its own client, thread or clock.

May import ``opsmgr.errors``, ``opsmgr.automation.protocol`` and ``opsmgr.agent.client``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from opsmgr.agent.client import Credentials, send, send_json

T = TypeVar("T")


@dataclass
class Runtime:
    http: httpx.AsyncClient
    hostname: str
    base_url: str
    group_id: str
    api_key: str = field(repr=False)
    executor: Executor | None = None  # None: the event loop's default executor
    offload: bool = True  # False: blocking calls run inline (a driver that never blocks, tests)
    clock: Callable[[], float] = time.time

    def credentials(self) -> Credentials:
        return (self.base_url, self.group_id, self.api_key)

    def set_credentials(self, base_url: str, group_id: str, api_key: str) -> None:
        self.base_url, self.group_id, self.api_key = base_url.rstrip("/"), group_id, api_key

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` off the event loop: a driver call blocks (a start waits until the process accepts
        connections), and one event loop carries a whole fleet of agents."""
        if not self.offload:
            return fn(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def send(self, method: str, route: str, path: str = "", **kw: Any) -> httpx.Response:
        """An agent API request (see :func:`opsmgr.agent.client.send`)."""
        return await send(self.http, self.credentials(), method, route, path, **kw)

    async def send_json(self, method: str, route: str, path: str = "", **kw: Any) -> dict[str, Any]:
        return await send_json(self.http, self.credentials(), method, route, path, **kw)

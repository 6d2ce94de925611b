"""The agent's side of the agent API: polling the automation config and posting status.

Owns the HTTP contract with the server (paths, HTTP Basic auth with ``mmsGroupId``/``mmsApiKey``, the ``cv``
and ``hostname`` query parameters) and the translation of its answers into three outcomes the loop acts on:
a result, :class:`ServerUnreachable` (retry with backoff; transport errors, timeouts and 5xx), or
:class:`ServerRejected` (the server answered and said no: 401, 403, 404 and other 4xx). The
``httpx.AsyncClient`` is passed in so that a fleet shares one connection pool. May import ``opsmgr.errors``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from opsmgr.automation.protocol import CONF_PATH, STATUS_PATH, UPLOAD_PATH
from opsmgr.errors import OpsmgrError

MAINTENANCE_PATH = "/agents/api/automation/maintenance/v1/{group}"


class ServerUnreachable(OpsmgrError):
    """No usable answer: the server may be down, restarting or overloaded."""

    http_status = 503
    error_code = "SERVER_UNREACHABLE"


class ServerRejected(OpsmgrError):
    """The server answered with a 4xx: retrying right away will not help."""

    error_code = "REJECTED_BY_SERVER"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail, status=status)
        self.status = status
        self.http_status = status


class BadResponse(OpsmgrError):
    """A 200 whose body is not what the contract promises (e.g. not a JSON object)."""

    http_status = 502
    error_code = "BAD_RESPONSE"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    text = response.text.strip().replace("\n", " ")
    return text[:200] or response.reason_phrase


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class AgentClient:
    def __init__(
        self, http: httpx.AsyncClient, base_url: str, group_id: str, api_key: str, hostname: str
    ) -> None:
        self.http = http
        self.hostname = hostname
        self.set_credentials(base_url, group_id, api_key)

    def set_credentials(self, base_url: str, group_id: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.group_id = group_id
        self._auth = httpx.BasicAuth(group_id, api_key)

    def _url(self, template: str) -> str:
        return self.base_url + template.format(group=quote(self.group_id, safe=""))

    async def _send(
        self, method: str, url: str, *, params: dict[str, Any], body: dict[str, Any] | None = None
    ) -> httpx.Response:
        try:
            response = await self.http.request(method, url, params=params, json=body, auth=self._auth)
        except httpx.HTTPError as exc:
            raise ServerUnreachable(_describe(exc)) from exc
        if response.status_code >= 500:
            raise ServerUnreachable(f"HTTP {response.status_code}: {_detail(response)}")
        if response.status_code >= 400:
            raise ServerRejected(response.status_code, _detail(response))
        return response

    async def poll_config(self, held_version: int) -> dict[str, Any] | None:
        """The config to adopt, or None when the server says the held version is current (304)."""
        response = await self._send(
            "GET", self._url(CONF_PATH), params={"hostname": self.hostname, "cv": held_version}
        )
        if response.status_code == 304:
            return None
        return self._json_object(response, "automation config")

    async def post_status(self, status: dict[str, Any]) -> list[dict[str, Any]]:
        """Report status; returns the server's requests to this agent (``{"requests": [...]}``), if any."""
        response = await self._send(
            "POST", self._url(STATUS_PATH), params={"hostname": self.hostname}, body=status
        )
        if not response.content:
            return []
        requests = self._json_object(response, "status answer").get("requests", [])
        if not isinstance(requests, list):
            raise BadResponse("status answer: 'requests' is not a list")
        return [r for r in requests if isinstance(r, dict)]

    async def upload_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Restoration Mode: send the held config (secrets redacted) when the server asks for it."""
        response = await self._send(
            "POST", self._url(UPLOAD_PATH), params={"hostname": self.hostname}, body=config
        )
        return self._json_object(response, "upload answer")

    async def maintenance(
        self,
        method: str,
        rs_id: str,
        path: str = "",
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The rolling-maintenance routes of one replica set (``agent.maintenance``); a refusal (a lease
        denied, a stale move) is a :class:`ServerRejected` carrying the server's reason."""
        url = self._url(MAINTENANCE_PATH) + "/" + quote(rs_id, safe="") + path
        response = await self._send(
            method, url, params={"hostname": self.hostname, **(params or {})}, body=body
        )
        return self._json_object(response, f"maintenance answer for {rs_id}")

    @staticmethod
    def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise BadResponse(f"{what} is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BadResponse(f"{what} is not a JSON object")
        return body

"""The agent's side of the agent API: polling the automation config and posting status.

Owns the HTTP contract with the server (paths, HTTP Basic auth with ``mmsGroupId``/``mmsApiKey``, the ``cv``
and ``hostname`` query parameters) and the translation of its answers into three outcomes the loop acts on:
a result, :class:`ServerUnreachable` (retry with backoff; transport errors, timeouts and 5xx), or
:class:`ServerRejected` (the server answered and said no: 401, 403, 404 and other 4xx). The agent's other
workers (backup, index builds) send their requests through :func:`send` and :func:`send_json` too. The
``httpx.AsyncClient`` is passed in so that a fleet shares one connection pool (its TLS settings come from
``AgentSettings.http_verify``); a failed TLS handshake is told as such (``opsmgr.tls.tls_failure``). May
import ``opsmgr.errors``, ``opsmgr.tls``, ``opsmgr.automation.protocol`` and ``opsmgr.agent.runtime`` (types
only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from opsmgr.automation.protocol import CONF_PATH, STATUS_PATH, UPLOAD_PATH
from opsmgr.errors import OpsmgrError
from opsmgr.tls import tls_failure

if TYPE_CHECKING:
    from opsmgr.agent.runtime import Runtime

MAINTENANCE_PATH = "/agents/api/automation/maintenance/v1/{group}"


# (base URL, group id, agent API key): read at every request, since the agent may be given new ones.
Credentials = tuple[str, str, str]


class AgentRequestFailed(OpsmgrError):
    """An agent request got no answer to use: one of the three kinds below."""


class ServerUnreachable(AgentRequestFailed):
    """No usable answer: the server may be down, restarting or overloaded."""

    http_status = 503
    error_code = "SERVER_UNREACHABLE"


class ServerRejected(AgentRequestFailed):
    """The server answered with a 4xx: retrying right away will not help."""

    error_code = "REJECTED_BY_SERVER"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail, status=status)
        self.status = status
        self.http_status = status


class BadResponse(AgentRequestFailed):
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
    tls = tls_failure(exc)
    if tls is not None:
        # Named plainly: retrying will not help until sslTrustedMMSServerCertificate (or the server) changes.
        return tls
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


async def send(
    http: httpx.AsyncClient, credentials: Credentials, method: str, route: str, path: str = "", **kw: Any
) -> httpx.Response:
    """``method`` on the agent route ``route`` (a path template with ``{group}``) followed by ``path``, with
    HTTP Basic auth; ``kw`` go to ``httpx`` (``params``, ``json``, ``content``, ``headers``). Transport errors
    and 5xx raise :class:`ServerUnreachable`, other 4xx :class:`ServerRejected`."""
    base_url, group_id, api_key = credentials
    url = base_url.rstrip("/") + route.format(group=quote(group_id, safe="")) + path
    try:
        response = await http.request(method, url, auth=httpx.BasicAuth(group_id, api_key), **kw)
    except httpx.HTTPError as exc:
        raise ServerUnreachable(_describe(exc)) from exc
    if response.status_code >= 500:
        raise ServerUnreachable(f"HTTP {response.status_code}: {_detail(response)}")
    if response.status_code >= 400:
        raise ServerRejected(response.status_code, _detail(response))
    return response


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The answer's JSON object, or :class:`BadResponse` naming ``what`` it should have been."""
    try:
        body = response.json()
    except ValueError as exc:
        raise BadResponse(f"{what} is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadResponse(f"{what} is not a JSON object")
    return body


async def send_json(
    http: httpx.AsyncClient, credentials: Credentials, method: str, route: str, path: str = "", **kw: Any
) -> dict[str, Any]:
    """:func:`send`, and its answer's JSON object."""
    response = await send(http, credentials, method, route, path, **kw)
    return json_object(response, f"the answer to {method} {route}{path}")


class AgentClient:
    """The automation routes of one agent: poll, status, Restoration Mode upload, rolling maintenance."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hostname = runtime.hostname

    async def _send(
        self,
        method: str,
        route: str,
        path: str = "",
        *,
        params: dict[str, Any],
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        return await self.runtime.send(method, route, path, params=params, json=body)

    async def poll_config(self, held_version: int) -> dict[str, Any] | None:
        """The config to adopt, or None when the server says the held version is current (304)."""
        response = await self._send("GET", CONF_PATH, params={"hostname": self.hostname, "cv": held_version})
        if response.status_code == 304:
            return None
        return json_object(response, "automation config")

    async def post_status(self, status: dict[str, Any]) -> dict[str, Any]:
        """Report status; returns the server's answer (its requests to this agent, the work list)."""
        response = await self._send("POST", STATUS_PATH, params={"hostname": self.hostname}, body=status)
        if not response.content:
            return {}
        answer = json_object(response, "status answer")
        if not isinstance(answer.get("requests", []), list):
            raise BadResponse("status answer: 'requests' is not a list")
        return answer

    async def upload_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Restoration Mode: send the held config (secrets redacted) when the server asks for it."""
        response = await self._send("POST", UPLOAD_PATH, params={"hostname": self.hostname}, body=config)
        return json_object(response, "upload answer")

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
        response = await self._send(
            method,
            MAINTENANCE_PATH,
            "/" + quote(rs_id, safe="") + path,
            params={"hostname": self.hostname, **(params or {})},
            body=body,
        )
        return json_object(response, f"maintenance answer for {rs_id}")

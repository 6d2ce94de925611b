"""The protocol details every Ops Manager API client relies on, for every route under ``/api/public/``,
applied once in the request pipeline rather than route by route.

Contract, for requests whose path starts with ``/api/public/`` (the UI, the agent API and the rest are passed
through untouched):

- every answer carries ``X-MongoDB-Service-Version: gitHash=<hash>; versionString=<opsmgr version>``, the
  header Ops Manager sends and clients read the server's version from (they take what follows
  ``versionString=``);
- a path with trailing slashes is routed as the same path without them (``/groups/`` answers as ``/groups``,
  never a 307 redirect); the request target as sent (``raw_path``) is left alone, since Digest clients sign
  the URI they send;
- ``envelope=true`` wraps a JSON answer as Ops Manager does, for clients that cannot read the status line:
  ``{"status": <status>, "content": <body>}`` (``content`` is null when there is no body), or, for a list
  answer (an object with ``results``), the same object with ``status`` added; the HTTP status becomes 200,
  except a 401, which stays a 401 (its ``WWW-Authenticate`` challenges drive the Digest handshake);
- ``pretty=true`` indents a JSON answer (with or without the envelope).

Answers that are not JSON (downloads, streams) are never buffered nor rewritten, only given the header. Both
flags are read case-insensitively; any other value is false. May import ``opsmgr`` (its version) only.
"""

from __future__ import annotations

import json
from importlib import metadata
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmgr import __version__

PUBLIC_PREFIX = "/api/public/"
SERVICE_VERSION_HEADER = b"x-mongodb-service-version"


def _git_hash() -> str:
    """The commit this installation was built from when pip recorded one (a VCS install), else ``unknown``."""
    try:
        recorded = metadata.distribution("opsmgr").read_text("direct_url.json")
        commit = json.loads(recorded or "{}").get("vcs_info", {}).get("commit_id")
    except (metadata.PackageNotFoundError, ValueError, AttributeError):
        return "unknown"
    return commit if isinstance(commit, str) and commit else "unknown"


SERVICE_VERSION = f"gitHash={_git_hash()}; versionString={__version__}"


def _flags(query_string: bytes) -> tuple[bool, bool]:
    """``(envelope, pretty)`` from a query string; the last value given for each wins."""
    values = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    return values.get("envelope", "").lower() == "true", values.get("pretty", "").lower() == "true"


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


def rewrite(status: int, body: bytes, *, envelope: bool, pretty: bool) -> tuple[int, bytes] | None:
    """The status and JSON body to send instead of ``status``/``body``; None to send the answer as it is
    (a body that is not JSON)."""
    try:
        content: object = json.loads(body) if body else None
    except ValueError:
        return None
    if envelope:
        if isinstance(content, dict) and "results" in content:
            content = {"status": status, **content}
        else:
            content = {"status": status, "content": content}
        # A 401 keeps its status: Digest clients answer its challenge only when they see one.
        status = status if status == 401 else 200
    text = json.dumps(
        content, ensure_ascii=False, indent=2 if pretty else None, separators=_separators(pretty)
    )
    return status, text.encode("utf-8")


def _separators(pretty: bool) -> tuple[str, str]:
    return (",", ": ") if pretty else (",", ":")


class PublicApiProtocol:
    """Pure ASGI middleware implementing the module's contract; outermost, so that the pipeline's own
    answers (413, malformed JSON, 500) are enveloped like the routes' ones."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PUBLIC_PREFIX):
            await self.app(scope, receive, send)
            return
        if path.endswith("/"):
            # Routed without the slashes (so Starlette never redirects); raw_path stays as sent and signed.
            scope = {**scope, "path": path.rstrip("/")}
        envelope, pretty = _flags(scope.get("query_string", b""))
        rewriting = (envelope or pretty) and scope["method"] != "HEAD"
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_public(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (SERVICE_VERSION_HEADER, SERVICE_VERSION.encode())]
                message = {**message, "headers": headers}
                if rewriting and _is_json(headers):
                    start = message  # held back until the whole body is known
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await _send_rewritten(send, start, b"".join(chunks), envelope=envelope, pretty=pretty)
                return
            await send(message)

        await self.app(scope, receive, send_public)


async def _send_rewritten(send: Send, start: Message, body: bytes, *, envelope: bool, pretty: bool) -> None:
    status: int = start["status"]
    headers: list[tuple[bytes, bytes]] = start["headers"]
    rewritten = rewrite(status, body, envelope=envelope, pretty=pretty)
    if rewritten is not None:
        status, body = rewritten
        headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({**start, "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})

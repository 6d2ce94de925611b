"""The HTTP server of one control-plane instance: builds the FastAPI application around the server's
:class:`~opsmgr.server.services.Services` (built by ``server.boot``).

Owns the request pipeline: request ids and structured access logs, metrics, the body size limit, and the
translation of every error into Ops Manager's JSON error shape, so no request yields a traceback; the public
API's protocol details (``envelope``, ``pretty``, the service version header, trailing slashes) are
``envelope``'s, around it. Route
handlers live in the ``*_api`` modules and stay thin. May import ``opsmgr.jsontypes``, ``opsmgr`` (its
version), ``opsmgr.errors``, ``opsmgr.logs``, ``opsmgr.alerts``, ``opsmgr.automation``, ``opsmgr.backup``,
``opsmgr.maintenance``, ``opsmgr.restoration``, ``opsmgr.store`` and ``opsmgr.server`` modules: everything
below ``server``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmgr import __version__
from opsmgr.errors import OpsmgrError
from opsmgr.jsontypes import JsonObject
from opsmgr.logs import request_id as current_request_id
from opsmgr.server import jsonbody
from opsmgr.server.envelope import PublicApiProtocol
from opsmgr.server.exporter import Exporter
from opsmgr.server.metrics import Metrics
from opsmgr.server.services import Services

log = logging.getLogger("opsmgr.server")
access_log = logging.getLogger("opsmgr.access")

MAX_BODY_BYTES = 8 * 1024 * 1024


def error_response(status: int, detail: str, code: str, **parameters: object) -> JSONResponse:
    body: JsonObject = {
        "detail": detail,
        "error": status,
        "errorCode": code,
        "reason": HTTPStatus(status).phrase,
    }
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)


def _validation_detail(exc: RequestValidationError) -> tuple[str, str]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc) or "body"
    return f"Invalid {where}: {first.get('msg', 'malformed request')}", where


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body is read (a chunked body has no Content-Length to refuse it by): an HTTP error,
    so that FastAPI's body parsing passes it on as it is rather than as a malformed body."""

    def __init__(self) -> None:
        super().__init__(413, f"Request body larger than {MAX_BODY_BYTES} bytes")


class RequestPipeline:
    """Pure ASGI middleware (cheaper than a ``BaseHTTPMiddleware`` on the poll path): request ids, the body
    size limit (declared or chunked), strict JSON bodies (``jsonbody``), metrics, access logs, and a JSON 500
    for anything the exception handlers did not catch."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = (headers.get(b"x-request-id", b"").decode("latin-1") or uuid.uuid4().hex)[:64]
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False
        received = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise BodyTooLarge
            return message

        declared = headers.get(b"content-length")
        try:
            if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
                raise BodyTooLarge
            body: Receive = counted_receive
            if jsonbody.carries_json(scope["method"], headers.get(b"content-type")):
                body = await jsonbody.checked(counted_receive)
            await self.app(scope, body, send_with_id)
        except BodyTooLarge as exc:
            if not response_started:
                await error_response(413, exc.detail, "REQUEST_TOO_LARGE")(scope, receive, send_with_id)
        except OpsmgrError as exc:  # a JSON body that is not strict JSON, refused before any route saw it
            if not response_started:
                await JSONResponse(exc.to_json(), status_code=exc.http_status)(scope, receive, send_with_id)
        except Exception as exc:  # the exception handlers missed it: still never a traceback
            log.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            if not response_started:
                await error_response(500, "Unexpected error", "UNEXPECTED_ERROR")(
                    scope, receive, send_with_id
                )
        finally:
            elapsed = time.perf_counter() - started
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], template, status, elapsed)
            # Agent polls are counted in /metrics, not logged: thousands of agents poll every few seconds.
            if not template.startswith("/agents/"):
                access_log.info("%s %s %s %.1fms", scope["method"], scope["path"], status, elapsed * 1000)
            current_request_id.reset(token)


def _handle_errors(app: FastAPI) -> None:
    """Every error in Ops Manager's JSON error shape, never a traceback."""

    @app.exception_handler(OpsmgrError)
    async def _opsmgr_error(_request: Request, exc: OpsmgrError) -> JSONResponse:
        response = JSONResponse(exc.to_json(), status_code=exc.http_status)
        for challenge in getattr(exc, "challenges", ()):
            response.headers.append("WWW-Authenticate", challenge)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, where = _validation_detail(exc)
        return error_response(400, detail, "INVALID_ATTRIBUTE", field=where)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "REQUEST_TOO_LARGE"}.get(
            exc.status_code, "HTTP_ERROR"
        )
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        response = error_response(exc.status_code, detail, code)
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(request)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(
            500, "Unexpected error; see the server log for the request id.", "UNEXPECTED_ERROR"
        )


def _route(app: FastAPI) -> None:
    from opsmgr.server import (
        adopt_api,
        agent_api,
        agents_api,
        alert_configs_api,
        alerts_api,
        backup_agent_api,
        backup_api,
        daemon_api,
        hosts_api,
        index_builds_api,
        maintenance_api,
        maintenance_windows_api,
        measurement_resources_api,
        measurements_api,
        ops_api,
        public_api,
        restoration_api,
        secondary_api,
    )

    # The agent poll is the hottest route: matched first, before the public API's many routes.
    app.include_router(agent_api.router)
    app.include_router(public_api.router)
    app.include_router(hosts_api.router)
    app.include_router(measurements_api.router)
    app.include_router(measurement_resources_api.router)
    app.include_router(agents_api.router)
    app.include_router(restoration_api.router)
    app.include_router(adopt_api.router)
    app.include_router(alerts_api.router)
    app.include_router(maintenance_windows_api.router)
    app.include_router(alert_configs_api.router)
    app.include_router(backup_agent_api.router)
    app.include_router(backup_api.router)
    app.include_router(backup_api.download_router)
    app.include_router(daemon_api.router)
    app.include_router(secondary_api.router)
    app.include_router(secondary_api.agent_router)
    app.include_router(ops_api.router)
    app.include_router(maintenance_api.agent_router)
    app.include_router(maintenance_api.router)
    app.include_router(index_builds_api.router)
    app.include_router(index_builds_api.agent_router)


def create_app(services: Services) -> FastAPI:
    from opsmgr.server import contract, ops_api

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        services.start()
        try:
            yield
        finally:
            services.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="opsmgr",
        version=__version__,
        description="Open-source control plane for self-managed MongoDB, in Ops Manager's API shapes.",
    )
    app.state.services = services
    app.state.readiness = ops_api.Readiness(
        services.stores.app, services.stores.snapshots, services.stores.oplogs
    )

    _handle_errors(app)
    app.add_middleware(RequestPipeline, metrics=services.metrics)
    # Added last, so outermost: the pipeline's own error answers get the public API's protocol too.
    app.add_middleware(PublicApiProtocol)

    if "api" in services.config.roles:
        _route(app)
    else:  # a daemon host (mms.server.roles=daemon): its health, readiness and metrics only
        app.include_router(ops_api.router)
    exporter = app.state.exporter = Exporter(services)  # /health/ready shows the daemon's health

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        text = services.metrics.render() + "\n".join(services.jobs.metrics()) + "\n" + exporter.text()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    generated = app.openapi
    app.openapi = lambda: contract.declare(generated())  # type: ignore[method-assign]
    return app

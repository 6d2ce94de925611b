"""The HTTP server of one control-plane instance: builds the FastAPI application around a
:class:`ServerContext` (settings, the three stores, gen.key and the domain services).

Owns the request pipeline: request ids and structured access logs, metrics, the body size limit, and the
translation of every error into Ops Manager's JSON error shape, so no request yields a traceback. Route
handlers live in ``public_api`` and ``agent_api`` and stay thin. May import everything below ``server``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmgr import __version__
from opsmgr.alerts import AlertService
from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.automation.service import CONFIG_CHANGED, AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.backup.alerts import AlertPolicy
from opsmgr.backup.blockstore import Compression
from opsmgr.backup.daemon import BackupDaemon
from opsmgr.errors import OpsmgrError
from opsmgr.logs import request_id as current_request_id
from opsmgr.maintenance.service import MaintenanceService, StepEnd
from opsmgr.maintenance.snapshot import Policy
from opsmgr.restoration.mode import ModeState
from opsmgr.restoration.service import RESTORATION_CHANGED, RestorationService
from opsmgr.server import jsonbody
from opsmgr.server.cache import TtlCache
from opsmgr.server.digest import DigestAuthenticator
from opsmgr.server.metrics import Metrics
from opsmgr.server.work import ProjectWork, project_work
from opsmgr.store.appdb import AGENT_KEYS_CHANGED, AppDB
from opsmgr.store.changes import EVERYTHING, ChangeListener
from opsmgr.store.engine import Change, Store

log = logging.getLogger("opsmgr.server")
access_log = logging.getLogger("opsmgr.access")

MAX_BODY_BYTES = 8 * 1024 * 1024
UNCACHED = -2  # below every version an agent can hold, so a poll never matches it


@dataclass
class Stores:
    app: Store
    snapshots: Store
    oplogs: Store

    def all(self) -> list[Store]:
        return [self.app, self.snapshots, self.oplogs]

    def close(self) -> None:
        for s in self.all():
            s.close()


@dataclass
class ServerContext:
    stores: Stores
    encrypt: Callable[[str], str]
    decrypt: Callable[[str], str]
    central_url: str
    digest_secret: bytes
    blockstore_path: Path
    restoration_mode_enabled: bool = True
    agent_poll_interval_s: float = 10.0
    alert_webhook_url: str | None = None
    block_compression: Compression | None = None
    backup_alert_policy: AlertPolicy | None = None
    maintenance_policy: Policy = field(default_factory=Policy)
    metrics: Metrics = field(default_factory=Metrics)
    digest: DigestAuthenticator = field(init=False)
    appdb: AppDB = field(init=False)
    automation: AutomationService = field(init=False)
    restoration: RestorationService = field(init=False)
    backup: BackupDaemon = field(init=False)
    alerts: AlertService = field(init=False)
    maintenance: MaintenanceService = field(init=False)
    # The agent poll path's caches: invalidated by the changes the application database announces (this
    # server's at commit, other servers' through ``changes``), the TTL bounding a lost notification.
    agent_keys: TtlCache[str, set[str]] = field(default_factory=lambda: TtlCache(2.0))
    # A project's goal version while Restoration Mode is INACTIVE, else UNCACHED: every poll of a project
    # armed, reconciling or converging must reach the mode.
    goal_versions: TtlCache[str, int] = field(default_factory=lambda: TtlCache(1.0))
    known_hosts: TtlCache[str, frozenset[str]] = field(default_factory=lambda: TtlCache(2.0))
    # Each project's agent work (``server.work``): recomputed after a change is announced, at the latest
    # after this long.
    work: TtlCache[str, ProjectWork] = field(default_factory=lambda: TtlCache(30.0))
    changes: ChangeListener = field(init=False)

    def __post_init__(self) -> None:
        self.changes = ChangeListener(self.stores.app)
        self.stores.app.on_change(self._forget_cached)
        self.digest = DigestAuthenticator(self.digest_secret)
        self.appdb = AppDB(self.stores.app, self.encrypt, self.decrypt)
        self.alerts = AlertService(self.stores.app)
        self.automation = AutomationService(self.stores.app, self.encrypt, self.decrypt)
        self.backup = BackupDaemon(self.stores, self.blockstore_path, compression=self.block_compression)
        self.maintenance = MaintenanceService(
            self.stores.app,
            self.alerts,
            goal=self.automation.config,
            statuses=self.automation.agent_statuses,
            encrypt=self.encrypt,
            decrypt=self.decrypt,
            policy=self.maintenance_policy,
        )
        self.automation.on_config_change.append(self.maintenance.register)
        self.maintenance.on_step_done.append(self._index_step_done)
        self.automation.status_sections["maintenance"] = self.maintenance.status_views
        self.restoration = RestorationService(
            self.stores.app,
            self.automation,
            enabled=self.restoration_mode_enabled,
            poll_interval_s=self.agent_poll_interval_s,
            enqueue_snapshots=self.backup.enqueue_on_demand,
            alerts=self.alerts,
        )

    def _index_step_done(self, end: StepEnd) -> None:
        """A unique index build's member step ended DONE: the build records it and moves on."""
        from opsmgr.server import index_builds_api

        index_builds_api.service_of(self).step_done(end)

    def start(self) -> None:
        """Before anything is served: listen for other servers' changes, and arm Restoration Mode if a
        restore wrote the application database."""
        self.changes.start()
        self.restoration.arm_after_restore()

    def stop(self) -> None:
        self.changes.stop()

    def _forget_cached(self, change: Change) -> None:
        caches: list[tuple[str, TtlCache[str, Any]]] = [
            (CONFIG_CHANGED, self.goal_versions),
            (CONFIG_CHANGED, self.known_hosts),
            (CONFIG_CHANGED, self.work),
            (WORK_CHANGED, self.work),
            (RESTORATION_CHANGED, self.goal_versions),
            (AGENT_KEYS_CHANGED, self.agent_keys),
        ]
        for topic, cache in caches:
            if change == EVERYTHING:
                cache.clear()
            elif change.topic == topic:
                cache.invalidate(change.key)

    def guard_deployment_change(self, group_id: str) -> None:
        """Refuse deployment changes a project cannot take now."""
        self.restoration.guard(group_id)

    def put_automation_config(
        self, group_id: str, body: Any, *, expected_version: int | None = None
    ) -> dict[str, Any]:
        self.guard_deployment_change(group_id)
        return self.automation.put_config(group_id, body, expected_version=expected_version)

    def unchanged_for_agent(self, group_id: str, held: int) -> bool:
        """True when the cache alone shows the agent holds the goal version (never a database read)."""
        return self.goal_versions.peek(group_id) == held

    def config_for_agent(self, group_id: str, hostname: str, held: int) -> dict[str, Any] | None:
        """The config an agent polling with version ``held`` must adopt, or None for "unchanged".

        Agents adopt whatever they are served, so anything but the goal version gets the goal config, unless
        Restoration Mode says otherwise.
        """
        if held == self.goal_versions.get(group_id, self._poll_version):
            return None  # and the version is now cached for the polls that follow
        return self.restoration.on_poll(group_id, hostname, held)

    def _poll_version(self, group_id: str) -> int:
        if self.restoration.state(group_id) is not ModeState.INACTIVE:
            return UNCACHED
        return self.automation.version(group_id)

    def record_agent_status(self, group_id: str, hostname: str, report: StatusReport) -> dict[str, Any]:
        """Keep the report of an agent of the project (others are not stored); Restoration Mode may answer
        with a request, or refuse an agent that is not the project's."""
        answer = self.restoration.on_status(group_id, hostname, report)
        if hostname.lower() in self.known_hosts.get(group_id, self.restoration.known_hosts):
            self.automation.record_status(group_id, hostname, report)
        work = self.work.get(group_id, lambda g: project_work(self, g)).for_host(hostname)
        if work["version"] != report.workVersion:
            answer = {**answer, "work": work}
        return answer

    def periodic_work(self) -> dict[str, Callable[[], object]]:
        """Work that waits on time rather than on a request, each run by its own thread so that a long
        snapshot never holds up Restoration Mode's timeouts."""
        from opsmgr.server import index_builds_api
        from opsmgr.server.backup_alerts import alert_work
        from opsmgr.server.secondary_watch import secondary_work

        work: dict[str, Callable[[], object]] = {
            "restoration": self.restoration.tick,
            "backup": self.backup.tick,
            "backup-alerts": alert_work(self, self.backup_alert_policy),
            "secondary-watch": secondary_work(self, self.backup_alert_policy),
            "maintenance": self.maintenance.settle_alerts,
            "index-build-configs": lambda: index_builds_api.service_of(self).retry_pending_configs(),
        }
        if self.alert_webhook_url:
            from opsmgr.server.alerts_api import webhook_poster

            post = webhook_poster(self.alert_webhook_url)
            work["alert-webhook"] = lambda: self.alerts.deliver(post)
        return work

    def run_periodic(self, name: str, work: Callable[[], object], stop: threading.Event) -> None:
        while not stop.wait(min(1.0, self.agent_poll_interval_s / 2)):
            try:
                work()
            except OpsmgrError as exc:
                log.warning("periodic %s work failed: %s", name, exc.detail)
            except Exception:
                log.exception("periodic %s work failed", name)


def error_response(status: int, detail: str, code: str, **parameters: Any) -> JSONResponse:
    body: dict[str, Any] = {
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

    def __init__(self, app: ASGIApp, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx

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
            self.ctx.metrics.observe(scope["method"], template, status, elapsed)
            # Agent polls are counted in /metrics, not logged: thousands of agents poll every few seconds.
            if not template.startswith("/agents/"):
                access_log.info("%s %s %s %.1fms", scope["method"], scope["path"], status, elapsed * 1000)
            current_request_id.reset(token)


def create_app(ctx: ServerContext) -> FastAPI:
    from opsmgr.server import (
        agent_api,
        alerts_api,
        backup_agent_api,
        backup_api,
        contract,
        index_builds_api,
        maintenance_api,
        ops_api,
        public_api,
        restoration_api,
        secondary_api,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctx.start()
        stop = threading.Event()
        workers = [
            threading.Thread(target=ctx.run_periodic, args=(name, work, stop), name=name, daemon=True)
            for name, work in ctx.periodic_work().items()
        ]
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            stop.set()
            ctx.stop()
            for worker in workers:
                worker.join(10)

    app = FastAPI(
        lifespan=lifespan,
        title="opsmgr",
        version=__version__,
        description="Open-source control plane for self-managed MongoDB, in Ops Manager's API shapes.",
    )
    app.state.ctx = ctx
    app.state.readiness = ops_api.Readiness(ctx.stores.app, ctx.stores.snapshots, ctx.stores.oplogs)

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

    app.add_middleware(RequestPipeline, ctx=ctx)

    # The agent poll is the hottest route: matched first, before the public API's many routes.
    app.include_router(agent_api.router)
    app.include_router(public_api.router)
    app.include_router(restoration_api.router)
    app.include_router(alerts_api.router)
    app.include_router(backup_agent_api.router)
    app.include_router(backup_api.router)
    app.include_router(backup_api.download_router)
    app.include_router(secondary_api.router)
    app.include_router(secondary_api.agent_router)
    app.include_router(ops_api.router)
    app.include_router(maintenance_api.agent_router)
    app.include_router(maintenance_api.router)
    app.include_router(index_builds_api.router)
    app.include_router(index_builds_api.agent_router)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    generated = app.openapi
    app.openapi = lambda: contract.declare(generated())  # type: ignore[method-assign]
    return app

"""Which FastAPI dependencies run in the shared worker-thread pool.

FastAPI runs a plain-function dependency in that pool: each is one more wait in its queue, which at a
thousand agents reporting at once lasts seconds. Only the dependencies that do I/O (reading keys, sessions,
projects from a store) may be plain functions; those that read an attribute are coroutines.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

# Dependencies that read from a store: run in the pool on purpose, never on the event loop.
DOING_IO = {
    "public_principal",
    "_project_role.<locals>.check",
    "_org_role.<locals>.check",
    "_viewer",
}
ROUTER_MODULES = [
    "adopt_api",
    "agent_api",
    "agents_api",
    "alert_configs_api",
    "alerts_api",
    "backup_agent_api",
    "backup_api",
    "daemon_api",
    "hosts_api",
    "index_builds_api",
    "maintenance_api",
    "maintenance_windows_api",
    "measurement_resources_api",
    "measurements_api",
    "ops_api",
    "public_api",
    "restoration_api",
    "secondary_api",
]


def _routes() -> Iterator[APIRoute]:
    for name in ROUTER_MODULES:
        module = importlib.import_module(f"opsmgr.server.{name}")
        for value in vars(module).values():
            for route in getattr(value, "routes", []) if hasattr(value, "include_router") else []:
                if isinstance(route, APIRoute):
                    yield route


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def test_the_routers_are_found() -> None:
    paths = {r.path for r in _routes()}
    assert "/agents/api/automation/status/v1/{group_id}" in paths
    assert len(paths) > 80


def test_only_dependencies_doing_io_run_in_the_worker_pool() -> None:
    in_pool = {
        f"{call.__module__}.{call.__qualname__}"
        for route in _routes()
        for call in _calls(route.dependant)
        if not inspect.iscoroutinefunction(call) and call.__qualname__ not in DOING_IO
    }
    assert in_pool == set(), "these only read an attribute: make them coroutines"


def test_the_restoration_upload_does_not_queue_in_the_shared_pool() -> None:
    (upload,) = [r for r in _routes() if r.path.endswith("/restoration/v1/{group_id}/config")]
    assert inspect.iscoroutinefunction(upload.endpoint)

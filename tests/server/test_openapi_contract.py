"""The OpenAPI document a real server serves states what its routes do: the security scheme each operation
takes (Digest for the public API, Basic for the agent API), the error statuses it can answer with Ops
Manager's error body, and no FastAPI 422 that nothing answers. And the server keeps its side: a method a path
does not serve is 405 with ``Allow`` naming those it does, a body over the limit is 413 whether its length is
declared or it comes chunked."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr.server.app import MAX_BODY_BYTES
from tests.procs import ServerProcess

PUBLIC = "/api/public/v1.0"


@pytest.fixture(scope="module")
def spec(server: ServerProcess) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/openapi.json").json())


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_both_security_schemes_are_declared_and_each_operation_names_its_own(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert {(s["type"], s["scheme"]) for s in schemes.values()} == {("http", "digest"), ("http", "basic")}
    by_scheme = {s["scheme"]: name for name, s in schemes.items()}
    for path, method, operation in operations(spec):
        if path.startswith(PUBLIC) and path != f"{PUBLIC}/version":
            expected = [{by_scheme["digest"]: []}]
        elif path.startswith("/agents/"):
            expected = [{by_scheme["basic"]: []}]
        else:
            expected = []
        assert operation["security"] == expected, (method, path)


def test_every_error_an_operation_can_answer_is_declared_with_the_error_body(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["ApiError"]
    assert set(error["required"]) == {"detail", "error", "errorCode", "reason"}
    for path, method, operation in operations(spec):
        declared = set(operation["responses"])
        where = (method, path, sorted(declared))
        assert "422" not in declared, where
        if operation["security"]:
            assert {"401", "403", "503"} <= declared, where
        if "requestBody" in operation:
            assert {"400", "413"} <= declared, where
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert {"400", "404"} <= declared, where
        if operation["security"] and method != "get":
            assert "409" in declared, where
        for code in declared - {"200", "201", "202", "204", "304"}:
            content = operation["responses"][code].get("content", {})
            assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiError"}, where
    assert "HTTPValidationError" not in spec["components"]["schemas"]


# Public actions that take no body, as in Ops Manager.
BODILESS = {
    ("post", f"{PUBLIC}/groups/{{group_id}}/clusters/{{cluster_id}}/snapshots"),
    ("post", f"{PUBLIC}/groups/{{group_id}}/clusters/{{cluster_id}}/snapshots/onDemandSnapshot"),
    ("post", f"{PUBLIC}/groups/{{group_id}}/restorationMode/retry"),
}


def _resolved(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_public_route_that_takes_a_body_names_its_fields(spec: dict[str, Any]) -> None:
    """Each public POST, PUT and PATCH declares a JSON body whose schema names its properties (a body typed
    as any object would show none), except the actions that take no body."""
    changes = [
        (method, path, op)
        for path, method, op in operations(spec)
        if path.startswith(PUBLIC) and method in ("post", "put", "patch")
    ]
    assert len(changes) >= 16, changes
    for method, path, operation in changes:
        if (method, path) in BODILESS:
            assert "requestBody" not in operation, (method, path)
            continue
        assert "requestBody" in operation, (method, path)
        schema = _resolved(spec, operation["requestBody"]["content"]["application/json"]["schema"])
        assert schema.get("properties"), (method, path, schema)
    restore = f"{PUBLIC}/groups/{{group_id}}/clusters/{{cluster_id}}/restoreJobs"
    body = _resolved(
        spec, spec["paths"][restore]["post"]["requestBody"]["content"]["application/json"]["schema"]
    )
    assert {"snapshotId", "pointInTimeUTCMillis", "oplogTs", "oplogInc", "delivery"} == set(
        body["properties"]
    )
    delivery = _resolved(spec, body["properties"]["delivery"]["anyOf"][0])
    assert delivery["properties"]["methodName"]["enum"] == ["AUTOMATED_RESTORE", "HTTP"]
    config = f"{PUBLIC}/groups/{{group_id}}/automationConfig"
    body = _resolved(
        spec, spec["paths"][config]["put"]["requestBody"]["content"]["application/json"]["schema"]
    )
    assert {"processes", "replicaSets", "sharding", "auth"} <= set(body["properties"])
    assert body.get("additionalProperties", True) is True  # any other section is kept as it is


def test_particular_declarations(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert "412" in paths[f"{PUBLIC}/groups/{{group_id}}/automationConfig"]["put"]["responses"]
    upload = paths["/agents/api/backup/v1/{group_id}/sources/{source_id}/slices"]["post"]
    assert list(upload["requestBody"]["content"]) == ["application/octet-stream"]
    download = paths["/agents/api/backup/v1/{group_id}/restores/{job_id}/documents"]["get"]
    assert list(download["responses"]["200"]["content"]) == ["application/x-ndjson"]
    assert "503" in paths["/health/ready"]["get"]["responses"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", f"{PUBLIC}/groups/0123456789abcdef01234567/automationConfig", "GET, PUT"),
        ("DELETE", f"{PUBLIC}/groups", "GET, POST"),
        ("PATCH", "/agents/api/backup/v1/g/sources/s/slices", "POST"),
        ("GET", "/agents/api/automation/maintenance/v1/g/rs0/lease", "DELETE, POST, PUT"),
        ("POST", "/health/ready", "GET"),
    ],
)
def test_a_method_the_path_does_not_serve_is_405_naming_those_it_does(
    server: ServerProcess, method: str, path: str, allowed: str
) -> None:
    r = httpx.request(method, server.url + path)
    assert r.status_code == 405 and r.json()["errorCode"] == "METHOD_NOT_ALLOWED", r.text
    assert r.headers["allow"] == allowed


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


def test_a_body_over_the_limit_is_413_declared_or_chunked(
    server: ServerProcess, owner: dict[str, Any]
) -> None:
    with server.client(owner) as api:
        group = api.post("/groups", json={"name": "big bodies"}).json()["id"]
        agent_key = api.post(f"/groups/{group}/agentapikeys", json={"desc": "a"}).json()["key"]
        config = f"/groups/{group}/automationConfig"
        json_type = {"content-type": "application/json"}
        for body, content_type in [
            (b"x" * (MAX_BODY_BYTES + 1), "application/json"),
            (_chunks(MAX_BODY_BYTES + 1), "application/json"),
            (_chunks(MAX_BODY_BYTES + 1), "text/plain"),  # read by FastAPI, not as JSON
        ]:
            r = api.put(config, content=body, headers={"content-type": content_type})
            assert r.status_code == 413 and r.json()["errorCode"] == "REQUEST_TOO_LARGE", r.text
        # A chunked body within the limit is read whole.
        assert api.put(config, content=_chunks(10, 3), headers=json_type).status_code == 400
        assert api.get(config).json()["version"] == 0
    basic = base64.b64encode(f"{group}:{agent_key}".encode()).decode()
    r = httpx.post(
        f"{server.url}/agents/api/backup/v1/{group}/sources/nosuch/slices",
        content=_chunks(MAX_BODY_BYTES + 1),
        headers={"Authorization": f"Basic {basic}", "content-type": "application/octet-stream"},
        timeout=30,
    )
    assert r.status_code == 413 and r.json()["errorCode"] == "REQUEST_TOO_LARGE", r.text


ODD_IDS = ["x", "0", "é", "a b", "a.b", "0" * 300, "-", "%00", "%2e%2e"]


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as client:
        yield client


@pytest.fixture(scope="module")
def group(api: httpx.Client) -> str:
    return str(api.post("/groups", json={"name": "odd ids"}).json()["id"])


@pytest.mark.parametrize("odd", ODD_IDS)
def test_any_string_a_path_id_schema_allows_is_a_declared_answer(
    api: httpx.Client, group: str, odd: str
) -> None:
    """Path ids are strings in the document: any string is 404 or 400 (both declared for every operation
    with a path id, above), never 422 or 500."""
    for template in [
        "/groups/{id}",
        "/groups/{id}/automationConfig",
        "/groups/{group}/clusters/{id}",
        "/groups/{group}/clusters/{id}/restoreJobs/{id}",
        "/groups/{group}/alerts/{id}",
        "/groups/{group}/maintenance/{id}",
        "/groups/{group}/uniqueIndexBuilds/{id}",
        "/groups/{group}/backingDatabases/{id}",
        "/orgs/{id}/apiKeys/{id}",
    ]:
        r = api.get(template.format(id=odd, group=group))
        assert r.status_code in (400, 404) and r.json()["errorCode"], (template, r.text)

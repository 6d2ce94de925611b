"""The OpenAPI document tells the truth: what FastAPI generates from the routes, completed here by rules on
each operation's path, method and shape rather than in every route decorator.

- Security: the public API (``/api/public/v1.0``, but for ``/version``) takes programmatic API keys over HTTP
  Digest, the agent API (``/agents``) the project's agent API key over HTTP Basic; both schemes are declared
  and each operation names its own.
- Statuses, each with Ops Manager's error body (:data:`ERROR_SCHEMA`): an authenticated operation can answer
  401 and 403, and 503 when a backing database is unavailable; one with parameters or a body 400 (never
  FastAPI's 422: validation errors are answered 400), one with a body 413, one with path parameters 404;
  changes (and downloads of restored documents) 409; a conditional one (``If-Match``) 412.
- Downloads of restored documents are JSON lines; an oplog slice upload is an ``application/octet-stream``
  body.

May import the standard library and ``opsmgr.jsontypes`` only: it reads the document, not the routes.
"""

from __future__ import annotations

from http import HTTPStatus

from opsmgr.jsontypes import JsonObject

PUBLIC_PREFIX = "/api/public/v1.0"
AGENT_PREFIX = "/agents/"
UNAUTHENTICATED = {"/api/public/v1.0/version"}
DIGEST, BASIC = "DigestAuth", "AgentBasicAuth"
SLICE_UPLOAD = "/slices"
JSON_LINES = "application/x-ndjson"

SECURITY_SCHEMES = {
    DIGEST: {
        "type": "http",
        "scheme": "digest",
        "description": "A programmatic API key: its public key as user name, its private key as password.",
    },
    BASIC: {
        "type": "http",
        "scheme": "basic",
        "description": "The project id (mmsGroupId) as user name, an agent API key (mmsApiKey) as password.",
    },
}
ERROR_SCHEMA = {
    "title": "ApiError",
    "type": "object",
    "required": ["detail", "error", "errorCode", "reason"],
    "properties": {
        "detail": {"type": "string"},
        "error": {"type": "integer"},
        "errorCode": {"type": "string"},
        "reason": {"type": "string"},
        "parameters": {"type": "object", "additionalProperties": True},
    },
}
_WHY = {
    400: "The request is malformed or breaks a rule (``parameters.field`` names where)",
    401: "No valid credentials; the answer carries the challenges",
    403: "The credentials may not do this",
    404: "No such resource (or it belongs to another tenant)",
    409: "The resource's state does not allow it now (Restoration Mode, a held lease, a finished job...)",
    412: "If-Match names a version that is no longer the current one",
    413: "The request body is larger than the server takes",
    503: "A backing database is unavailable; retry",
}
_CHANGES = {"post", "put", "patch", "delete"}


def declare(schema: JsonObject) -> JsonObject:
    """Completes FastAPI's ``schema`` in place (doing it again changes nothing) and returns it."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    schemas = components.setdefault("schemas", {})
    schemas["ApiError"] = ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _declare_operation(path, method, operation)
    # Nothing answers FastAPI's 422 any more; its schemas would only mislead.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def _scheme(path: str) -> str | None:
    if path in UNAUTHENTICATED:
        return None
    if path.startswith(PUBLIC_PREFIX):
        return DIGEST
    if path.startswith(AGENT_PREFIX):
        return BASIC
    return None


def _declare_operation(path: str, method: str, operation: JsonObject) -> None:
    scheme = _scheme(path)
    operation["security"] = [{scheme: []}] if scheme else []
    if method == "post" and path.endswith(SLICE_UPLOAD):
        operation["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    if method == "get" and path.endswith("/documents") and "200" in responses:
        responses["200"]["content"] = {JSON_LINES: {"schema": {"type": "string"}}}
    parameters = operation.get("parameters", [])
    codes: set[int] = set()
    if scheme:
        codes |= {401, 403, 503}
    if parameters or "requestBody" in operation:
        codes.add(400)
    if "requestBody" in operation:
        codes.add(413)
    if any(p.get("in") == "path" for p in parameters):
        codes.add(404)
    if scheme and (method in _CHANGES or path.endswith("/documents")):
        codes.add(409)
    if any(p.get("in") == "header" and p.get("name", "").lower() == "if-match" for p in parameters):
        codes.add(412)
    if path == "/health/ready":
        codes.add(503)
    for code in sorted(codes):
        responses.setdefault(str(code), _error(code, scheme))


def _error(code: int, scheme: str | None) -> JsonObject:
    response: JsonObject = {
        "description": _WHY.get(code, HTTPStatus(code).phrase),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}},
    }
    if code == 401 and scheme:
        response["headers"] = {
            "WWW-Authenticate": {"description": "The challenges to answer", "schema": {"type": "string"}}
        }
    return response

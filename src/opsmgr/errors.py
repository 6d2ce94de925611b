"""The one exception hierarchy of opsmgr.

Domain code raises these; the HTTP layer turns them into Ops Manager shaped JSON errors and the CLI into a
message and a non-zero exit. Nothing here knows about the web framework: ``http_status`` is just data.

May import the standard library only.
"""

from __future__ import annotations

from typing import Any


class OpsmgrError(Exception):
    """Base of every error opsmgr raises on purpose."""

    http_status = 500
    error_code = "UNEXPECTED_ERROR"

    def __init__(self, detail: str, *, error_code: str | None = None, **parameters: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if error_code is not None:
            self.error_code = error_code
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        from http import HTTPStatus

        body: dict[str, Any] = {
            "detail": self.detail,
            "error": self.http_status,
            "errorCode": self.error_code,
            "reason": HTTPStatus(self.http_status).phrase,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class InvalidInput(OpsmgrError):
    """The request is malformed or breaks a rule; ``field`` names the offending path."""

    http_status = 400
    error_code = "INVALID_ATTRIBUTE"

    def __init__(self, detail: str, *, field: str | None = None, rule: str | None = None, **kw: Any) -> None:
        extra: dict[str, Any] = dict(kw)
        if field is not None:
            extra["field"] = field
        if rule is not None:
            extra["rule"] = rule
        super().__init__(detail, **extra)
        self.field = field
        self.rule = rule


class Unauthorized(OpsmgrError):
    http_status = 401
    error_code = "USER_UNAUTHORIZED"


class Forbidden(OpsmgrError):
    """Authenticated but not permitted. Ops Manager answers these 401 with the same error codes; opsmgr keeps
    HTTP's 403 for them, so that a client can tell bad credentials from a missing role."""

    http_status = 403
    error_code = "USER_UNAUTHORIZED"


class NotFound(OpsmgrError):
    http_status = 404
    error_code = "RESOURCE_NOT_FOUND"


class Conflict(OpsmgrError):
    http_status = 409
    error_code = "CONFLICT"


class Gone(OpsmgrError):
    """The resource existed but can no longer be used (an expired or used-up download)."""

    http_status = 410
    error_code = "GONE"


class PreconditionFailed(OpsmgrError):
    """A conditional request (``If-Match``) names a version that is no longer the current one."""

    http_status = 412
    error_code = "PRECONDITION_FAILED"


class PreflightFailure(OpsmgrError):
    """Start-up must not go on; the CLI prints ``detail`` and exits non-zero."""

    error_code = "PREFLIGHT_FAILED"


class StoreError(OpsmgrError):
    """A backing database could not be used."""

    http_status = 503
    error_code = "STORE_UNAVAILABLE"


class OplogGap(OpsmgrError):
    """A reader asked for entries after a ``ts`` the capped oplog no longer covers."""

    http_status = 409
    error_code = "OPLOG_GAP"

    def __init__(self, after_ts: int, first_available_ts: int | None) -> None:
        super().__init__(
            f"oplog no longer covers ts {after_ts}: entries before {first_available_ts} were truncated",
            after_ts=after_ts,
            first_available_ts=first_available_ts,
        )
        self.after_ts = after_ts
        self.first_available_ts = first_available_ts

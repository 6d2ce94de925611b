"""The grant behind an HTTP restore job's download URL: a token bound to one job, valid until it expires and
for ``maxDownloads`` downloads (1 unless the job asked for more), as Ops Manager's ``delivery`` describes it
(``expires``, ``maxDownloads``, ``statusName`` READY, EXPIRED or MAX_DOWNLOADS_EXCEEDED).

The token is the URL's only credential, so the application database keeps only its SHA-256 digest: a copy
of the database (the secondary's backup of it, a restore download of it) grants no download. The token is
derived from the job id with a secret of gen.key, so the server can show the URL again to whoever may
restore, without storing it. Owns the ``download`` field of a restore job record.

May import ``opsmgr.jsontypes``, ``opsmgr.errors`` only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, replace
from enum import StrEnum

from opsmgr.errors import Gone, NotFound
from opsmgr.jsontypes import JsonObject

_PURPOSE = b"opsmgr restore download v1\x00"


class DeliveryStatus(StrEnum):
    READY = "READY"
    EXPIRED = "EXPIRED"
    MAX_DOWNLOADS_EXCEEDED = "MAX_DOWNLOADS_EXCEEDED"


def token_for(secret: bytes, job_id: str) -> str:
    """The download token of job ``job_id``: unguessable without the secret, and another job's never fits."""
    digest = hmac.new(secret, _PURPOSE + job_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class DownloadGrant:
    token_hash: str
    expires_ms: int
    max_downloads: int
    used: int = 0

    @classmethod
    def issue(cls, secret: bytes, job_id: str, expires_ms: int, max_downloads: int) -> DownloadGrant:
        return cls(_digest(token_for(secret, job_id)), expires_ms, max_downloads)

    @classmethod
    def of(cls, job: JsonObject) -> DownloadGrant | None:
        """The grant of a job record; None for a job without one (automated, or stored before grants)."""
        raw = job.get("download")
        if not isinstance(raw, dict):
            return None
        return cls(raw["tokenHash"], int(raw["expiresMs"]), int(raw["maxDownloads"]), int(raw["used"]))

    def to_json(self) -> JsonObject:
        return {
            "tokenHash": self.token_hash,
            "expiresMs": self.expires_ms,
            "maxDownloads": self.max_downloads,
            "used": self.used,
        }

    def status(self, now_ms: int) -> DeliveryStatus:
        if self.used >= self.max_downloads:
            return DeliveryStatus.MAX_DOWNLOADS_EXCEEDED
        if now_ms >= self.expires_ms:
            return DeliveryStatus.EXPIRED
        return DeliveryStatus.READY

    def fits(self, token: str) -> bool:
        return hmac.compare_digest(_digest(token), self.token_hash)

    def use(self, token: str, now_ms: int) -> DownloadGrant:
        """The grant after one more download with ``token``: 404 for a token that does not fit (as for a job
        that does not exist), 410 Gone once expired or used up."""
        if not self.fits(token):
            raise no_such_download()
        status = self.status(now_ms)
        if status is not DeliveryStatus.READY:
            raise Gone(
                f"this download is no longer available: {status.value}",
                error_code=f"RESTORE_DOWNLOAD_{status.value}",
                statusName=status.value,
            )
        return replace(self, used=self.used + 1)


def no_such_download() -> NotFound:
    return NotFound("no such download", error_code="RESTORE_DOWNLOAD_NOT_FOUND")

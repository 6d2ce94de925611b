"""The installation record, the restore fence, and the start-up preflight that checks both.

Owns the ``installation`` collection of the application database (one document: the gen.key check value and
the highest application version that has opened the store) and the ``restore_fence`` collection of any
backing database (one document ``{_id: "fence"}`` that a restore writes first and removes last).

:func:`preflight` runs before a server serves anything. It refuses, in this order, on a restore fence in any
of the three backing databases, on a gen.key whose check value differs from the recorded one, and on an
application version older than the recorded one; on success it records the check value (first start) and
raises the recorded version. The key and version checks and their write are one transaction of the
application database, so two servers starting together on shared stores cannot both "first start".

May import ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsmgr.errors import Conflict, InvalidInput, PreflightFailure
from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store

log = logging.getLogger(__name__)

INSTALLATION = "installation"
INSTALLATION_ID = "installation"
RESTORE_FENCE = "restore_fence"
FENCE_ID = "fence"

KEY_MISMATCH = "gen.key doesn't match the key already used for this Ops Manager installation"
DOWNGRADE = "Downgrades are not permitted"

_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)(?:[-.]?([0-9A-Za-z][0-9A-Za-z.\-]*))?(?:\+[0-9A-Za-z.\-]+)?$")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# Versions.


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """A comparable application version: ``0.10.0 > 0.9.1``, ``1.0 == 1.0.0``, ``1.0.0-rc1 < 1.0.0``.

    Pre-release tags compare as text (``dev1 < rc1``); build metadata after ``+`` is ignored.
    """

    release: tuple[int, ...]
    final: bool
    pre: str
    text: str = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION.match(text.strip())
        if m is None:
            raise InvalidInput(f"not a version: {text!r}", field="version", rule="version")
        release = tuple(int(p) for p in m.group(1).split("."))
        while len(release) > 1 and release[-1] == 0:
            release = release[:-1]
        pre = m.group(2) or ""
        return cls(release, not pre, pre, text.strip())

    def __str__(self) -> str:
        return self.text


# The installation record.


@dataclass(frozen=True, slots=True)
class InstallationRecord:
    key_check_value: str | None
    highest_version: str | None
    created_at: str
    last_started_at: str
    last_started_version: str | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> InstallationRecord:
        return cls(
            key_check_value=doc.get("genKeyCheckValue"),
            highest_version=doc.get("highestVersion"),
            created_at=str(doc.get("createdAt", "")),
            last_started_at=str(doc.get("lastStartedAt", "")),
            last_started_version=doc.get("lastStartedVersion"),
        )


def read_installation(app_store: Store) -> InstallationRecord | None:
    doc = app_store.get(INSTALLATION, INSTALLATION_ID)
    return None if doc is None else InstallationRecord.from_doc(doc)


# The restore fence.


@dataclass(frozen=True, slots=True)
class RestoreFence:
    """Written into a backing database by the restore that is replacing its contents."""

    restore_job_id: str
    store: str
    written_by: str
    written_at: str
    download: str = ""  # the folder its restore downloads into, which a killed restore leaves behind

    def to_doc(self) -> dict[str, Any]:
        return {
            "_id": FENCE_ID,
            "restoreJobId": self.restore_job_id,
            "store": self.store,
            "writtenBy": self.written_by,
            "writtenAt": self.written_at,
            "download": self.download,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RestoreFence:
        return cls(
            restore_job_id=str(doc.get("restoreJobId", "?")),
            store=str(doc.get("store", "?")),
            written_by=str(doc.get("writtenBy", "?")),
            written_at=str(doc.get("writtenAt", "?")),
            download=str(doc.get("download", "")),
        )

    def describe(self) -> str:
        return (
            f"restore job {self.restore_job_id} (restoring {self.store}) fenced it off, "
            f"written by {self.written_by} at {self.written_at}"
        )


def write_fence(
    store: Store,
    *,
    restore_job_id: str,
    store_label: str,
    written_by: str,
    download: str = "",
    taking_over: str | None = None,
) -> RestoreFence:
    """Fence ``store`` off for a restore job. Writing again for the same job is a no-op that keeps the
    original time; a fence of another job is a :class:`Conflict`, since two restores must not interleave,
    unless it is the fence of job ``taking_over`` (an interrupted restore this one replaces: in one
    transaction, so the store is never unfenced in between).
    """
    with store.tx() as t:
        existing = t.get(RESTORE_FENCE, FENCE_ID)
        if existing is not None:
            fence = RestoreFence.from_doc(existing)
            if fence.restore_job_id == restore_job_id:
                return fence
            if fence.restore_job_id != taking_over:
                raise Conflict(
                    f"{store.name} is already fenced off: {fence.describe()}",
                    error_code="RESTORE_FENCE_EXISTS",
                    restoreJobId=fence.restore_job_id,
                )
        fence = RestoreFence(restore_job_id, store_label, written_by, _now_iso(), download)
        t.put(RESTORE_FENCE, fence.to_doc())
    log.info("restore fence written on %s: %s", store.name, fence.describe())
    return fence


def read_fence(store: Store) -> RestoreFence | None:
    doc = store.get(RESTORE_FENCE, FENCE_ID)
    return None if doc is None else RestoreFence.from_doc(doc)


def remove_fence(store: Store, *, restore_job_id: str | None = None) -> bool:
    """Remove the fence; with ``restore_job_id``, only that job's fence (another job's is a Conflict).

    Returns whether a fence was removed.
    """
    with store.tx() as t:
        existing = t.get(RESTORE_FENCE, FENCE_ID)
        if existing is None:
            return False
        fence = RestoreFence.from_doc(existing)
        if restore_job_id is not None and fence.restore_job_id != restore_job_id:
            raise Conflict(
                f"the fence on {store.name} belongs to restore job {fence.restore_job_id}, "
                f"not {restore_job_id}",
                error_code="RESTORE_FENCE_EXISTS",
                restoreJobId=fence.restore_job_id,
            )
        t.delete(RESTORE_FENCE, FENCE_ID)
    log.info("restore fence removed from %s: %s", store.name, fence.describe())
    return True


# Preflight.


def preflight(
    app_store: Store, snapshot_store: Store, oplog_store: Store, genkey: GenKey, app_version: str
) -> None:
    """Refuse to start on a restore fence, a mismatched gen.key or a downgrade; else record this start."""
    running = Version.parse(app_version)
    _check_fences(
        [
            ("application database", app_store),
            ("snapshot metadata store", snapshot_store),
            ("oplog metadata store", oplog_store),
        ]
    )
    check = genkey.check_value()
    now = _now_iso()
    with app_store.tx() as t:
        doc = t.get(INSTALLATION, INSTALLATION_ID)
        record = None if doc is None else InstallationRecord.from_doc(doc)
        if record is not None and record.key_check_value is not None and record.key_check_value != check:
            where = f" ({genkey.path})" if genkey.path else ""
            raise PreflightFailure(
                f"{KEY_MISMATCH}: the gen.key in use{where} is not the one that encrypted this application "
                "database. Use the gen.key from the original installation (keep it in your disaster recovery "
                "backup alongside the application database).",
                error_code="GEN_KEY_MISMATCH",
            )
        highest = _highest_recorded(record)
        if highest is not None and highest > running:
            raise PreflightFailure(
                f"{DOWNGRADE}: this is opsmgr {running}, but the application database has already been "
                f"opened by opsmgr {highest}. Run opsmgr {highest} or later.",
                error_code="DOWNGRADE_NOT_PERMITTED",
                runningVersion=str(running),
                recordedVersion=str(highest),
            )
        t.put(
            INSTALLATION,
            {
                **(doc or {"_id": INSTALLATION_ID, "createdAt": now}),
                "genKeyCheckValue": check,
                "highestVersion": str(running if highest is None or running > highest else highest),
                "lastStartedAt": now,
                "lastStartedVersion": str(running),
            },
        )
    if record is None:
        log.info("first start of this installation: recorded the gen.key check value and version %s", running)


def _highest_recorded(record: InstallationRecord | None) -> Version | None:
    if record is None or record.highest_version is None:
        return None
    try:
        return Version.parse(record.highest_version)
    except InvalidInput:
        raise PreflightFailure(
            f"the installation record holds an unreadable version {record.highest_version!r}",
            error_code="INSTALLATION_RECORD_CORRUPT",
        ) from None


def _check_fences(stores: list[tuple[str, Store]]) -> None:
    found = [(label, store, fence) for label, store in stores if (fence := read_fence(store)) is not None]
    if not found:
        return
    lines = [f"  - {label} ({store.safe_url}): {fence.describe()}" for label, store, fence in found]
    left = sorted({f.download for _, _, f in found if f.download and Path(f.download).exists()})
    lines += [
        f"  - its download (store contents, agent-key hashes included) is left in {p}; the next restore "
        "or `opsmgr fence remove` deletes it"
        for p in left
    ]
    raise PreflightFailure(
        "Refusing to start: a restore fence stands on "
        + ", ".join(label for label, _, _ in found)
        + ", so a restore of that backing database is in progress or was interrupted, and serving from it "
        "now could split the brain between old and new state.\n"
        + "\n".join(lines)
        + "\nWait for the restore job to finish: it removes the fence last. If the job failed or was "
        "abandoned, run the restore again; only when you are sure nothing is still restoring into the "
        "database, remove it with `opsmgr fence remove --store <app|snapshot|oplog> --restore-job <id>`.",
        error_code="RESTORE_FENCE",
        fences=[{"store": label, **fence.to_doc()} for label, _, fence in found],
    )

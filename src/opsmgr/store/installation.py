"""The installation record, the restore fence, and the start-up preflight that checks both.

Owns the ``installation`` collection of every backing database: in the application database the installation
record (the installation id, the gen.key check value and the highest application version that has opened the
store), in the two metadata stores one document carrying the installation id. Owns also the
``restore_fence`` collection of any backing database (one document ``{_id: "fence"}`` that a restore writes
first and removes last).

:func:`check_integrity` reads every page of each SQLite store and refuses a damaged one. :func:`preflight`
then refuses, in this order, on a restore fence in any of the three backing databases, on a gen.key whose
check value differs from the recorded one, on an application version older than the recorded one, and on
stores that are missing, emptied or of another installation (``store.identity`` decides); on success it
records the check value and installation id (first start), stamps the id on the stores that lack it, and
raises the recorded version. The checks and their writes happen inside one transaction of the application
database, so two servers starting together on shared stores cannot both "first start".

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
from opsmgr.store.backing import Role
from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store, Txn, new_id
from opsmgr.store.identity import (
    ID_FIELD,
    Decision,
    StoreFacts,
    Surroundings,
    bind_key,
    damaged,
    decide,
)

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
    installation_id: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> InstallationRecord:
        return cls(
            key_check_value=doc.get("genKeyCheckValue"),
            highest_version=doc.get("highestVersion"),
            created_at=str(doc.get("createdAt", "")),
            last_started_at=str(doc.get("lastStartedAt", "")),
            last_started_version=doc.get("lastStartedVersion"),
            installation_id=_id_of(doc),
        )


def read_installation(app_store: Store) -> InstallationRecord | None:
    doc = app_store.get(INSTALLATION, INSTALLATION_ID)
    return None if doc is None else InstallationRecord.from_doc(doc)


def _id_of(doc: dict[str, Any] | None) -> str | None:
    value = None if doc is None else doc.get(ID_FIELD)
    return value if isinstance(value, str) and value else None


def read_facts(t: Txn, role: Role, where: str) -> StoreFacts:
    """What a backing database holds, read in ``t`` (a transaction of that database)."""
    doc = t.get(INSTALLATION, INSTALLATION_ID)
    return StoreFacts(role, where, t.count_all(), _id_of(doc), has_record=doc is not None)


def store_facts(store: Store, role: Role) -> StoreFacts:
    with store.read() as t:
        return read_facts(t, role, store.safe_url)


def read_installation_id(store: Store) -> str | None:
    """The installation a backing database carries (its record, or its id document), if any."""
    return _id_of(store.get(INSTALLATION, INSTALLATION_ID))


def _stamp(store: Store, installation_id: str) -> None:
    with store.tx() as t:
        doc = t.get(INSTALLATION, INSTALLATION_ID) or {"_id": INSTALLATION_ID}
        t.put(INSTALLATION, {**doc, ID_FIELD: installation_id, "stampedAt": _now_iso()})


def check_integrity(stores: list[tuple[Role, Store]]) -> None:
    """Refuse to start on a backing database with a damaged page (SQLite's quick_check)."""
    for role, store in stores:
        problems = store.quick_check()
        if problems:
            raise damaged(role, store.safe_url, problems)


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
    app_store: Store,
    snapshot_store: Store,
    oplog_store: Store,
    genkey: GenKey,
    app_version: str,
    *,
    around: Surroundings | None = None,
    absent: frozenset[Role] = frozenset(),
) -> Decision:
    """Refuse to start on a restore fence, a mismatched gen.key, a downgrade, or stores that are missing,
    emptied or of another installation; else record this start. ``around`` says what lies beside the
    stores, ``absent`` which SQLite files did not exist before this start."""
    running = Version.parse(app_version)
    metadata = {Role.SNAPSHOT: snapshot_store, Role.OPLOG: oplog_store}
    _check_fences([(Role.APP.value, app_store), *((r.value, s) for r, s in metadata.items())])
    around = around or Surroundings()
    now = _now_iso()
    with app_store.tx() as t:
        doc = t.get(INSTALLATION, INSTALLATION_ID)
        record = None if doc is None else InstallationRecord.from_doc(doc)
        _check_key(record, genkey)
        highest = _highest_recorded(record)
        if highest is not None and highest > running:
            raise PreflightFailure(
                f"{DOWNGRADE}: this is opsmgr {running}, but the application database has already been "
                f"opened by opsmgr {highest}. Run opsmgr {highest} or later.",
                error_code="DOWNGRADE_NOT_PERMITTED",
                runningVersion=str(running),
                recordedVersion=str(highest),
            )
        facts = [
            _absent_or(read_facts(t, Role.APP, app_store.safe_url), absent),
            *(_absent_or(store_facts(store, role), absent) for role, store in metadata.items()),
        ]
        # Decided under the application database's writer lock: a server starting at the same time on the
        # same stores waits here, then finds this one's record and ids.
        decision = decide(facts, around, new_id)
        for role in decision.stamp:
            if role in metadata:
                _stamp(metadata[role], decision.installation_id)
        t.put(
            INSTALLATION,
            {
                **(doc or {"_id": INSTALLATION_ID, "createdAt": now}),
                ID_FIELD: decision.installation_id,
                "genKeyCheckValue": genkey.check_value(),
                "highestVersion": str(running if highest is None or running > highest else highest),
                "lastStartedAt": now,
                "lastStartedVersion": str(running),
            },
        )
    _after_start(decision, around, running)
    return decision


def _absent_or(facts: StoreFacts, absent: frozenset[Role]) -> StoreFacts:
    if facts.role in absent and facts.new:
        return StoreFacts.missing(facts.role, facts.where)
    return facts


def _check_key(record: InstallationRecord | None, genkey: GenKey) -> None:
    if (
        record is not None
        and record.key_check_value is not None
        and record.key_check_value != genkey.check_value()
    ):
        where = f" ({genkey.path})" if genkey.path else ""
        raise PreflightFailure(
            f"{KEY_MISMATCH}: the gen.key in use{where} is not the one that encrypted this application "
            "database. Use the gen.key from the original installation (keep it in your disaster recovery "
            "backup alongside the application database).",
            error_code="GEN_KEY_MISMATCH",
        )


def _after_start(decision: Decision, around: Surroundings, running: Version) -> None:
    if around.key_path is not None and around.key_bound_to is None:
        bind_key(around.key_path, decision.installation_id)
    if decision.first_start:
        log.info(
            "first start of this installation: installation id %s, recorded the gen.key check value and "
            "version %s",
            decision.installation_id,
            running,
        )
    elif decision.stamp:
        log.info(
            "installation id %s recorded in the %s",
            decision.installation_id,
            ", ".join(role.value for role in decision.stamp),
        )


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

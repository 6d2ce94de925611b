"""Which installation a server's backing databases belong to, and whether this start is its first.

Owns the decision that keeps a damaged or partly lost installation from being served as a new one. What
decides is what each backing database holds (:class:`StoreFacts`: missing, empty, or holding the id of an
installation) and what lies beside them (:class:`Surroundings`: whether gen.key has already served an
installation, whether the blockstore holds blocks). :func:`decide` allows a first start only when ALL of them
are new, refuses every other mix (a :class:`PreflightFailure` naming each store's state and how to recover),
refuses a store that carries the id of another installation, and otherwise returns the installation id and
the stores that do not carry it yet (an installation from before ids adopts one at its next start).

Owns also the file beside gen.key (``gen.key.installation``) that names the installation the key serves: the
key itself is 24 random bytes and cannot say whether it is new. Losing that file only weakens the check.

May import ``opsmgr.errors`` and ``opsmgr.store.backing`` (the stores' roles).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opsmgr.errors import PreflightFailure
from opsmgr.store.backing import Role as Role  # its home is store.backing; re-exported for the preflight

log = logging.getLogger(__name__)

ID_FIELD = "installationId"
BINDING_SUFFIX = ".installation"

RECOVER = (
    "To recover, stop every server on these stores and restore them from the secondary with "
    "`opsmgr backup restore-stores --primary-conf <conf-mms.properties>` (or `--primary-data-dir <dir>`), "
    "which restores the three backing databases to one point in time and keeps their installation id."
)


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """What one backing database holds at start."""

    role: Role
    where: str
    documents: int
    installation_id: str | None = None
    # The store's installation document: the installation record (app) or the id document (metadata stores).
    has_record: bool = False
    # An SQLite file that did not exist, or was empty, before this start (not merely an empty database).
    absent: bool = False

    @classmethod
    def missing(cls, role: Role, where: str) -> StoreFacts:
        return cls(role, where, 0, absent=True)

    @property
    def new(self) -> bool:
        return self.documents == 0

    def state(self) -> str:
        if self.absent:
            return "missing"
        if self.new:
            return "empty"
        if self.installation_id is not None:
            return f"holds installation {self.installation_id}"
        return f"holds {self.documents} documents (no installation id yet)"

    def line(self) -> str:
        return f"  - {self.role} ({self.where}): {self.state()}"


@dataclass(frozen=True, slots=True)
class Surroundings:
    """What lies beside the backing databases."""

    key_path: Path | None = None
    key_bound_to: str | None = None  # the installation gen.key has served (the file beside it)
    blockstore: Path | None = None
    blockstore_holds_blocks: bool = False
    snapshot_blocks: int = 0  # distinct blocks the snapshot metadata store's snapshots reference

    def earlier_installation(self) -> list[str]:
        """What says an installation existed here before."""
        found = []
        if self.key_bound_to is not None:
            found.append(
                f"the gen.key at {self.key_path} has served installation {self.key_bound_to} "
                f"(so says {binding_path(self.key_path) if self.key_path else 'its binding'})"
            )
        if self.blockstore_holds_blocks:
            found.append(f"the blockstore at {self.blockstore} holds snapshot blocks")
        return found


@dataclass(frozen=True, slots=True)
class Decision:
    installation_id: str
    first_start: bool
    stamp: tuple[Role, ...]  # the stores that do not carry the installation id yet


def decide(facts: Sequence[StoreFacts], around: Surroundings, make_id: Callable[[], str]) -> Decision:
    """First start, a start of the installation the stores carry, or a :class:`PreflightFailure`."""
    if all(f.new for f in facts):
        evidence = around.earlier_installation()
        if evidence:
            raise _refusal(
                "every backing database is new, but "
                + " and ".join(evidence)
                + ": this is not a first start",
                facts,
                "NOT_A_FIRST_START",
                "If you really mean to start a new, empty installation here, move the old blockstore "
                "folder aside and use a new gen.key (or delete the file beside it naming its installation).",
            )
        return Decision(make_id(), True, tuple(f.role for f in facts))
    app = next(f for f in facts if f.role is Role.APP)
    if not app.new and not app.has_record:
        raise _refusal(
            "the application database holds documents but no installation record: it is damaged",
            facts,
            "STORE_DAMAGED",
        )
    # Before installation ids, a metadata store that was never used stayed empty: adopt it, unless its file
    # is gone (every start created all three files).
    legacy = app.has_record and app.installation_id is None
    lost = [f for f in facts if f.new and (f.absent or not legacy or f.role is Role.APP)]
    if lost:
        names = ", ".join(f"the {f.role} is {f.state()}" for f in lost)
        raise _refusal(f"{names} while other backing databases hold data", facts, "STORES_INCONSISTENT")
    installation_id = _common_id(facts, make_id)
    _check_blockstore(around)
    return Decision(installation_id, False, tuple(f.role for f in facts if f.installation_id is None))


def _common_id(facts: Sequence[StoreFacts], make_id: Callable[[], str]) -> str:
    app = next(f for f in facts if f.role is Role.APP)
    carried = [f for f in facts if f.installation_id is not None]
    chosen = app.installation_id or (carried[0].installation_id if carried else None) or make_id()
    foreign = [f for f in carried if f.installation_id != chosen]
    if foreign:
        owner = f"the {carried[0].role}" if app.installation_id is None else "the application database"
        names = "; ".join(
            f"the {f.role} belongs to installation {f.installation_id}, not to installation {chosen} "
            f"(recorded in {owner})"
            for f in foreign
        )
        raise _refusal(
            names,
            facts,
            "STORE_OF_ANOTHER_INSTALLATION",
            "Put back this installation's own store (or restore it from this installation's secondary).",
        )
    return chosen


def _check_blockstore(around: Surroundings) -> None:
    if around.snapshot_blocks and not around.blockstore_holds_blocks:
        raise PreflightFailure(
            "Refusing to start: the snapshot metadata store lists snapshots made of "
            f"{around.snapshot_blocks} blocks, but the blockstore at {around.blockstore} is missing or "
            "holds no block. Serving now would list snapshots that cannot be restored. Put the blockstore "
            "folder back from your file backups (the secondary backs up the three backing databases, not "
            "the blockstore), or point mms.blockstore.path at it.",
            error_code="BLOCKSTORE_MISSING",
            blockstore=str(around.blockstore),
        )


def _refusal(what: str, facts: Sequence[StoreFacts], code: str, extra: str = "") -> PreflightFailure:
    lines = "\n".join(f.line() for f in facts)
    return PreflightFailure(
        f"Refusing to start: {what}. Serving now would hide or lose the data of this installation.\n"
        f"{lines}\n{RECOVER}" + (f"\n{extra}" if extra else ""),
        error_code=code,
        stores={str(f.role): f.state() for f in facts},
    )


def damaged(role: Role | str, where: str, problems: Sequence[str]) -> PreflightFailure:
    shown = "\n".join(f"    {p}" for p in problems[:10])
    return PreflightFailure(
        f"Refusing to start: the {role} ({where}) is damaged; its integrity check found:\n{shown}\n{RECOVER}",
        error_code="STORE_DAMAGED",
        store=str(role),
    )


# Files on disk, looked at before anything is created.


def sqlite_absent(role: Role, path: Path) -> bool:
    """Whether the SQLite database at ``path`` holds nothing: no file (or an empty one) and no write-ahead log
    content. A database file lost while its ``-wal`` remains is damage, refused."""
    size = path.stat().st_size if path.exists() else 0
    wal = path.with_name(path.name + "-wal")
    wal_size = wal.stat().st_size if wal.exists() else 0
    if size == 0 and wal_size:
        state = "empty" if path.exists() else "missing"
        raise damaged(role, str(path), [f"the file is {state} but {wal} holds {wal_size} bytes of its log"])
    return size == 0


def binding_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + BINDING_SUFFIX)


def read_binding(key_path: Path) -> str | None:
    """The installation gen.key has served, or None (a new key, or one from before this file existed)."""
    try:
        text = binding_path(key_path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s: %s", binding_path(key_path), exc)
        return None
    return text or None


def bind_key(key_path: Path, installation_id: str) -> None:
    """Record beside gen.key that it serves ``installation_id`` (written whole or not at all)."""
    target = binding_path(key_path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(installation_id + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("cannot record beside gen.key which installation it serves (%s): %s", target, exc)

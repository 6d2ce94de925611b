"""The three backing databases of a server, named once: the application database, the snapshot metadata store
and the oplog metadata store.

Owns each store's short name (:class:`StoreName`, as the agent protocol and restore jobs spell it), its label
(:class:`Role`, as the operator reads it in messages), the ``conf-mms.properties`` key of its URI, the
``automation-agent.config`` key with which a backing agent overrides that URI, and the SQLite file of the
embedded setup; and :class:`BackingStores`, one value for each of the three (their URIs, their opened stores,
their restore points). Pure, and light enough for an agent to import: nothing here opens a database.
May import the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class StoreName(StrEnum):
    """A backing database's short name."""

    APP = "app"
    SNAPSHOT = "snapshot"
    OPLOG = "oplog"


class Role(StrEnum):
    """A backing database, named as the operator knows it."""

    APP = "application database"
    SNAPSHOT = "snapshot metadata store"
    OPLOG = "oplog metadata store"


@dataclass(frozen=True, slots=True)
class Backing:
    """One backing database: its names and the configuration keys and file that locate it."""

    name: StoreName
    role: Role
    conf_key: str  # conf-mms.properties: its URI
    agent_key: str  # automation-agent.config of a backing agent: its URI, overriding the primary's conf
    embedded_file: str  # the SQLite file of `opsmgr server --data-dir`

    @property
    def label(self) -> str:
        return self.role.value


APP = Backing(StoreName.APP, Role.APP, "mongo.mongoUri", "backing.appDbUri", "appdb.sqlite")
SNAPSHOT = Backing(
    StoreName.SNAPSHOT,
    Role.SNAPSHOT,
    "mms.snapshotMetadataStore.uri",
    "backing.snapshotStoreUri",
    "snapshotdb.sqlite",
)
OPLOG = Backing(
    StoreName.OPLOG, Role.OPLOG, "mms.oplogMetadataStore.uri", "backing.oplogStoreUri", "oplogdb.sqlite"
)
# In the order they are opened, checked and restored: the application database first.
BACKING: tuple[Backing, ...] = (APP, SNAPSHOT, OPLOG)
BY_NAME = {b.name: b for b in BACKING}
LABELS: dict[str, str] = {b.name.value: b.label for b in BACKING}  # by short name (a StoreName is one)
METADATA = (StoreName.SNAPSHOT, StoreName.OPLOG)


@dataclass(frozen=True, slots=True)
class BackingStores(Generic[T]):
    """Something for each of the three backing databases: their URIs, their opened stores, ..."""

    app: T
    snapshot: T
    oplog: T

    def of(self, name: StoreName | str) -> T:
        value: T = getattr(self, StoreName(name).value)
        return value

    def items(self) -> Iterator[tuple[Backing, T]]:
        for b in BACKING:
            yield b, self.of(b.name)

    def map(self, f: Callable[[Backing, T], U]) -> BackingStores[U]:
        return BackingStores(*(f(b, value) for b, value in self.items()))

    def by_name(self) -> dict[str, T]:
        return {b.name.value: value for b, value in self.items()}

    def by_role(self) -> dict[Role, T]:
        return {b.role: value for b, value in self.items()}

    def by_label(self) -> dict[str, T]:
        return {b.label: value for b, value in self.items()}

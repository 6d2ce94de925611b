"""The automation config's processes and replica sets as typed records, for the code that reads a config
rather than checks it.

Each record is frozen and reads its document with :meth:`from_doc` (a malformed document is an
:class:`InvalidInput` naming the field's JSON path and what it should be) and writes it back with
:meth:`to_doc` in the same shape: the fields it names are written only when the document had them, and every
other field is kept as it was, so a config read into records and written back loses nothing. A field the
document leaves out reads as Ops Manager's default and stays out unless it is changed. The rules a
config must satisfy stay in ``config.validate``; a record checks only the types of the fields it names.
May import ``opsmgr.errors`` and ``opsmgr.automation.rules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsmgr.automation.rules import ARTICLES, DEFAULT_PORT, KINDS, fail, get, is_electable, join, json_type

JsonDoc = Mapping[str, Any]


def _read(doc: JsonDoc, key: str, kind: str, path: str, *, required: bool = True) -> Any:
    """``doc[key]`` after checking that it is a JSON ``kind``; None when it is absent and not ``required``."""
    if key not in doc:
        if required:
            fail(join(path, key), "required", f"{join(path, key)} is required")
        return None
    value = doc[key]
    if not KINDS[kind](value):
        here = join(path, key)
        fail(here, "type", f"{here} must be {ARTICLES[kind]}, not {json_type(value)}")
    return value


def _object(doc: Any, path: str) -> JsonDoc:
    if not isinstance(doc, Mapping):
        fail(path, "type", f"{path} must be an object, not {json_type(doc)}")
    return doc


def _or(value: Any, default: Any) -> Any:
    # 0 and 0.0 are values, not absences.
    return default if value is None else value


def _rest(doc: JsonDoc, named: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in named}


def _given(doc: JsonDoc, named: tuple[str, ...]) -> frozenset[str]:
    return frozenset(k for k in named if k in doc)


def _written(given: frozenset[str], pairs: tuple[tuple[str, Any, Any], ...]) -> dict[str, Any]:
    """The named fields as (key, value, default): those the document had, and those changed from their
    default."""
    return {k: v for k, v, default in pairs if k in given or v != default}


_PROCESS_FIELDS = ("name", "processType", "hostname", "version", "args2_6", "disabled")


@dataclass(frozen=True)
class Process:
    """One ``processes[]`` element: a mongod or mongos the agent on ``hostname`` runs."""

    name: str
    process_type: str
    hostname: str
    version: str
    args2_6: JsonDoc  # the process's mongod/mongos options, as the config states them
    disabled: bool = False
    rest: JsonDoc = field(default_factory=dict)  # every other field, kept as it is
    given: frozenset[str] = frozenset(_PROCESS_FIELDS)  # the named fields the document had

    @classmethod
    def from_doc(cls, doc: Any, path: str = "process") -> Process:
        doc = _object(doc, path)
        return cls(
            name=_read(doc, "name", "string", path),
            process_type=_read(doc, "processType", "string", path),
            hostname=_read(doc, "hostname", "string", path),
            version=_read(doc, "version", "string", path),
            args2_6=_read(doc, "args2_6", "object", path),
            disabled=_read(doc, "disabled", "boolean", path, required=False) or False,
            rest=_rest(doc, _PROCESS_FIELDS),
            given=_given(doc, _PROCESS_FIELDS),
        )

    def to_doc(self) -> dict[str, Any]:
        named = (
            ("name", self.name, None),
            ("processType", self.process_type, None),
            ("hostname", self.hostname, None),
            ("version", self.version, None),
            ("args2_6", self.args2_6, None),
            ("disabled", self.disabled, False),
        )
        return {**self.rest, **_written(self.given, named)}

    @property
    def port(self) -> int:
        port = get(self.args2_6, "net.port")
        return int(port) if port is not None else DEFAULT_PORT

    @property
    def host(self) -> str:
        """The host name as hosts compare (case-insensitively)."""
        return self.hostname.lower()


_MEMBER_FIELDS = ("_id", "host", "votes", "priority", "arbiterOnly", "hidden")


@dataclass(frozen=True)
class Member:
    """One ``replicaSets[].members[]`` element; ``host`` is the member's process name."""

    id: int
    host: str
    votes: int = 1
    priority: float = 1
    arbiter_only: bool = False
    hidden: bool = False
    rest: JsonDoc = field(default_factory=dict)
    given: frozenset[str] = frozenset(_MEMBER_FIELDS)

    @classmethod
    def from_doc(cls, doc: Any, path: str = "member") -> Member:
        doc = _object(doc, path)
        return cls(
            id=_read(doc, "_id", "integer", path),
            host=_read(doc, "host", "string", path),
            votes=_or(_read(doc, "votes", "integer", path, required=False), 1),
            priority=_or(_read(doc, "priority", "number", path, required=False), 1),
            arbiter_only=_read(doc, "arbiterOnly", "boolean", path, required=False) or False,
            hidden=_read(doc, "hidden", "boolean", path, required=False) or False,
            rest=_rest(doc, _MEMBER_FIELDS),
            given=_given(doc, _MEMBER_FIELDS),
        )

    def to_doc(self) -> dict[str, Any]:
        named = (
            ("_id", self.id, None),
            ("host", self.host, None),
            ("votes", self.votes, 1),
            ("priority", self.priority, 1),
            ("arbiterOnly", self.arbiter_only, False),
            ("hidden", self.hidden, False),
        )
        return {**self.rest, **_written(self.given, named)}

    @property
    def electable(self) -> bool:
        return is_electable(self.to_doc())


@dataclass(frozen=True)
class ReplicaSet:
    """One ``replicaSets[]`` element."""

    id: str
    members: tuple[Member, ...]
    rest: JsonDoc = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: Any, path: str = "replicaSet") -> ReplicaSet:
        doc = _object(doc, path)
        members = _read(doc, "members", "array", path)
        return cls(
            id=_read(doc, "_id", "string", path),
            members=tuple(Member.from_doc(m, f"{path}.members[{i}]") for i, m in enumerate(members)),
            rest=_rest(doc, ("_id", "members")),
        )

    def to_doc(self) -> dict[str, Any]:
        return {**self.rest, "_id": self.id, "members": [m.to_doc() for m in self.members]}

    @property
    def hosts(self) -> tuple[str, ...]:
        """The members' process names, in the order of ``members``."""
        return tuple(m.host for m in self.members)


def processes(config: JsonDoc) -> tuple[Process, ...]:
    """The config's ``processes``, in order."""
    docs = _read(config, "processes", "array", "", required=False) or []
    return tuple(Process.from_doc(p, f"processes[{i}]") for i, p in enumerate(docs))


def replica_sets(config: JsonDoc) -> tuple[ReplicaSet, ...]:
    """The config's ``replicaSets``, in order."""
    docs = _read(config, "replicaSets", "array", "", required=False) or []
    return tuple(ReplicaSet.from_doc(rs, f"replicaSets[{i}]") for i, rs in enumerate(docs))


def replica_set(config: JsonDoc, rs_id: str | None) -> ReplicaSet | None:
    """The config's replica set ``rs_id``, if it has one."""
    return next((rs for rs in replica_sets(config) if rs.id == rs_id), None)

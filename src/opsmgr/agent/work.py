"""The agent's work list: what the server says this host has to do besides automation, delivered with the
answer to its status report (``server.work``) and kept until a new version arrives.

- ``sources``: the backed-up replica sets with a process here (the agent whose process is PRIMARY ships each);
- ``restores``: automated restores still loading into processes here;
- ``maintenance``: replica sets with a process (or the temporary arbiter) here under a rolling change;
- ``index_builds``: unique index builds under way on a replica set with a member here;
- ``backing``: on a secondary, the backing-database sources this host ships;
- ``backing_restores``: on a secondary, the restores of those databases this host's agent carries out.

An agent with an empty list asks the server nothing but its poll and its report. May import
``opsmgr.errors`` only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkList:
    version: str | None = None
    sources: tuple[dict[str, Any], ...] = ()
    restores: tuple[dict[str, Any], ...] = ()
    maintenance: frozenset[str] = frozenset()
    index_builds: frozenset[str] = frozenset()
    backing: tuple[dict[str, Any], ...] = ()
    backing_restores: tuple[dict[str, Any], ...] = ()

    @property
    def idle(self) -> bool:
        return not (
            self.sources
            or self.restores
            or self.maintenance
            or self.index_builds
            or self.backing
            or self.backing_restores
        )

    @classmethod
    def from_json(cls, raw: Any) -> WorkList:
        """The work an answer carries; ValueError when it is not in the protocol's shape."""
        if not isinstance(raw, dict) or not isinstance(raw.get("version"), str):
            raise ValueError("work must be an object with a version")
        backup = raw.get("backup") or {}
        return cls(
            version=raw["version"],
            sources=_objects(backup.get("sources", []), "backup.sources", "sourceId"),
            restores=_objects(backup.get("restores", []), "backup.restores", "jobId"),
            maintenance=frozenset(_strings(raw.get("maintenance", []), "maintenance")),
            index_builds=frozenset(_strings(raw.get("indexBuilds", []), "indexBuilds")),
            backing=_objects(raw.get("backing", []), "backing", "sourceId"),
            backing_restores=_objects(raw.get("backingRestores", []), "backingRestores", "jobId"),
        )


def _objects(raw: Any, what: str, key: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list) or not all(isinstance(x, dict) and isinstance(x.get(key), str) for x in raw):
        raise ValueError(f"{what} must be a list of objects with {key}")
    return tuple(raw)


def _strings(raw: Any, what: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValueError(f"{what} must be a list of strings")
    return list(raw)


def received(current: WorkList, answer: dict[str, Any], hostname: str) -> WorkList:
    """The work list after a status answer: the new one it carries, else the one held."""
    if "work" not in answer:
        return current
    try:
        return WorkList.from_json(answer["work"])
    except ValueError as exc:
        log.warning(
            "%s: unusable work list from the server, keeping version %s: %s", hostname, current.version, exc
        )
        return current

"""What an agent keeps on its own disk across restarts (its own and the server's).

Owns ``{stateDir}/agent-state.json``: the last automation config with which the agent reached goal state and
its version, the names of the processes on this host the agent has managed (so it can stop the ones a later
config no longer references), and the replica sets it has seen initiated (so it never initiates one twice).
Writes are atomic (temporary file, fsync, rename, fsync of the directory): a crash leaves the old state or the
new one, never a torn file; and private (0600). May import ``opsmgr.errors``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "agent-state.json"
NO_VERSION = -1  # what an agent that never reached goal holds and reports


@dataclass(frozen=True)
class AgentState:
    goal_version: int = NO_VERSION
    goal_config: dict[str, Any] | None = None
    managed: frozenset[str] = field(default_factory=frozenset)
    initiated_sets: frozenset[str] = field(default_factory=frozenset)
    adopted_at_ms: int = 0  # when the goal config was first served to this agent

    def to_json(self) -> dict[str, Any]:
        return {
            "adoptedAtMillis": self.adopted_at_ms,
            "lastGoalVersionAchieved": self.goal_version,
            "goalConfig": self.goal_config,
            "managedProcesses": sorted(self.managed),
            "initiatedReplicaSets": sorted(self.initiated_sets),
        }

    @classmethod
    def from_json(cls, doc: Any) -> AgentState:
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        version = doc.get("lastGoalVersionAchieved", NO_VERSION)
        config = doc.get("goalConfig")
        managed = doc.get("managedProcesses", [])
        initiated = doc.get("initiatedReplicaSets", [])
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("lastGoalVersionAchieved is not an integer")
        if config is not None and not isinstance(config, dict):
            raise ValueError("goalConfig is not an object")
        if not all(isinstance(x, str) for x in [*managed, *initiated]):
            raise ValueError("managedProcesses/initiatedReplicaSets must be lists of strings")
        adopted = doc.get("adoptedAtMillis", 0)
        if not isinstance(adopted, int) or isinstance(adopted, bool):
            raise ValueError("adoptedAtMillis is not an integer")
        return cls(version, config, frozenset(managed), frozenset(initiated), adopted)


def atomic_write(path: Path, data: bytes) -> None:
    """Readable by the owner only from the first byte (0600, a new folder 0700): what is written this way
    holds agent API keys and the credentials in automation configs."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a stale one (of a killed writer) may have another mode: never reuse it
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE

    def load(self) -> AgentState:
        """The saved state; a fresh one when there is none. A damaged file is set aside, not fatal: the
        server's config is authoritative, so starting without a local copy is safe, merely less informed."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AgentState()
        try:
            return AgentState.from_json(json.loads(raw))
        except ValueError as exc:
            aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            os.replace(self.path, aside)
            log.error(
                "agent state %s is unreadable (%s); moved it to %s and starting without it",
                self.path,
                exc,
                aside,
            )
            return AgentState()

    def save(self, state: AgentState) -> None:
        atomic_write(self.path, json.dumps(state.to_json(), indent=1, sort_keys=True).encode())

"""The JSON forms of rolling maintenance that cross the wire between the server and its agents: the policy
the server hands out, the change's options, the moves agents report and the decisions they relay. The one
module both sides import for them, so the agent needs nothing of the server's service (nor its store).

Pure. May import ``opsmgr.errors`` and ``opsmgr.maintenance`` modules that are pure (``procedure``,
``rolling``, ``snapshot``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from opsmgr.errors import InvalidInput
from opsmgr.maintenance.moves import BlockCause, Blocked, Decision, Done, Move, MoveName, PlannedStep, Unit
from opsmgr.maintenance.rolling import ArbiterSpec, MaintenanceOptions
from opsmgr.maintenance.snapshot import Policy

CLUSTER_PREFIX = "cluster:"  # the agents' routes name a sharded cluster's change by this and its name


def _arbiter_spec(raw: Mapping[str, Any] | None) -> ArbiterSpec | None:
    return ArbiterSpec(str(raw["hostname"]), int(raw["port"])) if raw else None


def options_from_json(raw: Mapping[str, Any]) -> MaintenanceOptions:
    return MaintenanceOptions(bool(raw.get("acceptDowntime")), _arbiter_spec(raw.get("temporaryArbiter")))


def policy_from_json(raw: Mapping[str, Any] | None) -> Policy:
    """A :class:`Policy` from ``{field: value}`` (unknown fields refused: a typo must not pass silently)."""
    names = {f.name for f in dataclasses.fields(Policy)}
    unknown = sorted(set(raw or {}) - names)
    if unknown:
        raise InvalidInput(f"unknown maintenance policy field {unknown[0]!r}; known: {sorted(names)}")
    return Policy(**dict(raw or {}))


def policy_to_json(policy: Policy) -> dict[str, Any]:
    return dataclasses.asdict(policy)


def options_to_json(options: MaintenanceOptions) -> dict[str, Any]:
    arbiter = options.temporary_arbiter
    return {
        "acceptDowntime": options.accept_downtime,
        "temporaryArbiter": {"hostname": arbiter.hostname, "port": arbiter.port} if arbiter else None,
    }


def move_to_json(move: Move) -> dict[str, Any]:
    """The parts of a move :func:`~opsmgr.maintenance.procedure.record` needs, as agents send them."""
    return {
        "name": move.name.value,
        "member": move.member,
        "actor": move.actor,
        "waiting": move.waiting,
        "unit": move.unit.value if move.unit is not None else None,
        "plan": [[s.move.value, s.member, s.by_primary] for s in move.plan],
    }


def move_from_json(raw: Mapping[str, Any]) -> Move:
    try:
        return Move(
            name=MoveName(raw["name"]),
            member=str(raw["member"]),
            actor=raw.get("actor"),
            note="",
            waiting=bool(raw.get("waiting", False)),
            unit=Unit(raw["unit"]) if raw.get("unit") else None,
            plan=tuple(PlannedStep(MoveName(m), str(n), bool(b)) for m, n, b in raw.get("plan", [])),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"move is malformed: {exc}", field="move") from None


def decision_to_json(decision: Decision) -> dict[str, Any]:
    if isinstance(decision, Done):
        return {"kind": "done", "note": decision.note}
    if isinstance(decision, Blocked):
        return {
            "kind": "blocked",
            "reason": decision.reason,
            "cause": decision.cause.value,
            "member": decision.member,
            "warnings": list(decision.warnings),
        }
    return {
        "kind": "move",
        "name": decision.name.value,
        "note": decision.note,
        "member": decision.member,
        "warnings": list(decision.warnings),
    }


def decision_from_json(raw: Mapping[str, Any]) -> Decision:
    try:
        kind = raw["kind"]
        warnings = tuple(str(w) for w in raw.get("warnings", ()))
        if kind == "done":
            return Done(str(raw.get("note", "")))
        if kind == "blocked":
            return Blocked(str(raw["reason"]), BlockCause(raw["cause"]), raw.get("member"), warnings=warnings)
        if kind == "move":
            return Move(
                MoveName(raw["name"]), str(raw["member"]), None, str(raw.get("note", "")), warnings=warnings
            )
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"decision is malformed: {exc}", field="decision") from None
    raise InvalidInput(f"decision kind must be move, blocked or done, not {kind!r}", field="decision.kind")


def cluster_key(name: str) -> str:
    """How the agents' routes and work list name the change of cluster ``name``."""
    return f"{CLUSTER_PREFIX}{name}"


def cluster_name(key: str) -> str | None:
    """The cluster a route's set id names (None: a replica set's)."""
    return key[len(CLUSTER_PREFIX) :] if key.startswith(CLUSTER_PREFIX) else None

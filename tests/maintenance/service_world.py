"""The server's maintenance service over a real application database (SQLite), without any process: a
project ``G`` whose config PUTs register rolling changes, whose agents report their members' states, and the
moves of one member's whole cycle as its agent carries them out. The ``w`` fixture (``conftest.py``) builds
one per test."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmgr.alerts import AlertService
from opsmgr.automation.service import AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.maintenance.leases import Grant
from opsmgr.maintenance.moves import Move, MoveName, PlannedStep, Progress, Unit
from opsmgr.maintenance.rolling import validate_transition
from opsmgr.maintenance.service import MaintenanceService
from opsmgr.maintenance.snapshot import Policy
from opsmgr.maintenance.wire import move_to_json
from opsmgr.store.engine import Store

G = "g1"


class Clock:
    def __init__(self) -> None:
        self.t = time.time() - 1000  # behind the wall clock the status reports are stamped with

    def __call__(self) -> float:
        return self.t


@dataclass
class World:
    store: Store
    automation: AutomationService
    alerts: AlertService
    service: MaintenanceService
    clock: Clock

    def put(self, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self.automation.put_config(G, copy.deepcopy(body), **kw)

    def report_states(self, states: dict[str, str]) -> None:
        """Each member's agent reports its state (host h{i}.example.net runs rs0_{i})."""
        for name, state in states.items():
            i = int(name.rsplit("_", 1)[1])
            observed = {"running": state != "DOWN", "replicaStateName": None if state == "DOWN" else state}
            report = StatusReport.model_validate({"processes": [{"name": name, "observed": observed}]})
            self.automation.record_status(G, f"h{i}.example.net", report)

    def doc(self) -> dict[str, Any]:
        doc = self.service.active_doc(G, "rs0")
        assert doc is not None
        return doc


@contextmanager
def service_world(tmp_path: Path) -> Iterator[World]:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}", name="application database")
    clock = Clock()
    automation = AutomationService(store, lambda s: s, lambda s: s, validate_transition=validate_transition)
    alerts = AlertService(store, clock=clock)
    service = MaintenanceService(
        store,
        alerts,
        goal=automation.config,
        statuses=automation.agent_statuses,
        encrypt=lambda s: s,
        decrypt=lambda s: s,
        policy=Policy(lease_ttl_s=30),
        clock=clock,
    )
    automation.on_config_change.append(service.register)
    try:
        yield World(store, automation, alerts, service, clock)
    finally:
        store.close()


def upgraded(
    base: dict[str, Any], version: str = "7.0.6", only: tuple[int, ...] = (0, 1, 2)
) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for i in only:
        out["processes"][i]["version"] = version
    return out


def _cycle(member: str) -> tuple[PlannedStep, ...]:
    moves = (
        MoveName.ACQUIRE_LEASE,
        MoveName.RESTART_STANDALONE,
        MoveName.PERFORM_TASK,
        MoveName.RESTART_REPLSET,
        MoveName.WAIT_SECONDARY_CAUGHT_UP,
        MoveName.RELEASE_LEASE,
    )
    return tuple(PlannedStep(m, member) for m in moves)


def move(name: MoveName, member: str, *, first: bool = False) -> dict[str, Any]:
    plan = _cycle(member) if first else ()
    return move_to_json(Move(name, member, member, "", unit=Unit.MEMBER if first else None, plan=plan))


def maintain(w: World, member: str) -> None:
    """Carry one secondary's whole cycle through the service, as its agent would."""
    change_id = w.doc()["changeId"]
    seq = Progress.from_json(w.doc()["progress"]).seq
    granted = w.service.acquire(
        G, "rs0", member, change_id=change_id, move=move(MoveName.ACQUIRE_LEASE, member, first=True), seq=seq
    )
    assert isinstance(granted, Grant), granted
    for name in (MoveName.RESTART_STANDALONE, MoveName.PERFORM_TASK, MoveName.RESTART_REPLSET):
        w.clock.t += 1
        w.service.record(G, "rs0", change_id, move(name, member))
    w.clock.t += 1
    w.service.record(G, "rs0", change_id, move(MoveName.RELEASE_LEASE, member))

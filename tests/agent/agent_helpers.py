"""Builders of goal configs and driver observations for the agent tests (no processes, no I/O)."""

from __future__ import annotations

from typing import Any

from opsmgr.agent.plan import LocalProcess, Snapshot
from opsmgr.automation.config import validate
from opsmgr.drivers.base import MemberState, MemberStatus, ProcessObservation, RsStatus, RunMode

PORT = 27017


def host_of(i: int) -> str:
    return f"h{i}.example.net"


def addr(i: int) -> str:
    return f"{host_of(i)}:{PORT}"


def name_of(i: int) -> str:
    return f"rs0_{i}"


def process(
    i: int, *, version: str = "7.0.5", disabled: bool = False, rs: str | None = "rs0"
) -> dict[str, Any]:
    args: dict[str, Any] = {"net": {"port": PORT}, "storage": {"dbPath": f"/data/{name_of(i)}"}}
    if rs is not None:
        args["replication"] = {"replSetName": rs}
    return {
        "name": name_of(i),
        "processType": "mongod",
        "hostname": host_of(i),
        "version": version,
        "disabled": disabled,
        "args2_6": args,
    }


def goal_config(
    members: list[int] | None = None,
    *,
    version: int = 1,
    priorities: dict[int, float] | None = None,
    votes: dict[int, int] | None = None,
    hidden: tuple[int, ...] = (),
    disabled: tuple[int, ...] = (),
    extra_processes: tuple[int, ...] = (),
    proc_version: str = "7.0.5",
) -> dict[str, Any]:
    """A validated config with one replica set ``rs0`` whose members are processes ``rs0_{i}`` on ``h{i}``."""
    members = [0, 1, 2] if members is None else members
    priorities, votes = priorities or {}, votes or {}
    rs_members = []
    for i in members:
        m: dict[str, Any] = {"_id": i, "host": name_of(i)}
        if i in priorities:
            m["priority"] = priorities[i]
        if i in votes:
            m["votes"] = votes[i]
        if i in hidden:
            m["hidden"] = True
            m["priority"] = 0
        rs_members.append(m)
    procs = [process(i, version=proc_version, disabled=i in disabled) for i in members]
    procs += [process(i, rs=None) for i in extra_processes]
    config = validate(
        {"processes": procs, "replicaSets": [{"_id": "rs0", "members": rs_members}] if members else []}
    )
    config["version"] = version
    return config


def rs_config(
    members: list[int],
    *,
    version: int = 1,
    priorities: dict[int, float] | None = None,
    votes: dict[int, int] | None = None,
) -> dict[str, Any]:
    """A replica set config as ``replSetGetConfig`` returns it (all fields filled)."""
    priorities, votes = priorities or {}, votes or {}
    return {
        "_id": "rs0",
        "version": version,
        "protocolVersion": 1,
        "members": [
            {
                "_id": i,
                "host": addr(i),
                "arbiterOnly": False,
                "buildIndexes": True,
                "hidden": False,
                "priority": float(priorities.get(i, 1 if votes.get(i, 1) else 0)),
                "tags": {},
                "secondaryDelaySecs": 0,
                "votes": votes.get(i, 1),
            }
            for i in members
        ],
        "settings": {"electionTimeoutMillis": 10000},
    }


def rs_status(me: int, states: dict[int, MemberState], *, set_name: str = "rs0") -> RsStatus:
    return RsStatus(
        set_name=set_name,
        my_state=states[me],
        term=1,
        members=tuple(
            MemberStatus(
                host=addr(i),
                state=state,
                health=state is not MemberState.DOWN,
                optime_ts=(100 << 32) if state is not MemberState.DOWN else 0,
                self=i == me,
            )
            for i, state in sorted(states.items())
        ),
        config_version=1,
    )


def running(i: int, *, version: str = "7.0.5", mode: RunMode = RunMode.REPLSET) -> ProcessObservation:
    return ProcessObservation(name=name_of(i), running=True, mode=mode, port=PORT, version=version)


def stopped(i: int) -> ProcessObservation:
    return ProcessObservation(name=name_of(i), running=False)


def member(
    i: int, states: dict[int, MemberState] | None, config: dict[str, Any] | None = None, **kw: Any
) -> LocalProcess:
    """Process ``i`` running in replSet mode; ``states`` None means no replica set config yet."""
    status = rs_status(i, states) if states is not None else None
    return LocalProcess(running(i, **kw), status, config if status is not None else None, connections=3)


def snapshot(*locals_: tuple[int, LocalProcess], initiated: bool = False) -> Snapshot:
    return Snapshot({name_of(i): lp for i, lp in locals_}, frozenset({"rs0"}) if initiated else frozenset())


P, S, D, S2 = MemberState.PRIMARY, MemberState.SECONDARY, MemberState.DOWN, MemberState.STARTUP2

"""Builders of automation configs and replica set snapshots for the maintenance tests (no I/O)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from opsmgr.automation.config import validate
from opsmgr.drivers.base import MemberState
from opsmgr.maintenance.snapshot import MemberView, RsSnapshot

P, S, A, D = MemberState.PRIMARY, MemberState.SECONDARY, MemberState.ARBITER, MemberState.DOWN
KEY = "c2VjcmV0a2V5ZmlsZWNvbnRlbnQ="
AUTH_ON = {
    "disabled": False,
    "autoUser": "mms-automation",
    "autoPwd": "automation-password",
    "autoAuthMechanisms": ["SCRAM-SHA-256"],
    "deploymentAuthMechanisms": ["SCRAM-SHA-256"],
    "key": KEY,
    "keyfile": "/var/lib/mongodb-mms-automation/keyfile",
    "usersWanted": [],
    "usersDeleted": [],
}


def name_of(i: int, rs: str = "rs0") -> str:
    return f"{rs}_{i}"


def config(
    n: int = 3,
    *,
    rs: str = "rs0",
    version: str = "7.0.5",
    arbiters: tuple[int, ...] = (),
    auth: bool = False,
    args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A validated config: replica set ``rs`` of ``n`` members ``{rs}_{i}`` on hosts ``h{i}.example.net``."""
    processes = [
        {
            "name": name_of(i, rs),
            "hostname": f"h{i}.example.net",
            "processType": "mongod",
            "version": version,
            "args2_6": {
                "net": {"port": 27017},
                "storage": {"dbPath": f"/data/{name_of(i, rs)}"},
                "replication": {"replSetName": rs},
                **copy.deepcopy(args or {}),
            },
        }
        for i in range(n)
    ]
    members = [
        {"_id": i, "host": name_of(i, rs), **({"arbiterOnly": True} if i in arbiters else {})}
        for i in range(n)
    ]
    body: dict[str, Any] = {"processes": processes, "replicaSets": [{"_id": rs, "members": members}]}
    if auth:
        body["auth"] = copy.deepcopy(AUTH_ON)
    return validate(body)


def changed(base: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A validated copy of ``base`` after ``edit`` (which mutates its argument)."""
    out = copy.deepcopy(base)
    edit(out)
    return validate(out, current=base, allow_unique_indexes=True)


def each_process(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        for p in c["processes"]:
            fn(p)

    return edit


def view(
    name: str,
    state: MemberState = S,
    *,
    votes: int = 1,
    priority: float = 1.0,
    arbiter: bool = False,
    hidden: bool = False,
    behind_s: int = 0,
    window_s: float | None = None,
    health: bool | None = None,
) -> MemberView:
    return MemberView(
        name=name,
        state=state,
        health=state is not D if health is None else health,
        votes=votes,
        priority=priority,
        arbiter=arbiter,
        hidden=hidden,
        optime=(1_000 - behind_s) << 32,
        oplog_window_s=window_s,
    )


def snap(*members: MemberView, now: float = 0.0, rs: str = "rs0") -> RsSnapshot:
    return RsSnapshot(rs, now, tuple(members))


def psa(*states: MemberState, **kw: Any) -> RsSnapshot:
    """A snapshot of ``rs0_0..`` with the given states (default three healthy members, rs0_2 primary)."""
    states = states or (S, S, P)
    return snap(*(view(name_of(i), st) for i, st in enumerate(states)), **kw)

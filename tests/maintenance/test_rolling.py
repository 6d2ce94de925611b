"""Table tests of which config changes roll (one case per task of the seed, and changes that do not roll) and
of the PUT-time transition check."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from opsmgr.automation.config import validate
from opsmgr.errors import InvalidInput
from opsmgr.maintenance.rolling import (
    MaintenanceOptions,
    RollingChange,
    Task,
    maintenance_options,
    rolling_changes,
    validate_transition,
)
from tests.maintenance.helpers import config, each_process

ALL = ("rs0_0", "rs0_1", "rs0_2")
TLS_ARGS = {"net": {"tls": {"mode": "disabled", "certificateKeyFile": "/etc/ssl/server.pem"}}}


def proc(i: int, fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        fn(c["processes"][i])

    return edit


def args(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``args2_6.<path>`` of a process (``None`` removes it)."""

    def fn(p: dict[str, Any]) -> None:
        node = p["args2_6"]
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return fn


def remove_member(i: int, *, drop_process: bool = False) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        name = f"rs0_{i}"
        c["replicaSets"][0]["members"] = [m for m in c["replicaSets"][0]["members"] if m["host"] != name]
        if drop_process:
            c["processes"] = [p for p in c["processes"] if p["name"] != name]
        else:
            c["processes"][i]["args2_6"].pop("replication")

    return edit


def rename(c: dict[str, Any]) -> None:
    c["replicaSets"][0]["_id"] = "orders"
    c["replicaSets"][0]["maintenance"] = {"acceptDowntime": True}
    for p in c["processes"]:
        p["args2_6"]["replication"]["replSetName"] = "orders"


def index(unique: bool = False) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        c["indexConfigs"].append(
            {
                "dbName": "shop",
                "collectionName": "orders",
                "rsName": "rs0",
                "key": [["customer", 1]],
                "options": {"name": "customer_1", "unique": unique},
            }
        )

    return edit


def both(*edits: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        for e in edits:
            e(c)

    return edit


@dataclass
class Case:
    id: str
    edit: Callable[[dict[str, Any]], None]
    tasks: dict[str, set[Task]]
    base: Callable[[], dict[str, Any]] = config
    before: Callable[[dict[str, Any]], None] | None = None  # applied to the base to make the old config


def _old_and_new(case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
    old = case.base()
    if case.before is not None:
        case.before(old)
        old = validate(old, allow_unique_indexes=True)
    new = copy.deepcopy(old)
    case.edit(new)
    return old, validate(new, current=old, allow_unique_indexes=True)


def every(task: Task, members: tuple[str, ...] = ALL) -> dict[str, set[Task]]:
    return {m: {task} for m in members}


TASK_CASES = [
    Case(
        "kmip key rotation",
        proc(1, lambda p: p.update(lastKmipMasterKeyRotation="2024-05-01T10:00:00Z")),
        {"rs0_1": {Task.ROTATE_KMIP_KEY}},
    ),
    Case(
        "keyfile rotation",
        lambda c: c["auth"].update(key="bmV3a2V5ZmlsZWNvbnRlbnQ="),
        every(Task.ROTATE_KEYFILE),
        base=lambda: config(auth=True),
    ),
    Case(
        "mongod configuration arguments",
        each_process(args("net.maxIncomingConnections", 2000)),
        every(Task.CHANGE_ARGS),
    ),
    Case(
        "TLS mode one step up",
        each_process(args("net.tls.mode", "allowTLS")),
        every(Task.CHANGE_TLS_MODE),
        base=lambda: config(args=TLS_ARGS),
    ),
    Case(
        "authentication mode: leaving transitionToAuth",
        each_process(args("security.transitionToAuth", None)),
        every(Task.CHANGE_AUTH_MODE),
        base=lambda: config(auth=True, args={"security": {"transitionToAuth": True}}),
    ),
    Case(
        "cluster authentication mode one step",
        each_process(args("security.clusterAuthMode", "sendKeyFile")),
        every(Task.CHANGE_CLUSTER_AUTH_MODE),
        base=lambda: config(auth=True, args={"security": {"clusterAuthMode": "keyFile"}}),
    ),
    Case("MongoDB version", each_process(lambda p: p.update(version="7.0.12")), every(Task.CHANGE_VERSION)),
    Case(
        "oplog size",
        each_process(args("replication.oplogSizeMB", 4096)),
        every(Task.CHANGE_OPLOG_SIZE),
        before=each_process(args("replication.oplogSizeMB", 1024)),
    ),
    Case("replica set renamed", rename, every(Task.RENAME_REPLICA_SET)),
    Case("process removed from the set", remove_member(2), {"rs0_2": {Task.REMOVE_PROCESS}}),
    Case(
        "restore from backup cancelled",
        proc(1, lambda p: p.pop("backupRestoreUrl")),
        {"rs0_1": {Task.CANCEL_RESTORE}},
        before=proc(1, lambda p: p.update(backupRestoreUrl="https://om.example.net/restore/abc?token=t")),
    ),
    Case(
        "profiler enabled",
        each_process(args("operationProfiling.mode", "slowOp")),
        every(Task.CHANGE_PROFILER),
    ),
    Case(
        "agent host decommissioned",
        remove_member(2, drop_process=True),
        {"rs0_2": {Task.REMOVE_PROCESS, Task.DECOMMISSION_HOST}},
    ),
    Case(
        "explicit restart",
        proc(0, lambda p: p.update(lastRestart="2024-05-01T10:00:00Z")),
        {"rs0_0": {Task.RESTART}},
    ),
    Case(
        "non-unique index, arbiter excluded",
        index(),
        every(Task.BUILD_INDEX, ("rs0_0", "rs0_1")),
        base=lambda: config(arbiters=(2,)),
    ),
]

NO_ROLL_CASES = [
    Case(
        "priority change: reconfig only",
        lambda c: c["replicaSets"][0]["members"][1].update(priority=5),
        {},
    ),
    Case("runtime setParameter", each_process(args("setParameter", {"logLevel": 1})), {}),
    Case("member added", lambda c: _add_member(c, 3), {}),
    Case("unique index (built by the supervised procedure)", index(unique=True), {}),
    Case("process disabled", proc(2, lambda p: p.update(disabled=True)), {}),
    Case(
        "kmip stamp kept as it was",
        proc(1, lambda p: p.update(alias="analytics")),
        {},
        before=proc(1, lambda p: p.update(lastKmipMasterKeyRotation="2024-05-01T10:00:00Z")),
    ),
]

MORE_ROLL_CASES = [
    Case(
        "removing a runtime parameter needs a restart to get the default back",
        each_process(args("setParameter", None)),
        every(Task.CHANGE_ARGS),
        before=each_process(args("setParameter", {"logLevel": 1})),
    ),
    Case(
        "a start-up-only setParameter rolls",
        each_process(args("setParameter", {"enableLocalhostAuthBypass": False})),
        every(Task.CHANGE_ARGS),
    ),
    Case(
        "several tasks on one member",
        proc(0, both(lambda p: p.update(version="7.0.12"), args("replication.oplogSizeMB", 2048))),
        {"rs0_0": {Task.CHANGE_VERSION, Task.CHANGE_OPLOG_SIZE}},
    ),
    Case(
        "a process moved to another host",
        proc(2, lambda p: p.update(hostname="h9.example.net")),
        {"rs0_2": {Task.REMOVE_PROCESS, Task.DECOMMISSION_HOST}},
    ),
]


def _add_member(c: dict[str, Any], i: int) -> None:
    c["processes"].append(
        {
            "name": f"rs0_{i}",
            "hostname": f"h{i}.example.net",
            "processType": "mongod",
            "version": "7.0.5",
            "args2_6": {"net": {"port": 27017}, "replication": {"replSetName": "rs0"}},
        }
    )
    c["replicaSets"][0]["members"].append({"_id": i, "host": f"rs0_{i}"})


@pytest.mark.parametrize("case", TASK_CASES + NO_ROLL_CASES + MORE_ROLL_CASES, ids=lambda c: c.id)
def test_which_members_roll_for_which_tasks(case: Case) -> None:
    old, new = _old_and_new(case)
    changes = rolling_changes(old, new)
    rs_id = new["replicaSets"][0]["_id"]
    change = changes[rs_id]
    assert {m: set(t) for m, t in change.tasks.items()} == case.tasks
    assert change.needs_roll == bool(case.tasks)
    assert len(change.reasons) >= (1 if case.tasks else 0)
    assert RollingChange.from_json(change.to_json()) == change


def test_every_task_of_the_seed_has_a_case() -> None:
    covered = {t for case in TASK_CASES for tasks in case.tasks.values() for t in tasks}
    assert covered == set(Task)


def test_no_roll_cases_say_what_they_do_instead() -> None:
    old = config()
    new = _old_and_new(NO_ROLL_CASES[0])[1]
    change = rolling_changes(old, new)["rs0"]
    assert change.reconfig == ("priority of rs0_1: 1 -> 5",)
    runtime = rolling_changes(*_old_and_new(NO_ROLL_CASES[1]))["rs0"]
    assert runtime.runtime_parameters == {name: {"logLevel": 1} for name in ALL}
    added = rolling_changes(*_old_and_new(NO_ROLL_CASES[2]))["rs0"]
    assert added.reconfig == ("add rs0_3",)


def test_rename_is_offline_and_names_the_old_set() -> None:
    change = rolling_changes(*_old_and_new(TASK_CASES[8]))["orders"]
    assert change.offline and change.old_rs_id == "rs0"


def test_index_builds_carry_the_entry_and_new_sets_do_not_roll() -> None:
    old, new = _old_and_new(TASK_CASES[-1])
    change = rolling_changes(old, new)["rs0"]
    assert [e["key"] for e in change.index_builds] == [[["customer", 1]]]
    fresh = rolling_changes({"processes": [], "replicaSets": []}, new)["rs0"]
    assert not fresh.needs_roll and fresh.reconfig == ("initiate rs0",)


# --- validate_transition ------------------------------------------------------------------------------------


@dataclass
class Transition:
    id: str
    base: Callable[[], dict[str, Any]]
    edit: Callable[[dict[str, Any]], None]
    field: str | None = None  # None: accepted
    rule: str | None = None
    allowed: list[str] | None = None
    before: Callable[[dict[str, Any]], None] | None = None


def tls(mode: str, *which: int) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        for i in which or range(len(c["processes"])):
            c["processes"][i]["args2_6"]["net"]["tls"]["mode"] = mode

    return edit


def tls_base() -> dict[str, Any]:
    return config(args=TLS_ARGS)


TRANSITIONS = [
    Transition("TLS one step up", tls_base, tls("allowTLS")),
    Transition(
        "TLS two steps up",
        tls_base,
        tls("preferTLS"),
        "processes[0].args2_6.net.tls.mode",
        "tls-mode-step",
        ["allowTLS"],
    ),
    Transition(
        "TLS three steps down",
        tls_base,
        tls("disabled"),
        "processes[0].args2_6.net.tls.mode",
        "tls-mode-step",
        ["preferTLS"],
        before=tls("requireTLS"),
    ),
    Transition("TLS one step down", tls_base, tls("preferTLS"), before=tls("requireTLS")),
    Transition(
        "legacy SSL mode maps onto the ladder",
        lambda: config(args={"net": {"ssl": {"mode": "disabled", "PEMKeyFile": "/etc/ssl/server.pem"}}}),
        each_process(args("net.ssl.mode", "requireSSL")),
        "processes[0].args2_6.net.ssl.mode",
        "tls-mode-step",
    ),
    Transition(
        "members would be two steps apart",
        tls_base,
        tls("preferTLS", 0),
        "replicaSets[0].members",
        "tls-mode-spread",
        before=tls("allowTLS", 0),
    ),
    Transition(
        "cluster auth keyFile -> sendX509",
        lambda: config(auth=True),
        each_process(args("security.clusterAuthMode", "sendX509")),
        "processes[0].args2_6.security.clusterAuthMode",
        "cluster-auth-mode-step",
        ["sendKeyFile"],
    ),
    Transition(
        "cluster auth x509 -> sendX509",
        lambda: config(auth=True, args={"security": {"clusterAuthMode": "x509"}}),
        each_process(args("security.clusterAuthMode", "sendX509")),
    ),
    Transition(
        "auth enabled at once",
        config,
        lambda c: c.update(auth=config(auth=True)["auth"]),
        "auth.disabled",
        "auth-mode-step",
        ["transitionToAuth"],
    ),
    Transition(
        "auth enabled through transitionToAuth",
        config,
        both(
            lambda c: c.update(auth=config(auth=True)["auth"]),
            each_process(args("security.transitionToAuth", True)),
        ),
    ),
    Transition(
        "rename without accepting downtime",
        config,
        both(rename, lambda c: c["replicaSets"][0].pop("maintenance")),
        "replicaSets[0]._id",
        "rename-needs-downtime",
    ),
    Transition("rename with accepted downtime", config, rename),
    Transition(
        "temporary arbiter option",
        config,
        lambda c: c["replicaSets"][0].update(
            maintenance={"temporaryArbiter": {"hostname": "h9.example.net", "port": 27099}}
        ),
    ),
    Transition(
        "temporary arbiter without a port",
        config,
        lambda c: c["replicaSets"][0].update(
            maintenance={"temporaryArbiter": {"hostname": "h9.example.net"}}
        ),
        "replicaSets[0].maintenance.temporaryArbiter.port",
        "temporary-arbiter",
    ),
    Transition(
        "unknown maintenance option",
        config,
        lambda c: c["replicaSets"][0].update(maintenance={"fast": True}),
        "replicaSets[0].maintenance.fast",
        "maintenance-options",
    ),
    Transition(
        "a new process may start at any mode",
        tls_base,
        lambda c: (_add_member(c, 3), c["processes"][3]["args2_6"].update(TLS_ARGS)),
    ),
]


@pytest.mark.parametrize("case", TRANSITIONS, ids=lambda c: c.id)
def test_validate_transition(case: Transition) -> None:
    old = case.base()
    if case.before is not None:
        case.before(old)
        old = validate(old)
    new = copy.deepcopy(old)
    case.edit(new)
    new = validate(new, current=old)
    if case.field is None:
        validate_transition(old, new)
        return
    with pytest.raises(InvalidInput) as info:
        validate_transition(old, new)
    assert info.value.field == case.field
    assert info.value.rule == case.rule
    if case.allowed is not None:
        assert info.value.parameters["allowedNext"] == case.allowed
        assert case.allowed[-1] in info.value.detail


def test_maintenance_options_are_read_from_the_replica_set_entry() -> None:
    rs = {
        "_id": "rs0",
        "maintenance": {"acceptDowntime": True, "temporaryArbiter": {"hostname": "a", "port": 1}},
    }
    options = maintenance_options(rs)
    assert options.accept_downtime and options.temporary_arbiter is not None
    assert options.temporary_arbiter.port == 1
    assert maintenance_options({"_id": "rs0"}) == MaintenanceOptions()
